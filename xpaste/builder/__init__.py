"""Building instance banks: category list -> prompts -> images -> masks -> CLIP scores ->
filters -> bank (:mod:`xpaste.bank`) -> report.

One module per concern: :mod:`.prompts`, :mod:`.sources` (diffusers, image folders, the toy
renderer), :mod:`.segmenters` (classical, SAM, CLIPSeg), :mod:`.clip_scoring`, :mod:`.filters`,
:mod:`.report` (HTML pages). A build (:class:`.pipeline.BankBuilder`) is six stages, one module
each in :mod:`.stages`, sharing a :class:`.context.BuildContext` (settings in :mod:`.defaults`;
files, fingerprints and rank plan in :mod:`.layout`), the per-chunk ones run as one stream
(:mod:`.stream`) over CPU workers (:mod:`.jobs`); ranks in :mod:`.dist`, model paths and devices
in :mod:`.hub`; banks from a dataset's own instances in :mod:`.from_annotations`. Nothing here
is needed to train with a bank.
"""
