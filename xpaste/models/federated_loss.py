"""Sigmoid cross-entropy with the federated loss of CenterNet2/Detic, for any mmdet RoI head.

LVIS is annotated federatedly: an image is exhaustively labelled only for some classes, so a
proposal must not be pushed down for every class it is not. The federated loss (Zhou et al.,
"Probabilistic two-stage detection", 2021; Detic's ``sigmoid_cross_entropy_loss``) trains the
sigmoid of a class only on a subset of the classes for each batch:

1. the classes of the proposals' labels (background excluded);
2. more classes drawn without replacement with probability proportional to
   ``image_count ** freq_weight_power`` (0.5) until the subset holds ``num_sample_cats`` (50)
   entries. As in Detic's ``get_fed_loss_inds``, the background label counts towards the 50 when
   present, and the draw runs over the proposals of one call (one GPU's batch), not per image.

The loss is ``sum(BCE(logits, one_hot) * in_subset) / num_proposals``. Class frequencies come
from a json written by ``tools/data/lvis_class_frequency.py`` (Detic's
``lvis_v1_train_cat_info.json`` has the same format and works too).
"""
import json
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS

FREQ_TOOL = 'tools/data/lvis_class_frequency.py'


def class_frequency_records(categories: Sequence[dict], image_counts: dict) -> list:
    """The records of a class-frequency file, in category id order.

    Args:
        categories (Sequence[dict]): The json's ``categories`` (``id``, ``name``, optional
            LVIS ``frequency``).
        image_counts (dict): ``{name: number of training images holding the class}``.

    Returns:
        list[dict]: ``{'id', 'name', 'image_count'[, 'frequency']}`` sorted by id.
    """
    records = []
    for cat in sorted(categories, key=lambda c: c['id']):
        rec = dict(id=int(cat['id']), name=cat['name'], image_count=int(image_counts[cat['name']]))
        if 'frequency' in cat:
            rec['frequency'] = cat['frequency']
        records.append(rec)
    return records


def load_class_frequency(path: str, num_classes: Optional[int] = None) -> torch.Tensor:
    """Image count per class, in label (category id) order.

    Args:
        path (str): A class-frequency json: a list of ``{'id', 'image_count', ...}``.
        num_classes (int, optional): Expected number of classes; checked when given.

    Returns:
        Tensor: float32 image counts, shape ``(num_classes,)``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'class frequency file not found: {path!r} (the federated loss samples classes by '
            f'training frequency). Write it with: python {FREQ_TOOL} '
            f'<train annotations json> --out {path}')
    with open(path, encoding='utf-8') as f:
        records = json.load(f)
    if not isinstance(records, list) or not all(
            isinstance(r, dict) and 'id' in r and 'image_count' in r for r in records):
        raise ValueError(f'{path}: expected a json list of {{"id", "image_count", ...}} records '
                         f'(as written by {FREQ_TOOL})')
    counts = [r['image_count'] for r in sorted(records, key=lambda r: r['id'])]
    if num_classes is not None and len(counts) != num_classes:
        raise ValueError(f'{path}: {len(counts)} classes, but the head has num_classes='
                         f'{num_classes}; write the file from the training json of this dataset '
                         f'with {FREQ_TOOL}')
    return torch.tensor(counts, dtype=torch.float32)


def federated_classes(labels: torch.Tensor, num_classes: int, num_sample_cats: int,
                      weight: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The classes whose sigmoid is trained for these proposal labels (Detic's
    ``get_fed_loss_inds``).

    Args:
        labels (Tensor): Proposal labels in ``[0, num_classes]`` (``num_classes`` =
            background).
        num_classes (int): Number of foreground classes C.
        num_sample_cats (int): Size of the subset, the present labels included (50).
        weight (Tensor, optional): Sampling weight per class, shape ``(C,)``; uniform if None.
        generator (torch.Generator, optional): Random generator of the draw.

    Returns:
        Tensor: Unique class indices (may include ``num_classes``, the background label).
    """
    appeared = torch.unique(labels)
    if len(appeared) >= num_sample_cats:
        return appeared
    prob = labels.new_ones(num_classes + 1, dtype=torch.float32)
    prob[-1] = 0
    if weight is not None:
        prob[:num_classes] = weight.to(prob)
    prob[appeared] = 0
    more = min(num_sample_cats - len(appeared), int((prob > 0).sum()))
    if more == 0:
        return appeared
    extra = torch.multinomial(prob, more, replacement=False, generator=generator)
    return torch.cat([appeared, extra])


