# Fast variant: a 1-step distilled generator (SD-Turbo), no CFG, the tiny VAE (TAESD); the
# same segment / score / filter / write as lvis_sd15.py.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd-turbo.py
# Measured on one H200 (random weights, tools/analysis/benchmark_bank.py): 82 img/s for the
# whole pipeline (117 for the bare generator; CLIP scoring on the same GPU is the next cost):
# 1.2 M images = ~4 GPU-hours. With the full VAE: 37 img/s (54 bare), ~9 GPU-hours.
_base_ = ['./lvis_sd15.py']

chunk_size = 16
source = dict(
    _delete_=True,
    type='DiffusersSource',
    model='stabilityai/sd-turbo',
    dtype='float16',
    scheduler='EulerAncestralDiscreteScheduler',
    num_inference_steps=1,
    guidance_scale=0.0,
    height=512,
    width=512,
    batch_size=64,
    vae=dict(type='AutoencoderTiny', path='madebyollin/taesd'),
    safety_checker=True,
    device='auto')
workers = dict(type='process', num_workers=14, max_pending=None)
