# The X-Paste step of the CenterNet2 rows, as X-Paste's code pastes (yoctta/XPaste
# xpaste/data/custom_build_copypaste_mapper.py, InstPool with configs/Xpaste_*.yaml):
# INST_POOL_MAX_SAMPLES 20 (0..19 pastes per image), INST_POOL_SAMPLE_TYPE cas_random (a class
# uniformly, then one of its instances), size from the per-class statistics of LVIS clipped to
# [10 px, 0.5 of the image], shape jitter 0.2, horizontal flip, no rotation, CP_METHOD basic
# (hard paste), occlusion filter 10 px (box) / 300 px (mask). It runs on the large-scale-jittered
# and flipped image, before PackDetInputs. Not a config of its own: an X-Paste row inherits it
# beside its baseline and puts `xpaste` in `paste_steps`.

# ---- frequently modified parameters ----
# python tools/bank/build.py configs/bank/lvis_sd15.py --bank-dir data/banks/lvis_sd15
bank_root = 'data/banks/lvis_sd15'
num_pastes = (0, 20)
paste_blend = 'hard'

xpaste = dict(
    type='XPaste',
    bank=dict(type='InstanceBank', root=bank_root, sampling='class_balanced'),
    classes='LVISV1Dataset',  # bank category names -> LVIS v1 labels
    num_pastes=num_pastes,
    size_mode='class_stats',
    min_size=10,
    max_size_ratio=0.5,
    aspect_jitter=0.2,
    flip=True,
    blend=paste_blend,
    box_occluded_thr=10,
    mask_occluded_thr=300)
