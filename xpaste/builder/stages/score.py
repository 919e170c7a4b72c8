"""The ``score`` stage: CLIP scores of each image and cut-out, and the best cut-out per image.

Output per chunk: ``score/<class>/cNNNNN.npz`` with ``meta`` (json: fingerprint, class, image
range, segmenter names), ``image_score`` (N), ``cutout_score`` (N x segmenters, NaN where there
is no cut-out), ``best`` (index of the best-scoring segmenter, -1 without a cut-out) and
``embedding`` (fp16 CLIP embedding of the best cut-out). The workers prepare the CLIP inputs
(:func:`clip_inputs`), the main process encodes and scores them (:meth:`ScoreStage.score_chunk`).
Without CLIP weights (``score.pretrained=None``) the stage is skipped and its outputs count as
done.
"""
import numpy as np

from xpaste.utils.fileio import atomic_write_npz
from ..clip_scoring import prepare_cutout, prepare_whole
from ..dist import json_in_npz
from ..layout import Chunk
from .base import ChunkStage


class ScoreStage(ChunkStage):
    """Scores the images and cut-outs of each chunk with CLIP (see the module docstring)."""

    name = 'score'

    def score_chunk(self, chunk: Chunk, status: list, whole, cuts: dict, empty: dict) -> None:
        """Score a chunk's CLIP inputs (one forward pass per group) and save the scores.

        Args:
            chunk (Chunk): The chunk.
            status (list[str]): Per image, ``'ok'`` or why it is unusable.
            whole (np.ndarray | torch.Tensor): Whole-image inputs ``(N, S, S, 3)``.
            cuts (dict): Per segmenter, cut-out inputs ``(N, S, S, 3)``.
            empty (dict): Per segmenter, whether each image has no (or an empty) mask.
        """
        groups = self.input_groups(status, whole, cuts, empty)
        self.save_scores(chunk, status, empty, [self.ctx.scorer.encode(g) for g in groups])

    def input_groups(self, status: list, whole, cuts: dict, empty: dict) -> list:
        """The inputs of a chunk to encode, in the order :meth:`save_scores` takes their
        embeddings: the usable whole images, then each segmenter's non-empty cut-outs (empty
        groups where there is nothing to encode)."""
        ok = np.array([s == 'ok' for s in status], bool)
        groups = [_rows(whole, ok) if ok.any() else _NOTHING]
        for name in (s.name for s in self.ctx.segmenters):
            valid = ok & ~empty[name]
            groups.append(_rows(cuts[name], valid) if valid.any() else _NOTHING)
        return groups

    def save_scores(self, chunk: Chunk, status: list, empty: dict, embeddings: list) -> None:
        """Scores, best cut-out and its embedding from the embeddings of
        :meth:`input_groups`, saved to the chunk's score file."""
        ctx = self.ctx
        cat = ctx.categories[chunk.cat]
        scorer = ctx.scorer
        ok = np.array([s == 'ok' for s in status], bool)
        n, names = len(status), [s.name for s in ctx.segmenters]
        image_score = np.full(n, np.nan, np.float32)
        cutout = np.full((n, len(names)), np.nan, np.float32)
        if ok.any():
            image_score[ok] = scorer.scores(embeddings[0], cat)
        per_segmenter = []
        for j, name in enumerate(names):
            valid = ok & ~empty[name]
            emb = np.zeros((n, 0), np.float32)
            if valid.any():
                enc = embeddings[j + 1]
                emb = np.zeros((n, enc.shape[1]), np.float32)
                emb[valid] = enc
                cutout[valid, j] = scorer.scores(enc, cat)
            per_segmenter.append(emb)
        has = np.isfinite(cutout).any(1)
        best = np.where(has, np.argmax(np.where(np.isfinite(cutout), cutout, -np.inf), 1), -1)
        dim = max(e.shape[1] for e in per_segmenter)
        embedding = np.zeros((n, dim), np.float16)
        for i in np.flatnonzero(has):
            embedding[i] = per_segmenter[best[i]][i]
        atomic_write_npz(
            self.path(chunk),
            meta=json_in_npz(dict(ctx.layout.meta(self.name, chunk), segmenters=names)),
            image_score=image_score,
            cutout_score=cutout,
            best=best.astype(np.int16),
            embedding=embedding)


#: An empty group of inputs (nothing to encode).
_NOTHING = np.zeros((0, 1, 1, 3), np.uint8)


def _rows(inputs, mask: np.ndarray):
    """``inputs[mask]`` of a numpy array or a tensor (on any device)."""
    if isinstance(inputs, np.ndarray):
        return inputs[mask]
    import torch
    return inputs[torch.from_numpy(mask).to(inputs.device)]


def clip_inputs(images: list, masks: dict, size: int, margin: float, whole: bool = True) -> tuple:
    """CLIP inputs of a chunk: whole images ``(N, S, S, 3)`` and cut-outs per segmenter.

    Unusable images and empty masks get a white input (their scores are set to NaN later).

    Args:
        images (list): The chunk's images, None for unusable ones.
        masks (dict): Per segmenter, the masks (None for unusable images).
        size (int): CLIP input side.
        margin (float): Margin around a cut-out's box, relative to its side.
        whole (bool): Prepare the whole-image inputs (None in their place otherwise).
            Defaults to True.
    """
    blank = np.full((size, size, 3), 255, np.uint8)
    if whole:
        whole = np.stack([prepare_whole(im, size) if im is not None else blank for im in images])
    else:
        whole = None
    cuts = {}
    for name, seg_masks in masks.items():
        cuts[name] = np.stack([
            prepare_cutout(im, m, size, margin)
            if im is not None and m is not None and m.any() else blank
            for im, m in zip(images, seg_masks)
        ])
    return whole, cuts
