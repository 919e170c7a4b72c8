# Ablation, prompt diversity: up to 64 prompts per class from templates over LVIS synonyms,
# definitions, views and settings (configs/bank/lvis_sd15_prompts.py, DiverGen's prompt
# diversity); X-Paste's bank uses the one prompt "a photo of a single {name}".
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_prompts.py \
#       --bank-dir data/banks/lvis_sd15_prompts
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_sd15_prompts'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
