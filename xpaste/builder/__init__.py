"""Building instance banks: category list -> prompts -> images -> masks -> CLIP scores ->
filters -> bank (:mod:`xpaste.bank`) -> report.

One module per concern: :mod:`.prompts`, :mod:`.sources` (diffusers, image folders, the toy
renderer; per-class routing and per-image mixing of sources in :mod:`.multi_source`),
:mod:`.segmenters` (classical, SAM, CLIPSeg, MMDetection), :mod:`.clip_scoring`,
:mod:`.filters` (with the training set's own instances in :mod:`.real_instances`),
:mod:`.report` (HTML pages). A build (:class:`.pipeline.BankBuilder`) is six stages, one module
each in :mod:`.stages`, sharing a :class:`.context.BuildContext` (settings in :mod:`.defaults`;
files, fingerprints and rank plan in :mod:`.layout`), the per-chunk ones run as one stream
(:mod:`.stream`) over CPU workers (:mod:`.jobs`); cheap checks of finished files in
:mod:`.integrity`, stopping on SIGTERM/SIGINT in :mod:`.interrupt`, progress across ranks in
:mod:`.progress`; ranks in :mod:`.dist`, model paths and devices
in :mod:`.hub`; banks from a dataset's own instances in :mod:`.from_annotations`. Nothing here
is needed to train with a bank.
"""