@MODELS.register_module()
class FederatedLoss(nn.Module):
    """Sigmoid cross-entropy over C class logits, optionally federated.

    Use it as ``loss_cls`` of any mmdet bbox head: the head then has C + 1 class outputs (the
    last, background, logit is unused, as in Detic), its scores are sigmoids, and its accuracy
    is the foreground accuracy. With ``class_freq_file=None`` every class is trained (plain
    sigmoid cross-entropy, for exhaustively annotated data such as COCO).

    Args:
        class_freq_file (str, optional): Class-frequency json (``tools/data/
            lvis_class_frequency.py``); read at the first call. None disables the federated
            sampling. Defaults to None.
        num_sample_cats (int): Classes trained per call, present ones included. Defaults to 50
            (Detic ``FED_LOSS_NUM_CAT``).
        freq_weight_power (float): Sampling weight ``image_count ** power``. Defaults to 0.5
            (Detic ``FED_LOSS_FREQ_WEIGHT``).
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def __init__(self, class_freq_file: Optional[str] = None, num_sample_cats: int = 50,
                 freq_weight_power: float = 0.5, loss_weight: float = 1.0):
        super().__init__()
        if num_sample_cats < 1:
            raise ValueError(f'num_sample_cats must be >= 1, got {num_sample_cats}')
        self.class_freq_file = class_freq_file
        self.num_sample_cats = num_sample_cats
        self.freq_weight_power = freq_weight_power
        self.loss_weight = loss_weight
        self._freq_weight = None

    def get_cls_channels(self, num_classes: int) -> int:
        return num_classes + 1

    def get_activation(self, cls_score: torch.Tensor) -> torch.Tensor:
        return cls_score.sigmoid()

    def get_accuracy(self, cls_score: torch.Tensor, labels: torch.Tensor) -> dict:
        """Accuracy (%) of the arg-max class over foreground proposals."""
        num_classes = cls_score.size(1) - 1
        fg = (labels >= 0) & (labels < num_classes)
        if not fg.any():
            return dict(acc=cls_score.new_tensor(0.))
        pred = cls_score[fg, :num_classes].argmax(dim=1)
        return dict(acc=(pred == labels[fg]).float().mean() * 100)

    def freq_weight(self, num_classes: int, device) -> Optional[torch.Tensor]:
        """Sampling weight per class (None without a frequency file)."""
        if self.class_freq_file is None:
            return None
        if self._freq_weight is None:
            counts = load_class_frequency(self.class_freq_file, num_classes)
            self._freq_weight = counts ** self.freq_weight_power
        return self._freq_weight.to(device)

    def forward(self, cls_score: torch.Tensor, labels: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> torch.Tensor:
        """Loss of ``cls_score`` (N, C + 1) against ``labels`` (N,) in ``[0, C]``.

        ``weight`` (N,) scales proposals; the sum is divided by ``avg_factor`` (the number of
        proposals when None, as Detic divides by the batch of proposals).
        """
        if reduction_override not in (None, 'mean'):
            raise ValueError(f'FederatedLoss supports only mean reduction, got '
                             f'{reduction_override!r}')
        num = cls_score.size(0)
        if num == 0:
            return cls_score.sum() * 0
        num_classes = cls_score.size(1) - 1
        target = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(cls_score)
        loss = F.binary_cross_entropy_with_logits(
            cls_score[:, :num_classes], target, reduction='none')
        fw = self.freq_weight(num_classes, cls_score.device)
        if fw is not None:
            classes = federated_classes(labels, num_classes, self.num_sample_cats, fw)
            mask = cls_score.new_zeros(num_classes + 1)
            mask[classes] = 1
            loss = loss * mask[:num_classes]
        if weight is not None:
            loss = loss * weight.view(-1, 1).to(loss)
        denom = float(num) if avg_factor is None else max(float(avg_factor), 1.0)
        return self.loss_weight * loss.sum() / denom

    def extra_repr(self) -> str:
        return (f'class_freq_file={self.class_freq_file!r}, num_sample_cats='
                f'{self.num_sample_cats}, freq_weight_power={self.freq_weight_power}, '
                f'loss_weight={self.loss_weight}')
