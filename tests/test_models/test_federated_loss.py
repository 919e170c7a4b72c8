"""FederatedLoss: sigmoid cross-entropy restricted to the present + sampled classes."""
import json
import math

import pytest
import torch

from xpaste.models import FederatedLoss, federated_classes, load_class_frequency


def _bce(logit, target):
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def _freq_file(tmp_path, counts):
    path = tmp_path / 'cat_info.json'
    # shuffled record order: the loader sorts by id
    records = [dict(id=i + 1, name=f'c{i}', image_count=c) for i, c in enumerate(counts)]
    path.write_text(json.dumps(records[::-1]))
    return str(path)


def test_loss_equals_hand_computed_value_on_the_trained_classes(tmp_path):
    # 4 classes; class 2 has no training image, so it is never sampled; with 3 classes to
    # train (num_sample_cats=3) and labels {0, background}, the subset is {0, bg, 1 or 3}.
    # Rows: a class-0 proposal and a background proposal; logits chosen by hand.
    torch.manual_seed(0)
    loss_fn = FederatedLoss(class_freq_file=_freq_file(tmp_path, [5, 4, 0, 9]),
                            num_sample_cats=3)
    logits = torch.tensor([[2.0, -1.0, 3.0, 0.5, 7.0],
                           [-2.0, 1.0, 4.0, -0.5, -7.0]])
    labels = torch.tensor([0, 4])
    loss = loss_fn(logits, labels)
    # the sampled third class is either 1 or 3 (weights sqrt(4), sqrt(9)); class 2 never
    with_1 = (_bce(2.0, 1) + _bce(-1.0, 0) + _bce(-2.0, 0) + _bce(1.0, 0)) / 2
    with_3 = (_bce(2.0, 1) + _bce(0.5, 0) + _bce(-2.0, 0) + _bce(-0.5, 0)) / 2
    assert min(abs(loss.item() - with_1), abs(loss.item() - with_3)) < 1e-5
    # the untrained class 2 (logits 3, 4) and the background logit (7, -7) have no effect
    changed = logits.clone()
    changed[:, 2] = -10.0
    changed[:, 4] = 0.0
    torch.manual_seed(0)
    loss_fn2 = FederatedLoss(class_freq_file=_freq_file(tmp_path, [5, 4, 0, 9]),
                             num_sample_cats=3)
    assert loss_fn2(changed, labels).item() == pytest.approx(loss.item(), abs=1e-6)


def test_without_frequency_file_every_class_is_trained():
    loss_fn = FederatedLoss(class_freq_file=None)
    logits = torch.tensor([[1.0, -1.0, 0.0, 5.0]])
    expected = _bce(1.0, 0) + _bce(-1.0, 1) + _bce(0.0, 0)
    assert loss_fn(logits, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-5)


def test_ignores_classes_outside_the_subset_in_gradients(tmp_path):
    counts = [1] * 200
    loss_fn = FederatedLoss(class_freq_file=_freq_file(tmp_path, counts), num_sample_cats=10)
    logits = torch.zeros(8, 201, requires_grad=True)
    labels = torch.tensor([3, 3, 7, 200, 200, 200, 200, 200])
    loss_fn(logits, labels).backward()
    trained = (logits.grad[:, :200].abs().sum(0) > 0).nonzero().flatten().tolist()
    assert 3 in trained and 7 in trained
    # 10 entries including the background label -> 9 foreground classes get gradients
    assert len(trained) == 9
    assert logits.grad[:, 200].abs().sum() == 0


@pytest.mark.parametrize('seed', range(5))
def test_sampled_set_always_contains_the_present_classes(seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.rand(100, generator=gen) + 0.01
    labels = torch.randint(0, 101, (30, ), generator=gen)
    classes = federated_classes(labels, 100, 50, weight, generator=gen)
    assert set(labels.tolist()) <= set(classes.tolist())
    assert len(classes) == 50 and len(set(classes.tolist())) == 50
    assert ((classes >= 0) & (classes <= 100)).all()


def test_more_present_classes_than_the_subset_are_all_kept():
    labels = torch.arange(60)
    classes = federated_classes(labels, 100, 50, torch.ones(100))
    assert sorted(classes.tolist()) == list(range(60))


def test_sampling_follows_the_frequency_weight():
    # class 1 is 100x likelier than class 0 (weight sqrt(10000) vs sqrt(1))
    gen = torch.Generator().manual_seed(0)
    weight = torch.tensor([1.0, 10000.0, 1.0]) ** 0.5
    picks = [federated_classes(torch.tensor([3]), 3, 2, weight, gen)[1].item()
             for _ in range(200)]
    assert picks.count(1) > 150


def test_missing_or_mismatched_frequency_file_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match='lvis_class_frequency.py'):
        load_class_frequency(str(tmp_path / 'missing.json'))
    path = _freq_file(tmp_path, [1, 2, 3])
    with pytest.raises(ValueError, match='num_classes=5'):
        load_class_frequency(path, 5)
    assert load_class_frequency(path, 3).tolist() == [1.0, 2.0, 3.0]


def test_activation_and_accuracy():
    loss_fn = FederatedLoss()
    assert loss_fn.get_cls_channels(10) == 11
    scores = torch.tensor([[5.0, -5.0, 0.0], [-5.0, 5.0, 0.0], [5.0, -5.0, 0.0]])
    assert torch.allclose(loss_fn.get_activation(scores), scores.sigmoid())
    acc = loss_fn.get_accuracy(scores, torch.tensor([0, 0, 2]))['acc']
    assert acc.item() == pytest.approx(50.0)  # background rows are not counted
