# Several generators per class (DiverGen, CVPR 2024: "generative model diversity"; it mixes
# Stable Diffusion and DeepFloyd-IF): each image of every class comes from Stable Diffusion 1.5
# (as in lvis_sd15.py) or Stable Diffusion 2.1-base (same recipe: 512 px, 50 DPM-Solver++
# steps, CFG 7.5), drawn half and half from the image's seed, so the split does not depend on
# batching or ranks. Each image records its generator ('sd15' / 'sd21': report columns and
# histograms per generator, the bank rows' source prefix). Any diffusers model id or local
# folder can be an entry; weights set the shares.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_mixed.py \
#       --bank-dir data/banks/lvis_mixed
_base_ = ['./lvis_sd15.py']

source = dict(
    _delete_=True,
    type='MixedSource',
    sources=[
        dict(_base_.source, name='sd15'),
        dict(_base_.source, name='sd21', model='stabilityai/stable-diffusion-2-1-base'),
    ],
    weights=[0.5, 0.5])
