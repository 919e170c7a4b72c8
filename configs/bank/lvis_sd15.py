# LVIS v1 instance bank as in X-Paste: Stable Diffusion 1.5, "a photo of a single {name}",
# 50 DPM-Solver++ steps, CFG 7.5, fp16 -> classical segmenter (+ SAM / CLIPSeg in
# lvis_sd15_ensemble.py) -> CLIP ViT-L/14 score >= min(21, class best - 1), area in [0.05, 0.95],
# largest connected component, near-duplicates removed -> RGBA crops (longest side 512).
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15.py
# Measured on one H200 (random weights, tools/analysis/benchmark_bank.py): 3.19 img/s for the
# whole pipeline (3.32 for the bare generator): 1.2 M images = ~105 GPU-hours.

# ---- frequently modified parameters ----
images_per_class = 1000
chunk_size = 32  # one file per stage per 32 images; generator batches span chunks
seed = 0

categories = dict(ann_file='data/lvis_v1/annotations/lvis_v1_train.json')
prompts = dict(templates=['a photo of a single {name}'], prompt_file=None)
source = dict(
    type='DiffusersSource',
    model='stable-diffusion-v1-5/stable-diffusion-v1-5',  # hub id, folder or .safetensors
    dtype='float16',
    scheduler='DPMSolverMultistepScheduler',
    num_inference_steps=50,
    guidance_scale=7.5,
    negative_prompt=None,
    height=512,
    width=512,
    batch_size=32,
    safety_checker=True,  # its black images are counted (black_image) and dropped
    device='auto')  # cuda:<LOCAL_RANK>
generate = dict(image_format='jpg', quality=95)
segment = dict(segmenters=[dict(type='ClassicalSegmenter', work_side=192)],
               largest_component=True)
score = dict(model='ViT-L-14', pretrained='openai', text_templates=['a photo of {name}'],
             batch_size=256, precision='fp16', device='auto')
filter = dict(min_clip=21.0, tolerance=1.0, min_area=0.05, max_area=0.95, min_component=0.0,
              dedup='auto', dedup_cosine=0.95, dedup_hamming=4)
write = dict(image_format='webp', quality=95, max_side=512, size_stats=True)
report = dict(thumb_side=128, max_kept=48, max_dropped=24, bins=30)
workers = dict(type='process', num_workers=12, max_pending=None)  # CPU cores per GPU - 2
