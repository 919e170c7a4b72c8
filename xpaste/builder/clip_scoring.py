"""CLIP scores of generated images and their cut-outs (open_clip).

The score of an image against a class is ``100 * cos(image embedding, text embedding)``, the
scale of the X-Paste thresholds (21 with ViT-L/14, on ``"a photo of {name}"``). The text
embedding of a class is the normalised mean over ``text_templates``. Two scores per image:

- the *image score*, of the whole image (resized on its shorter side, centre-cropped as CLIP's
  own preprocessing does);
- the *cut-out score* of each segmenter's mask: the object composited on white, cropped to its
  box, padded to a square.

Inputs are prepared with OpenCV (:func:`prepare_whole`, :func:`prepare_cutout`: plain functions
that the CPU workers can run) and normalised and encoded in batches on the GPU by
:class:`ClipScorer`. Images that are on the GPU already (a generator's output) are prepared
there (:func:`prepare_whole_tensor`), and the inputs of several chunks share full batches
(:meth:`ClipScorer.encode_many`).
"""
import logging
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log

from xpaste.utils.checks import check_number
from .hub import check_model_source, looks_like_path, resolve_device
from .prompts import display_name
from .segmenters import cutout_on_white

DEFAULT_TEXT_TEMPLATES = ('a photo of {name}', )
#: Prefixes of open_clip model names that carry their own weights.
OPEN_CLIP_SCHEMES = ('hf-hub:', 'local-dir:')

SKIPPED_MESSAGE = ('CLIP scoring skipped: no CLIP weights configured (score.pretrained is None); '
                   'cut-outs keep NaN scores, the score filters are off and near-duplicates are '
                   'found by perceptual hash')


