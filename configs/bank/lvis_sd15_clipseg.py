# Segmenter ablation: CLIPSeg alone on the SD 1.5 images of lvis_sd15.py (reuse them with
# --work-dir work_dirs/lvis_sd15).
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_clipseg.py \
#       --work-dir work_dirs/lvis_sd15 --bank-dir data/banks/lvis_sd15_clipseg
_base_ = ['./lvis_sd15.py']

segment = dict(
    _delete_=True,
    segmenters=[
        dict(type='CLIPSegSegmenter', model='CIDAS/clipseg-rd64-refined', threshold=0.4),
    ],
    largest_component=True)
