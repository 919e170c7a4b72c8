import pytest

from xpaste.builder.hub import check_model_source, looks_like_path, resolve_device, torch_dtype


def test_paths_and_hub_ids(tmp_path):
    assert not looks_like_path('runwayml/stable-diffusion-v1-5')
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
    with pytest.raises(FileNotFoundError, match=r"source.model: model path does not exist: "
                       r"'/no/such/sd15'"):
        check_model_source('/no/such/sd15', 'source.model')
    with pytest.raises(FileNotFoundError, match='expected a checkpoint file'):
        check_model_source(str(tmp_path), 'sam', kind='file')
    with pytest.raises(FileNotFoundError, match="'sam_vit_h'"):
        check_model_source('sam_vit_h', 'sam', allow_hub_id=False)
    with pytest.raises(ValueError, match="got ''"):
        check_model_source('', 'x')


def test_devices_and_dtypes():
    assert resolve_device('cuda', 3) == 'cuda:3'
    assert resolve_device('cpu', 3) == 'cpu'
    assert resolve_device('auto', 0) in ('cpu', 'cuda:0')
    assert str(torch_dtype('fp16')) == 'torch.float16'
    with pytest.raises(ValueError, match="got 'float8'"):
        torch_dtype('float8')
