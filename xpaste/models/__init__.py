"""What X-Paste's detector needs that mmdet 3.x lacks: CenterNet2 and the federated loss.

Importing registers the modules into mmdet's ``MODELS``; configs do it with
``custom_imports = dict(imports=['xpaste.datasets', 'xpaste.models'], allow_failed_imports=False)``.
"""
from .bbox_head import CenterNet2BBoxHead
from .centernet_head import CenterNetProposalHead
from .detector import CenterNet2, missing_pretrained
from .federated_loss import (FederatedLoss, class_frequency_records, federated_classes,
                             load_class_frequency)
from .roi_head import CenterNet2RoIHead, combine_scores

__all__ = [
    'CenterNet2', 'CenterNet2BBoxHead', 'CenterNet2RoIHead', 'CenterNetProposalHead',
    'FederatedLoss', 'class_frequency_records', 'combine_scores', 'federated_classes',
    'load_class_frequency', 'missing_pretrained'
]
