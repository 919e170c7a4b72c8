# Segmenter ablation: SAM prompted with background points (DiverGen's "SAM-background": four
# points 5 px inside the image corners label the background, whose complement is the object;
# official code segmentation/get_background_sam_mask.py) instead of the box prompt of
# lvis_sd15_sam.py; everything else the same. Built from the images of lvis_sd15.py:
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_sam-bg.py \
#       --work-dir work_dirs/lvis_sd15 --bank-dir data/banks/lvis_sd15_sam-bg
_base_ = ['./lvis_sd15_sam.py']

segment = dict(
    _delete_=True,
    segmenters=[
        dict(type='SAMSegmenter', checkpoint='checkpoints/sam_vit_h_4b8939.pth',
             model_type='vit_h', batch_size=8, prompt_mode='border_points', border_points=4,
             border_margin=5),
    ],
    largest_component=True)
