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

    def score_chunk(self, chunk: Chunk, status: list, whole: np.ndarray, cuts: dict,
                    empty: dict) -> None:
        """Score a chunk's CLIP inputs and save the scores.

        Args:
            chunk (Chunk): The chunk.
            status (list[str]): Per image, ``'ok'`` or why it is unusable.
            whole (np.ndarray): Whole-image inputs ``(N, S, S, 3)``.
            cuts (dict): Per segmenter, cut-out inputs ``(N, S, S, 3)``.
            empty (dict): Per segmenter, whether each image has no (or an empty) mask.
        """
        ctx = self.ctx
        cat = ctx.categories[chunk.cat]
        scorer = ctx.scorer
        ok = np.array([s == 'ok' for s in status])
        n, names = len(status), [s.name for s in ctx.segmenters]
        image_score = np.full(n, np.nan, np.float32)
        cutout = np.full((n, len(names)), np.nan, np.float32)
        if ok.any():
            image_score[ok] = scorer.scores(scorer.encode(whole[ok]), cat)
        embeddings = []
        for j, name in enumerate(names):
            valid = ok & ~empty[name]
            emb = np.zeros((n, 0), np.float32)
            if valid.any():
                enc = scorer.encode(cuts[name][valid])
                emb = np.zeros((n, enc.shape[1]), np.float32)
                emb[valid] = enc
                cutout[valid, j] = scorer.scores(enc, cat)
            embeddings.append(emb)
        has = np.isfinite(cutout).any(1)
        best = np.where(has, np.argmax(np.where(np.isfinite(cutout), cutout, -np.inf), 1), -1)
        dim = max(e.shape[1] for e in embeddings)
        embedding = np.zeros((n, dim), np.float16)
        for i in np.flatnonzero(has):
            embedding[i] = embeddings[best[i]][i]
        atomic_write_npz(
            self.path(chunk),
            meta=json_in_npz(dict(ctx.layout.meta(self.name, chunk), segmenters=names)),
            image_score=image_score,
            cutout_score=cutout,
            best=best.astype(np.int16),
            embedding=embedding)


def clip_inputs(images: list, masks: dict, size: int, margin: float) -> tuple:
    """CLIP inputs of a chunk: whole images ``(N, S, S, 3)`` and cut-outs per segmenter.

    Unusable images and empty masks get a white input (their scores are set to NaN later).

    Args:
        images (list): The chunk's images, None for unusable ones.
        masks (dict): Per segmenter, the masks (None for unusable images).
        size (int): CLIP input side.
        margin (float): Margin around a cut-out's box, relative to its side.
    """
    blank = np.full((size, size, 3), 255, np.uint8)
    whole = np.stack([prepare_whole(im, size) if im is not None else blank for im in images])
    cuts = {}
    for name, seg_masks in masks.items():
        cuts[name] = np.stack([
            prepare_cutout(im, m, size, margin)
            if im is not None and m is not None and m.any() else blank
            for im, m in zip(images, seg_masks)
        ])
    return whole, cuts
