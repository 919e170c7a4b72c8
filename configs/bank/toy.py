# Bank of the toy world: toy renderer -> classical segmenter -> (no CLIP weights: scoring is
# skipped) -> filters -> bank -> report. About a minute on 2 CPU cores.
#   python tools/data/make_toy_lvis.py   (writes data/toy_lvis)
#   python tools/bank/build.py configs/bank/toy.py
# Report: work_dirs/toy/report/index.html; bank: work_dirs/toy/bank.

# ---- frequently modified parameters ----
images_per_class = 20
chunk_size = 10
seed = 0

categories = dict(ann_file='data/toy_lvis/annotations/lvis_v1_train.json')
prompts = dict(templates=['a photo of a single {name}'])
source = dict(type='ToySource', size=256)
generate = dict(image_format='png')
segment = dict(segmenters=[dict(type='ClassicalSegmenter', work_side=160)],
               largest_component=True)
# No CLIP weights: the score stage is skipped (one log line says so) and near-duplicates are
# found by perceptual hash. Set e.g. pretrained='openai' (model='ViT-B-32') to score.
score = dict(model='ViT-B-32', pretrained=None)
filter = dict(min_clip=21.0, tolerance=1.0, min_area=0.05, max_area=0.95, min_component=0.0,
              dedup='auto', dedup_hamming=2)
write = dict(image_format='webp', quality=95, max_side=256, size_stats=True)
report = dict(thumb_side=96, max_kept=40, max_dropped=20)
workers = dict(type='process', num_workers=2, max_pending=4)