def _resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if size[0] <= w and size[1] <= h else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def prepare_whole(image: np.ndarray, size: int) -> np.ndarray:
    """A BGR image as CLIP input: shorter side to ``size``, centre crop; RGB uint8."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    resized = _resize_to(image, (nw, nh))
    x, y = (nw - size) // 2, (nh - size) // 2
    return np.ascontiguousarray(resized[y:y + size, x:x + size, ::-1])


def prepare_cutout(image: np.ndarray,
                   mask: np.ndarray,
                   size: int,
                   margin: float = 0.1) -> np.ndarray:
    """A cut-out as CLIP input: the object on white, square box crop, resized; RGB uint8."""
    crop = cutout_on_white(image, mask, margin=margin, square=True)
    return np.ascontiguousarray(_resize_to(crop, (size, size))[..., ::-1])


def prepare_whole_tensor(images, size: int):
    """:func:`prepare_whole` of BGR uint8 images ``(N, H, W, 3)`` of one size, on their own
    device (e.g. a generator's GPU): shorter side to ``size``, centre crop; RGB uint8
    ``(N, S, S, 3)`` on the same device.

    The sizes and the crop are open_clip's (torchvision's ``Resize(size)``: the longer side
    becomes ``int(size * long / short)``; ``CenterCrop``: offsets rounded), and the resize is
    bicubic with antialiasing (``torch.nn.functional.interpolate``), rounded to uint8 as PIL's
    is: the inputs are within a few grey levels of open_clip's own PIL preprocessing (PIL's
    and torch's bicubic kernels differ slightly), closer than :func:`prepare_whole`'s OpenCV
    area/cubic resize.
    """
    import torch
    import torch.nn.functional as F
    h, w = int(images.shape[1]), int(images.shape[2])
    if h <= w:
        nh, nw = size, max(size, int(size * w / h))
    else:
        nh, nw = max(size, int(size * h / w)), size
    x = images.flip(-1).permute(0, 3, 1, 2)
    if (nh, nw) != (h, w):
        x = F.interpolate(
            x.float(), size=(nh, nw), mode='bicubic', antialias=True, align_corners=False)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return x[:, :, top:top + size, left:left + size].permute(0, 2, 3, 1).contiguous()


class ClipScorer:
    """Scores images and cut-outs against class names with an open_clip model.

    Args:
        model (str): open_clip model name, e.g. ``'ViT-L-14'`` (``'ViT-L-14-quickgelu'`` for
            OpenAI weights given as a local file), or a model that carries its own weights:
            ``'hf-hub:org/name'`` or ``'local-dir:/path'`` (a folder with
            ``open_clip_config.json`` and ``open_clip_model.safetensors`` or
            ``open_clip_pytorch_model.bin``).
        pretrained (str): open_clip pretrained tag (``'openai'``, ``'laion2b_s32b_b82k'``) or a
            local checkpoint file; ignored for ``hf-hub:``/``local-dir:`` models, whose
            weights open_clip loads itself.
        text_templates (Sequence[str]): Text prompts over ``{name}``, averaged.
            Defaults to ``('a photo of {name}',)``.
        batch_size (int): Images per forward. Defaults to 256.
        precision (str): open_clip precision (``'fp16'``, ``'bf16'``, ``'fp32'``); fp32 on CPU.
            Defaults to ``'fp16'``.
        cutout_margin (float): Margin of the cut-out crop (fraction of its longer side).
            Defaults to 0.1.
        device (str): Defaults to ``'auto'``.
        clip_model (tuple, optional): An already built ``(model, tokenizer)`` (benchmarks,
            tests); ``model``/``pretrained`` are then only recorded. Defaults to None.
        model_config (str, optional): An open_clip model config json, registered with
            ``open_clip.add_model_config`` before the model is built, for a model that
            open_clip does not ship (e.g. the toy CLIP of ``tools/toy/train_clip.py``); open_clip
            names it by its file stem, which must equal ``model``. Defaults to None.
    """

    def __init__(self,
                 model: str = 'ViT-L-14',
                 pretrained: Optional[str] = 'openai',
                 text_templates: Sequence[str] = DEFAULT_TEXT_TEMPLATES,
                 batch_size: int = 256,
                 precision: str = 'fp16',
                 cutout_margin: float = 0.1,
                 device: str = 'auto',
                 clip_model: Optional[tuple] = None,
                 model_config: Optional[str] = None):
        if isinstance(text_templates,
                      str) or not text_templates or not all('{name}' in t for t in text_templates):
            raise ValueError(f'score.text_templates must be a list of strings containing '
                             f'"{{name}}", got {text_templates!r}')
        batch_size = check_number('score.batch_size', batch_size, 1, integer=True)
        if precision not in ('fp16', 'bf16', 'fp32', 'amp', 'pure_fp16', 'pure_bf16'):
            raise ValueError(f"score.precision must be 'fp16', 'bf16' or 'fp32', got "
                             f'{precision!r}')
        self.model_name = model
        self.model_config = model_config
        self.pretrained = pretrained
        self.text_templates = tuple(text_templates)
        self.batch_size = batch_size
        self.precision = precision
        self.cutout_margin = float(cutout_margin)
        self.device = device
        self.local_rank = 0
        self.model, self.tokenizer = clip_model if clip_model is not None else (None, None)
        self._text_cache: dict[str, object] = {}
        self._input_size = None

    @property
    def self_contained(self) -> bool:
        """Whether ``model`` names its own weights (``hf-hub:``/``local-dir:``)."""
        return str(self.model_name).startswith(OPEN_CLIP_SCHEMES)

    @property
    def enabled(self) -> bool:
        """False when no weights are configured (then the score stage is skipped)."""
        return self.model is not None or self.pretrained is not None or self.self_contained

    def check(self) -> None:
        """Check the model name and a local checkpoint path before any work."""
        if self.model is not None or not self.enabled:
            return
        if self.self_contained:
            self._check_local_dir()
            return
        import open_clip
        if self.model_config is not None:
            path = check_model_source(
                self.model_config, 'score.model_config', allow_hub_id=False, kind='file')
            stem = osp.splitext(osp.basename(path))[0]
            if stem != self.model_name:
                raise ValueError(f'score.model_config {self.model_config!r} registers model '
                                 f'{stem!r}, but score.model is {self.model_name!r}: set '
                                 f'score.model={stem!r}')
            if open_clip.get_model_config(stem) is None:
                open_clip.add_model_config(path)
        if open_clip.get_model_config(self.model_name) is None:
            raise ValueError(f'score.model: open_clip has no model {self.model_name!r}; '
                             f'e.g. {open_clip.list_models()[:5]}')
        if looks_like_path(self.pretrained):
            check_model_source(self.pretrained, 'score.pretrained', allow_hub_id=False, kind='file')

    def _check_local_dir(self) -> None:
        """A ``local-dir:`` folder exists and holds open_clip's config (``hf-hub:`` models
        are checked when they load)."""
        prefix = 'local-dir:'
        if not self.model_name.startswith(prefix):
            return
        folder = check_model_source(
            self.model_name[len(prefix):],
            'score.model (local-dir:)',
            allow_hub_id=False,
            kind='dir')
        config = osp.join(folder, 'open_clip_config.json')
        if not osp.isfile(config):
            raise FileNotFoundError(f'score.model {self.model_name!r}: no open_clip_config.json '
                                    f'in {folder!r} (open_clip\'s local-dir format: '
                                    'open_clip_config.json + open_clip_model.safetensors)')

    def setup(self) -> None:
        """Load the model (once, before the first score)."""
        if self.model is None:
            self.check()
            import open_clip
            device = resolve_device(self.device, self.local_rank, 'score')
            precision = 'fp32' if device == 'cpu' else self.precision
            pretrained = None if self.self_contained else self.pretrained
            name = self.model_name  # open_clip does not expand '~' in 'local-dir:~/...'
            if name.startswith('local-dir:'):
                name = 'local-dir:' + osp.expanduser(name[len('local-dir:'):])
            if pretrained is not None and looks_like_path(pretrained):
                pretrained = check_model_source(
                    pretrained, 'score.pretrained', allow_hub_id=False, kind='file')
            try:
                model, _, _ = open_clip.create_model_and_transforms(
                    name,
                    pretrained=pretrained,
                    precision=precision,
                    device=device,
                    require_pretrained=True)
            except (OSError, RuntimeError, ValueError, KeyError) as e:
                weights = '' if self.self_contained else f' with pretrained {self.pretrained!r}'
                raise OSError(f'score: cannot load open_clip {self.model_name!r}{weights} '
                              f'({type(e).__name__}: {e})') from e
            self.model = model.eval()
            self.tokenizer = open_clip.get_tokenizer(name)
        self._setup_preprocess()

    def _setup_preprocess(self) -> None:
        import open_clip
        import torch
        cfg = open_clip.get_model_preprocess_cfg(self.model)
        size = cfg.get('size', 224)
        self._input_size = int(size if isinstance(size, int) else size[0])
        param = next(self.model.parameters())
        # open_clip's fp16 keeps some parameters (embeddings, norms) in fp32: take the dtype
        # of the image tower's first convolution/linear layer.
        layers = (torch.nn.Conv2d, torch.nn.Linear)
        weight = next((m.weight for m in self.model.visual.modules() if isinstance(m, layers)),
                      param)
        self._device, self._dtype = param.device, weight.dtype
        self._mean = torch.tensor(
            cfg.get('mean', (0.48145466, 0.4578275, 0.40821073)), device=self._device).view(
                1, 3, 1, 1) * 255
        self._std = torch.tensor(
            cfg.get('std', (0.26862954, 0.26130258, 0.27577711)), device=self._device).view(
                1, 3, 1, 1) * 255

    @property
    def input_size(self) -> int:
        """Side of the model's square input (after :meth:`setup`)."""
        if self._input_size is None:
            self.setup()
        return self._input_size

    def text_embedding(self, category: dict):
        """Normalised mean text embedding of ``category`` over the templates (cached)."""
        import torch
        name = category['name']
        if name not in self._text_cache:
            texts = [t.format(name=display_name(name)) for t in self.text_templates]
            tokens = self.tokenizer(texts).to(self._device)
            with torch.inference_mode():
                emb = self.model.encode_text(tokens).float()
            emb = torch.nn.functional.normalize(emb, dim=-1).mean(0)
            self._text_cache[name] = torch.nn.functional.normalize(emb, dim=0)
        return self._text_cache[name]

    def encode(self, inputs) -> np.ndarray:
        """Normalised image embeddings of prepared RGB uint8 inputs ``(N, S, S, 3)``.

        Args:
            inputs (np.ndarray | torch.Tensor): The inputs, on the host or on any device.

        Returns:
            np.ndarray: float32 ``(N, D)``.
        """
        import torch
        if self._input_size is None:
            self.setup()
        out = []
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start:start + self.batch_size]
            if not torch.is_tensor(batch):
                batch = torch.from_numpy(np.ascontiguousarray(batch))
            batch = batch.to(self._device, non_blocking=True).permute(0, 3, 1, 2).float()
            batch = ((batch - self._mean) / self._std).to(self._dtype)
            with torch.inference_mode():
                emb = self.model.encode_image(batch).float()
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu())
        if not out:
            return np.zeros((0, 0), np.float32)
        return torch.cat(out).numpy()

    def encode_many(self, groups: Sequence) -> list:
        """:meth:`encode` of several groups of inputs (e.g. the cut-outs of several chunks) in
        shared batches of ``batch_size``: the same embeddings, in fewer and fuller forwards.

        Args:
            groups (Sequence): Inputs ``(N_i, S, S, 3)`` (numpy arrays or tensors).

        Returns:
            list[np.ndarray]: float32 ``(N_i, D)`` per group.
        """
        import torch
        if self._input_size is None:
            self.setup()
        parts = [
            g if torch.is_tensor(g) else torch.from_numpy(np.ascontiguousarray(g)) for g in groups
            if len(g)
        ]
        if not parts:
            return [np.zeros((0, 0), np.float32) for _ in groups]
        devices = {p.device for p in parts}
        if len(devices) > 1:
            parts = [p.to(self._device) for p in parts]
        flat = self.encode(torch.cat(parts))
        return np.split(flat, np.cumsum([len(g) for g in groups])[:-1])

    def scores(self, embeddings: np.ndarray, category: dict) -> np.ndarray:
        """``100 * cos`` of normalised embeddings ``(N, D)`` with the class text (N,)."""
        if len(embeddings) == 0:
            return np.zeros(0, np.float32)
        text = self.text_embedding(category).cpu().numpy()
        return (100.0 * embeddings @ text).astype(np.float32)

    def describe(self) -> dict:
        info = dict(
            type='ClipScorer',
            model=self.model_name,
            pretrained=self.pretrained,
            text_templates=list(self.text_templates),
            precision=self.precision,
            cutout_margin=self.cutout_margin,
            score='100 * cosine')
        if self.model_config is not None:
            info['model_config'] = self.model_config
        return info


def build_scorer(cfg: Optional[dict]) -> Optional[ClipScorer]:
    """Build the scorer of a build; None (score stage skipped) when ``cfg`` is None or has no
    weights, with one logged line saying so."""
    if cfg is None:
        print_log(
            SKIPPED_MESSAGE.replace('score.pretrained is None', 'score is None'),
            logger='current',
            level=logging.INFO)
        return None
    cfg = dict(cfg)
    cfg.pop('type', None)
    scorer = ClipScorer(**cfg)
    if not scorer.enabled:
        print_log(SKIPPED_MESSAGE, logger='current', level=logging.INFO)
        return None
    return scorer
