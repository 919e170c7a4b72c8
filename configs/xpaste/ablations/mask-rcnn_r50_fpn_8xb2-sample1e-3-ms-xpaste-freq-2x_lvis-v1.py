# Ablation, sampling: a class with probability proportional to its number of training images
# to the power -0.5, then an instance of it (power 0 is X-Paste's class-balanced sampling,
# power 1 the training distribution; -0.5 favours rare classes more than class-balanced).
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
paste_sampling = 'frequency'
bank_freq_power = -0.5
bank_class_frequency = 'data/lvis_v1/annotations/lvis_v1_train.json'  # LVIS image_count

xpaste = _base_.xpaste
xpaste.bank.update(
    sampling=paste_sampling, freq_power=bank_freq_power, class_frequency=bank_class_frequency)
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
