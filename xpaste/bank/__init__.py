"""Building and storing instance banks.

One module per stage of ``tools/bank/build.py``: :mod:`.prompts`, :mod:`.sources` (diffusers,
image folders, the toy renderer), :mod:`.segmenters` (classical, SAM, CLIPSeg),
:mod:`.clip_scoring`, :mod:`.filters`, :mod:`.report`, orchestrated by :mod:`.pipeline`
(ranks and resumable files in :mod:`.dist`, model paths in :mod:`.hub`). The bank format lives in
:mod:`.storage` (writer and reader, one code path for every bank), size statistics in
:mod:`.stats`, banks from a dataset's own instances in :mod:`.from_annotations`.
"""
