# Bank of the toy world from a generator with a gap, scored by the toy CLIP: what the toy
# experiment needs for segmentation, CLIP filtering and dedup to matter. Unlike the oracle of
# toy.py, the generator (ToySource with `gap`, xpaste.toy.gap.GapSettings) draws other styles on
# plain, cluttered and patterned backgrounds, and 32 % wrong images (another class 12 %, two
# objects 8 %, a truncated object 6 %, no object 4 %, black 2 %) plus 10 % near-duplicates; each
# instance's prompt in the bank ends with its defect tag ('[gap: wrong_class drew=...]').
#   python tools/data/make_toy_lvis.py    (writes data/toy_lvis)
#   python tools/toy/train_clip.py        (writes work_dirs/toy_clip; skipped when up to date)
#   python tools/bank/build.py configs/bank/toy_gap.py
# toy_gap_nofilter.py is the same build without the score, area, component and dedup filters.
_base_ = './toy.py'

# gap=dict() takes the defaults of GapSettings; override fields, e.g.
# gap=dict(defects=dict(wrong_class=0.2), backgrounds=dict(plain=1.0, cluttered=0, textured=0)).
source = dict(type='ToySource', size=256, gap=dict())
# The toy CLIP (tools/toy/train_clip.py): an open_clip model config registered from its json,
# weights loaded as any open_clip checkpoint.
score = dict(
    model='xpaste-toy-clip',
    pretrained='work_dirs/toy_clip/xpaste-toy-clip.safetensors',
    model_config='work_dirs/toy_clip/xpaste-toy-clip.json',
    precision='fp32',
    batch_size=64)
# Thresholds measured with tools/toy/eval_clip.py --gap-images-per-class 20 on the default toy
# world (the images of this build): right cut-outs score 80.5 +- 17.2 against their class
# ("a photo of {name}", 100 * cosine), wrong ones 37.0 +- 37.4 (other-class objects 26.3);
# min_clip=65 keeps 91 % of the right cut-outs, 31 % of the wrong ones and 16 % of the
# other-class ones. Right scores spread over ~17 points (std), so the tolerance is 5 where
# X-Paste uses 1 on ViT-L/14's scale. The toy CLIP's embeddings are trained to gather a class
# (~10 % of distinct right pairs of a class are >= 0.95 cosine apart), so near-duplicates are
# found by perceptual hash: 99 % of distinct right pairs are >= 12 bits apart, repeats of a
# class's mode <= 4 in 29 of 30 measured pairs.
filter = dict(
    min_clip=65.0,
    tolerance=5.0,
    min_area=0.05,
    max_area=0.95,
    min_component=0.8,
    dedup='phash',
    dedup_hamming=4)
