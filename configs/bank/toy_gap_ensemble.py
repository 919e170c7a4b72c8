# configs/bank/toy_gap.py with a segmenter ensemble, for the toy segmenter ablation
# (configs/xpaste/toy/*-xpaste-ensemble-*): the classical segmenter of toy.py plus a second
# setting that models the border with more colours at a lower threshold (for cluttered and
# patterned backgrounds) and fills holes; the score stage keeps each image's cut-out with the
# best CLIP score, as X-Paste does with its four segmenters.
#   python tools/bank/build.py configs/bank/toy_gap_ensemble.py
_base_ = './toy_gap.py'

segment = dict(segmenters=[
    dict(type='ClassicalSegmenter', work_side=160),
    dict(type='ClassicalSegmenter', name='classical_busy', work_side=160, bg_clusters=6,
         spread=3.0, min_cluster_share=0.08, fill_holes=True),
])
