# configs/bank/toy_gap.py with the CLIP threshold at 80 (toy_gap.py: 65), for the toy CLIP
# threshold ablation (configs/xpaste/toy/*-xpaste-clip80-*). Same images, masks and scores.
#   python tools/bank/build.py configs/bank/toy_gap_clip80.py
_base_ = './toy_gap.py'

filter = dict(min_clip=80.0)
