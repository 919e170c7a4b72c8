"""Building instance banks: category list -> prompts -> images -> masks -> CLIP scores ->
filters -> bank (:mod:`xpaste.bank`) -> report.

One module per concern: :mod:`.prompts`, :mod:`.sources` (diffusers, image folders, the toy
renderer), :mod:`.segmenters` (classical, SAM, CLIPSeg), :mod:`.clip_scoring`, :mod:`.filters`,
:mod:`.report`, orchestrated by :mod:`.pipeline` (ranks and resumable files in :mod:`.dist`,
model paths and devices in :mod:`.hub`); banks from a dataset's own instances in
:mod:`.from_annotations`. Nothing here is needed to train with a bank.
"""
