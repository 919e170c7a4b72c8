# Segmenter ablation: SAM alone on the SD 1.5 images of lvis_sd15.py (reuse them with
# --work-dir work_dirs/lvis_sd15).
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_sam.py \
#       --work-dir work_dirs/lvis_sd15 --bank-dir data/banks/lvis_sd15_sam
_base_ = ['./lvis_sd15.py']

segment = dict(
    _delete_=True,
    segmenters=[
        dict(type='SAMSegmenter', checkpoint='checkpoints/sam_vit_h_4b8939.pth',
             model_type='vit_h', batch_size=8),
    ],
    largest_component=True)
