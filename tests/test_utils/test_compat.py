import numpy as np
import pytest
import torch

from xpaste.utils.compat import apply_lvis_numpy_compat, apply_torch_load_compat


class Arbitrary:
    """A class no allow-list knows: loading it must still be refused."""


def test_lvis_numpy_shim_is_local_to_lvis():
    assert apply_lvis_numpy_compat()
    import lvis.eval as lvis_eval
    assert lvis_eval.np.float is float
    # numpy itself is left as it is (numpy >= 1.24 has no np.float; the shim must not add it)
    assert not hasattr(np, 'float')
    assert lvis_eval.np.cumsum is np.cumsum
    apply_lvis_numpy_compat()  # idempotent
    assert lvis_eval.np.float is float


def test_checkpoint_with_message_hub_loads_safely(tmp_path):
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(np.float64(1.5))
    ckpt = {'state_dict': {'w': torch.ones(2)},
            'meta': {'iter': np.int64(3), 'arr': np.arange(3), 'dtype': np.dtype('float32')},
            'message_hub': {'log_scalars': {'loss': buf}}}
    path = tmp_path / 'ckpt.pth'
    apply_torch_load_compat()
    torch.save(ckpt, path)
    loaded = torch.load(path, map_location='cpu')  # weights_only=True by default
    assert loaded['meta']['iter'] == 3
    restored = loaded['message_hub']['log_scalars']['loss']
    assert isinstance(restored, HistoryBuffer)
    assert restored.mean() == 1.5 and restored.statistics('mean') == 1.5
    torch.save({'x': Arbitrary()}, tmp_path / 'evil.pth')
    with pytest.raises(Exception, match='weights_only|Unsupported global'):
        torch.load(tmp_path / 'evil.pth', map_location='cpu')
