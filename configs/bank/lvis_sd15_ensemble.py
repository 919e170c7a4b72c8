# X-Paste's segmenter ensemble: classical + SAM + CLIPSeg on every image; each image keeps the
# cut-out with the best CLIP score. SAM and CLIPSeg run batched on the GPU.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_ensemble.py
_base_ = ['./lvis_sd15.py']

segment = dict(
    _delete_=True,
    segmenters=[
        dict(type='ClassicalSegmenter', work_side=192),
        dict(type='SAMSegmenter', checkpoint='checkpoints/sam_vit_h_4b8939.pth',
             model_type='vit_h', batch_size=8),
        dict(type='CLIPSegSegmenter', model='CIDAS/clipseg-rd64-refined', threshold=0.4),
    ],
    largest_component=True)
