# The X-Paste step for COCO 2017, shared by both detector families: the paper's pasting of the
# CenterNet2 rows (../../centernet2/_base_/xpaste_lsj.py: 0..19 instances, class-balanced,
# per-class size prior, aspect jitter 0.2, flip, hard paste, occlusion filter 10 px / 300 px)
# from the COCO bank of configs/bank/coco_sd15.py, labels by COCO class name. Not a config of
# its own: an X-Paste row inherits it beside its baseline and puts `xpaste` in `paste_steps`.
_base_ = '../../centernet2/_base_/xpaste_lsj.py'

# ---- frequently modified parameters ----
#   python tools/bank/build.py configs/bank/coco_sd15.py --bank-dir data/banks/coco_sd15
bank_root = 'data/banks/coco_sd15'

xpaste = dict(
    _base_.xpaste, classes='CocoDataset', bank=dict(_base_.xpaste.bank, root=bank_root))
