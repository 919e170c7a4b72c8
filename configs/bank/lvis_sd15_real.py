# Filter by similarity to real instances (DiverGen, CVPR 2024; official code filteration/): the
# LVIS training instances of each class (at most 50, area >= 32 x 32 px) are cut out on white and
# embedded with the build's CLIP model once (cached in work_dirs/<config>/real/); a generated
# cut-out is dropped ('real_similarity' in the report) when its mean cosine similarity to them
# is below the class's 5th percentile of the real instances' own similarities. Classes without
# usable real instances keep the text-score filter alone. Everything else as in lvis_sd15.py;
# it reuses its images, masks and scores (only filter, write and report run again):
#   python tools/bank/build.py configs/bank/lvis_sd15_real.py --work-dir work_dirs/lvis_sd15 \
#       --bank-dir data/banks/lvis_sd15_real
_base_ = ['./lvis_sd15.py']

filter = dict(
    real_similarity=dict(
        percentile=5.0,  # or min_cosine=0.7 (DiverGen's released scripts' threshold)
        max_per_class=50,
        min_area=1024,
        img_prefix='data/lvis_v1/'))  # holds COCO's train2017/ (paths from coco_url)
