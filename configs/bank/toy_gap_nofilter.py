# configs/bank/toy_gap.py without filters: the same images, masks and CLIP scores, and every
# cut-out that has a mask goes into the bank (no score, area, component or near-duplicate
# filter). Images without a usable mask (black images, empty masks) still cannot be pasted.
#   python tools/bank/build.py configs/bank/toy_gap_nofilter.py
_base_ = './toy_gap.py'

filter = dict(
    min_clip=None, tolerance=None, min_area=0.0, max_area=1.0, min_component=0.0, dedup=None)
