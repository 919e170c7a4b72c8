import pytest

from xpaste.builder import hub
from xpaste.builder.hub import (check_model_source, hub_id_note, load_error, looks_like_path,
                                resolve_device, resolve_dtype, torch_dtype)


def test_paths_and_hub_ids(tmp_path):
    assert not looks_like_path('stable-diffusion-v1-5/stable-diffusion-v1-5')
    assert not looks_like_path('ViT-L-14')
    assert looks_like_path('/abs/model')
    assert looks_like_path('./rel/model')
    assert looks_like_path('ckpt/sam_vit_h.pth')
    assert looks_like_path('a/b/c')
    assert looks_like_path(str(tmp_path))


def test_check_model_source(tmp_path):
    assert check_model_source('stabilityai/sd-turbo', 'source.model') == 'stabilityai/sd-turbo'
    assert check_model_source(None, 'x') is None
    assert check_model_source(str(tmp_path), 'source.model', kind='dir') == str(tmp_path)
    with pytest.raises(
            FileNotFoundError, match=r"source.model: model path does not exist: "
            r"'/no/such/sd15'"):
        check_model_source('/no/such/sd15', 'source.model')
    with pytest.raises(FileNotFoundError, match='expected a checkpoint file'):
        check_model_source(str(tmp_path), 'sam', kind='file')
    with pytest.raises(FileNotFoundError, match="'sam_vit_h'"):
        check_model_source('sam_vit_h', 'sam', allow_hub_id=False)
    with pytest.raises(ValueError, match="got ''"):
        check_model_source('', 'x')


def fake_cuda(monkeypatch, count):
    """Make torch see ``count`` CUDA devices (0: no CUDA)."""
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: count > 0)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: count)


def test_devices_and_dtypes(monkeypatch):
    with monkeypatch.context() as m:
        fake_cuda(m, 4)
        assert resolve_device('cuda', 3) == 'cuda:3'
    assert resolve_device('cpu', 3) == 'cpu'
    assert resolve_device('auto', 0) in ('cpu', 'cuda:0')
    assert str(torch_dtype('fp16')) == 'torch.float16'
    with pytest.raises(ValueError, match="got 'float8'"):
        torch_dtype('float8')


def test_cuda_device_follows_the_visible_devices(monkeypatch):
    fake_cuda(monkeypatch, 1)  # srun --gpus-per-task=1: each rank sees its own GPU as cuda:0
    assert resolve_device('cuda', 3) == 'cuda:0'
    assert resolve_device('auto', 5) == 'cuda:0'
    assert resolve_device('cuda:0', 3) == 'cuda:0'
    with pytest.raises(
            RuntimeError, match=r"device='cuda:1', but the visible CUDA devices are "
            r'cuda:0..cuda:0'):
        resolve_device('cuda:1', 0, 'source')
    fake_cuda(monkeypatch, 2)
    assert resolve_device('cuda', 1) == 'cuda:1'
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '4,5')
    with pytest.raises(
            RuntimeError,
            match=r"score: device='cuda' on local rank 3, but only 2 "
            r"CUDA devices are visible \(CUDA_VISIBLE_DEVICES='4,5'\)"):
        resolve_device('cuda', 3, 'score')


def test_cpu_fallback_warns_once_per_component_and_cuda_without_cuda_fails(
        monkeypatch, log_messages):
    fake_cuda(monkeypatch, 0)
    monkeypatch.setattr(hub, '_WARNED_CPU', set())
    assert resolve_device('auto', 0, 'source') == 'cpu'
    assert resolve_device(None, 0, 'source') == 'cpu'
    assert resolve_device('auto', 0, "segmenter 'sam'") == 'cpu'
    assert resolve_device('cpu', 0, 'score') == 'cpu'
    warned = [m for m in log_messages if 'CUDA is not available' in m]
    assert len(warned) == 2
    assert warned[0].startswith("source: device='auto'") and 'runs on the CPU' in warned[0]
    assert warned[1].startswith("segmenter 'sam'")
    with pytest.raises(RuntimeError, match=r"source: device='cuda' but CUDA is not available"):
        resolve_device('cuda', 0, 'source')
    with pytest.raises(RuntimeError, match='CUDA is not available'):
        resolve_device('cuda:0', 0)


def test_resolve_dtype_falls_back_on_cpu(log_messages):
    import torch
    assert resolve_dtype('float16', 'cuda:0', 'source') == torch.float16
    assert resolve_dtype('float16', 'cpu', 'source') == torch.float32
    assert resolve_dtype('bfloat16', 'cpu', 'sam', cpu_dtypes=('float32', 'bfloat16')) \
        == torch.bfloat16
    assert any(m.startswith('source: dtype float16 on the CPU') for m in log_messages)


def test_relative_org_name_is_a_path_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not looks_like_path('models/sd15')
    assert 'taken as a hub id because no local directory' in hub_id_note('models/sd15')
    (tmp_path / 'models' / 'sd15').mkdir(parents=True)
    assert looks_like_path('models/sd15')
    assert check_model_source('models/sd15', 'source.model', kind='dir') == 'models/sd15'
    assert hub_id_note('models/sd15') == ''
    assert hub_id_note('ViT-L-14') == ''  # a name without a slash: never a local folder
    error = load_error('source.model', 'org/missing', OSError('not found'))
    assert str(error).startswith("source.model: cannot load 'org/missing' (OSError: not found)")
    assert f"no local directory {str(tmp_path / 'org' / 'missing')!r} exists" in str(error)
