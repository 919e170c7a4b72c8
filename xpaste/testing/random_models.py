"""Random-weight models built from configs, for tests and benchmarks (nothing is downloaded).

Each builder makes a model of a real architecture (or a tiny one) with random weights and, where
the bank builder loads models from disk, saves it in the format the real loading code reads, so
tests exercise ``from_pretrained``/``create_model_and_transforms``/``sam_model_registry``
exactly as a real build does:

- :func:`save_clip_tokenizer`: the CLIP BPE tokenizer (``vocab.json`` + ``merges.txt``) made
  from the vocabulary open_clip ships, identical to Stable Diffusion's tokenizer.
- :func:`build_sd_pipeline`: a ``StableDiffusionPipeline`` with SD 1.5's architecture
  (``arch='sd15'``) or a tiny one (``arch='tiny'``).
- :func:`register_tiny_open_clip`: a tiny open_clip model config;
  :func:`save_tiny_open_clip` (a checkpoint file), :func:`save_tiny_open_clip_dir` (a
  ``local-dir:`` folder).
- :func:`save_sd_single_file`: a pipeline as one original-layout ``.safetensors``/``.ckpt``.
- :func:`save_tiny_sam`: a tiny segment-anything model and its checkpoint.
- :func:`build_clipseg`: a CLIPSeg model and processor (tiny, or ``clipseg-rd64``'s
  architecture); :func:`save_tiny_clipseg` saves the tiny one.
- :func:`build_sam`: segment-anything of a real architecture (``vit_b``/``vit_l``/``vit_h``)
  with random weights, built on its device.
"""
import json
import os
import os.path as osp
import tempfile
from typing import Optional

SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                      'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32)
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    sample_size=512,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    scaling_factor=0.18215)
SD15_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act='quick_gelu',
    projection_dim=768)
# SD 2.1 (512 px) architecture: SD-Turbo's, the one-step distilled generator.
SD21_UNET = dict(
    SD15_UNET,
    cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20),
    use_linear_projection=True)
SD21_TEXT = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    hidden_act='gelu',
    projection_dim=512)
TINY_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(32, 64),
    down_block_types=('CrossAttnDownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D'),
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=32)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=1,
    sample_size=32,
    block_out_channels=(32, 64),
    down_block_types=('DownEncoderBlock2D', ) * 2,
    up_block_types=('UpDecoderBlock2D', ) * 2,
    norm_num_groups=32)
TINY_TEXT = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=32)
SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule='scaled_linear',
    num_train_timesteps=1000,
    steps_offset=1)

TINY_OPEN_CLIP = 'xpaste-tiny-clip'
TINY_OPEN_CLIP_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
TINY_SAM_TYPE = 'xpaste_tiny'


def save_clip_tokenizer(out_dir: str):
    """Write the CLIP BPE tokenizer files to ``out_dir`` and load them as a ``CLIPTokenizer``.

    The vocabulary and merges are open_clip's own (the OpenAI CLIP BPE), with the special
    tokens named as in Hugging Face checkpoints.
    """
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer
    simple = SimpleTokenizer()
    rename = {'<start_of_text>': '<|startoftext|>', '<end_of_text>': '<|endoftext|>'}
    vocab = {rename.get(tok, tok): idx for tok, idx in simple.encoder.items()}
    merges = sorted(simple.bpe_ranks, key=simple.bpe_ranks.get)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'vocab.json'), 'w') as f:
        json.dump(vocab, f)
    with open(osp.join(out_dir, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n' + '\n'.join(' '.join(m) for m in merges) + '\n')
    return CLIPTokenizer(
        osp.join(out_dir, 'vocab.json'),
        osp.join(out_dir, 'merges.txt'),
        pad_token='<|endoftext|>',
        model_max_length=77)


def build_sd_pipeline(arch: str = 'tiny',
                      seed: int = 0,
                      tokenizer_dir: Optional[str] = None,
                      dtype=None,
                      device: str = 'cpu'):
    """A ``StableDiffusionPipeline`` with random weights (no safety checker).

    Args:
        arch (str): ``'sd15'`` (SD 1.5's UNet, VAE and text encoder: 512 px, 860 M UNet
            parameters), ``'sd21'`` (SD 2.1 / SD-Turbo, 512 px) or ``'tiny'`` (32 px).
            Defaults to ``'tiny'``.
        seed (int): Seed of the random weights. Defaults to 0.
        tokenizer_dir (str, optional): Where the tokenizer files go. Defaults to a temporary
            directory.
        dtype (torch.dtype, optional): Defaults to float32.
        device (str): Defaults to ``'cpu'``.
    """
    import torch
    from diffusers import (AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel
    archs = {
        'sd15': (SD15_UNET, SD15_VAE, SD15_TEXT),
        'sd21': (SD21_UNET, SD15_VAE, SD21_TEXT),
        'tiny': (TINY_UNET, TINY_VAE, TINY_TEXT)
    }
    if arch not in archs:
        raise ValueError(f'arch must be one of {sorted(archs)}, got {arch!r}')
    unet_cfg, vae_cfg, text_cfg = archs[arch]
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    tokenizer = save_clip_tokenizer(tokenizer_dir or tempfile.mkdtemp(prefix='clip-tok-'))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(**SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False)
    if dtype is not None:
        pipe.to(dtype=dtype)
    return pipe


def build_tiny_vae(arch: str = 'tiny', seed: int = 0, device: str = 'cpu'):
    """A random ``AutoencoderTiny`` (TAESD's architecture for ``'sd'``, a small one for
    ``'tiny'``)."""
    import torch
    from diffusers import AutoencoderTiny
    torch.manual_seed(seed)
    kwargs = {} if arch != 'tiny' else dict(
        encoder_block_out_channels=(16, 16),
        decoder_block_out_channels=(16, 16),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1))
    with torch.device(device):
        return AutoencoderTiny(**kwargs)


def save_sd_pipeline(out_dir: str, arch: str = 'tiny', seed: int = 0) -> str:
    """Build a random :func:`build_sd_pipeline` and ``save_pretrained`` it to ``out_dir``."""
    pipe = build_sd_pipeline(arch, seed, tokenizer_dir=osp.join(out_dir, '_tokenizer_src'))
    pipe.save_pretrained(out_dir)
    return out_dir


def register_tiny_open_clip(config_dir: Optional[str] = None) -> str:
    """Register the tiny open_clip config :data:`TINY_OPEN_CLIP`; returns its name."""
    import open_clip
    if open_clip.get_model_config(TINY_OPEN_CLIP) is None:
        config_dir = config_dir or tempfile.mkdtemp(prefix='open-clip-cfg-')
        path = osp.join(config_dir, f'{TINY_OPEN_CLIP}.json')
        with open(path, 'w') as f:
            json.dump(TINY_OPEN_CLIP_CFG, f)
        open_clip.add_model_config(path)
    return TINY_OPEN_CLIP


def save_tiny_open_clip(path: str, seed: int = 0) -> str:
    """Save the random weights of the tiny open_clip model to checkpoint file ``path``."""
    import open_clip
    import torch
    name = register_tiny_open_clip()
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def save_tiny_open_clip_dir(out_dir: str, seed: int = 0, safetensors: bool = True) -> str:
    """Save the tiny open_clip model as a folder open_clip loads as ``'local-dir:<out_dir>'``
    (``open_clip_config.json`` with ``model_cfg``/``preprocess_cfg``, and
    ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``); same weights as
    :func:`save_tiny_open_clip` with the same seed. Returns ``out_dir``."""
    import open_clip
    import torch
    name = register_tiny_open_clip()
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    os.makedirs(out_dir, exist_ok=True)
    config = dict(
        model_cfg=TINY_OPEN_CLIP_CFG,
        preprocess_cfg=dict(mean=list(model.visual.image_mean), std=list(model.visual.image_std)))
    with open(osp.join(out_dir, 'open_clip_config.json'), 'w') as f:
        json.dump(config, f)
    if safetensors:
        from safetensors.torch import save_file
        save_file(model.state_dict(), osp.join(out_dir, 'open_clip_model.safetensors'))
    else:
        torch.save(model.state_dict(), osp.join(out_dir, 'open_clip_pytorch_model.bin'))
    return out_dir


def build_tiny_sam(checkpoint: Optional[str] = None):
    """A tiny segment-anything model (64 px input); loads ``checkpoint`` when given."""
    from functools import partial

    import torch
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=1,
            embed_dim=32,
            img_size=64,
            mlp_ratio=2.0,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(0, ),
            window_size=0,
            out_chans=16),
        prompt_encoder=PromptEncoder(
            embed_dim=16, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=16, mlp_dim=32, num_heads=2),
            transformer_dim=16,
            iou_head_depth=1,
            iou_head_hidden_dim=16),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375])
    sam.eval()
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location='cpu'))
    return sam


def build_sam(model_type: str = 'vit_h', seed: int = 0, device: str = 'cpu'):
    """segment-anything of a real architecture with random weights, built on ``device``
    (``'xpaste_tiny'``: the tiny one)."""
    import torch
    from segment_anything import sam_model_registry
    torch.manual_seed(seed)
    if model_type == TINY_SAM_TYPE:
        return build_tiny_sam().to(device)
    with torch.device(device):
        return sam_model_registry[model_type](checkpoint=None).eval()


def save_tiny_sam(path: str, seed: int = 0) -> str:
    """Save a random tiny SAM checkpoint to ``path`` and register its builder as
    ``sam_model_registry['xpaste_tiny']``; returns ``path``."""
    import torch
    from segment_anything import sam_model_registry
    sam_model_registry[TINY_SAM_TYPE] = build_tiny_sam
    torch.manual_seed(seed)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(build_tiny_sam().state_dict(), path)
    return path


#: CLIPSeg ``CIDAS/clipseg-rd64-refined``'s architecture: transformers' default CLIPSeg
#: config (ViT-B/16 CLIP, reduce_dim 64, layers 3/6/9) at its 352 px input.
CLIPSEG_RD64_SIDE = 352
TINY_CLIPSEG = dict(
    text_config=dict(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77),
    vision_config=dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8),
    projection_dim=32,
    extract_layers=[1],
    reduce_dim=16,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=32)


def build_clipseg(arch: str = 'tiny', seed: int = 0, tokenizer_dir: Optional[str] = None):
    """A random CLIPSeg model and its processor: ``'tiny'`` (32 px) or ``'rd64'`` (the
    architecture of ``CIDAS/clipseg-rd64-refined``, 352 px).

    Returns:
        tuple: ``(CLIPSegForImageSegmentation, CLIPSegProcessor)``.
    """
    import torch
    from transformers import (CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor,
                              ViTImageProcessor)
    if arch not in ('tiny', 'rd64'):
        raise ValueError(f"arch must be 'tiny' or 'rd64', got {arch!r}")
    torch.manual_seed(seed)
    config = CLIPSegConfig(**TINY_CLIPSEG) if arch == 'tiny' else CLIPSegConfig()
    side = 32 if arch == 'tiny' else CLIPSEG_RD64_SIDE
    model = CLIPSegForImageSegmentation(config).eval()
    tokenizer = save_clip_tokenizer(tokenizer_dir or tempfile.mkdtemp(prefix='clip-tok-'))
    image_processor = ViTImageProcessor(
        do_resize=True,
        size=dict(height=side, width=side),
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225])
    return model, CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)


def save_tiny_clipseg(out_dir: str, seed: int = 0) -> str:
    """Save a random tiny CLIPSeg model and its processor (32 px) to ``out_dir``."""
    model, processor = build_clipseg(
        'tiny', seed, tokenizer_dir=osp.join(out_dir, '_tokenizer_src'))
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


# --------------------------------------------------------------------------------------------
# single-file (original Stable Diffusion / LDM layout) checkpoints
# --------------------------------------------------------------------------------------------
_UNET_RESNET_LDM = (('norm1', 'in_layers.0'), ('conv1', 'in_layers.2'), ('norm2', 'out_layers.0'),
                    ('conv2', 'out_layers.3'), ('time_emb_proj', 'emb_layers.1'),
                    ('conv_shortcut', 'skip_connection'))
_VAE_ATTN_LDM = (
    ('group_norm', 'norm'),
    ('to_q', 'q'),
    ('to_k', 'k'),
    ('to_v', 'v'),
    ('to_out.0', 'proj_out'),
)


def _rename(key: str, table) -> str:
    head, _, leaf = key.rpartition('.')  # keep 'weight'/'bias'
    for new, old in table:
        if head == new or head.startswith(new + '.'):
            head = old + head[len(new):]
            break
    return f'{head}.{leaf}'


def _unet_key_to_ldm(key: str, layers_per_block: int, up_attention: set) -> str:
    """One diffusers ``UNet2DConditionModel`` key in the original (LDM) layout: the inverse of
    the mapping of diffusers' ``convert_ldm_unet_checkpoint``."""
    step = layers_per_block + 1
    fixed = {
        'time_embedding.linear_1': 'time_embed.0',
        'time_embedding.linear_2': 'time_embed.2',
        'conv_in': 'input_blocks.0.0',
        'conv_norm_out': 'out.0',
        'conv_out': 'out.2'
    }
    head, _, leaf = key.rpartition('.')
    if head in fixed:
        return f'{fixed[head]}.{leaf}'
    parts = key.split('.')
    if parts[0] == 'mid_block':
        kind, idx, rest = parts[1], int(parts[2]), '.'.join(parts[3:])
        if kind == 'resnets':
            return f'middle_block.{2 * idx}.' + _rename(rest, _UNET_RESNET_LDM)
        return f'middle_block.1.{rest}'
    block, kind, idx, rest = int(parts[1]), parts[2], int(parts[3]), '.'.join(parts[4:])
    if parts[0] == 'down_blocks':
        if kind == 'downsamplers':  # 'conv.weight' -> 'op.weight'
            return f'input_blocks.{1 + block * step + layers_per_block}.0.op.{parts[-1]}'
        prefix = f'input_blocks.{1 + block * step + idx}'
    elif parts[0] == 'up_blocks':
        if kind == 'upsamplers':
            slot = 2 if block in up_attention else 1
            return f'output_blocks.{block * step + layers_per_block}.{slot}.{rest}'
        prefix = f'output_blocks.{block * step + idx}'
    else:
        raise ValueError(f'no original-layout name for UNet key {key!r}')
    if kind == 'resnets':
        return f'{prefix}.0.' + _rename(rest, _UNET_RESNET_LDM)
    return f'{prefix}.1.{rest}'


def _vae_key_to_ldm(key: str, num_up: int) -> str:
    """One diffusers ``AutoencoderKL`` key in the original layout (inverse of diffusers'
    ``convert_ldm_vae_checkpoint``)."""
    parts = key.split('.')
    if parts[0] not in ('encoder', 'decoder'):
        return key  # quant_conv, post_quant_conv
    side, rest = parts[0], parts[1:]
    if rest[0] == 'conv_norm_out':
        return f'{side}.norm_out.{rest[1]}'
    if rest[0] in ('conv_in', 'conv_out'):
        return key
    if rest[0] == 'mid_block':
        kind, idx, tail = rest[1], int(rest[2]), '.'.join(rest[3:])
        if kind == 'resnets':
            return f'{side}.mid.block_{idx + 1}.' + tail.replace('conv_shortcut', 'nin_shortcut')
        return f'{side}.mid.attn_1.' + _rename(tail, _VAE_ATTN_LDM)
    block, kind, tail = int(rest[1]), rest[2], '.'.join(rest[3:])
    name = 'down' if rest[0] == 'down_blocks' else 'up'
    ldm_block = block if name == 'down' else num_up - 1 - block
    if kind == 'resnets':
        return f'{side}.{name}.{ldm_block}.block.' + tail.replace('conv_shortcut', 'nin_shortcut')
    sampler = 'downsample' if name == 'down' else 'upsample'
    return f'{side}.{name}.{ldm_block}.{sampler}.' + tail.split('.', 1)[1]  # drop the '0.'


def sd_single_file_state_dict(pipe) -> dict:
    """The weights of an SD 1.x ``StableDiffusionPipeline`` as one state dict in the original
    Stable Diffusion (LDM) layout, as ``.ckpt``/``.safetensors`` checkpoints are distributed:
    ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE, attention projections as
    1x1 convolutions), ``cond_stage_model.transformer.*`` (CLIP text encoder).

    The layout is checked by converting it back with diffusers' own single-file converters.
    """
    from diffusers.loaders.single_file_utils import (convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    unet_cfg, vae_cfg = dict(pipe.unet.config), dict(pipe.vae.config)
    up_attention = {
        i
        for i, block in enumerate(pipe.unet.up_blocks) if getattr(block, 'attentions', None)
    }
    out = {}
    unet_sd = pipe.unet.state_dict()
    for key, value in unet_sd.items():
        out['model.diffusion_model.' +
            _unet_key_to_ldm(key, unet_cfg['layers_per_block'], up_attention)] = value.contiguous()
    vae_sd = pipe.vae.state_dict()
    for key, value in vae_sd.items():
        ldm = _vae_key_to_ldm(key, len(vae_cfg['up_block_types']))
        if '.mid.attn_1.' in ldm and ldm.endswith('.weight') and value.ndim == 2:
            value = value[:, :, None, None]
        out['first_stage_model.' + ldm] = value.contiguous()
    for key, value in pipe.text_encoder.state_dict().items():
        # original checkpoints keep transformers' older 'text_model.' wrapper in the names
        key = key if key.startswith('text_model.') else 'text_model.' + key
        out['cond_stage_model.transformer.' + key] = value.contiguous()
    # round trip through diffusers' converters: every key comes back under its own name
    for converted, original in (
        (convert_ldm_unet_checkpoint(out, unet_cfg), unet_sd),
        (convert_ldm_vae_checkpoint(out, vae_cfg), vae_sd),
    ):
        if set(converted) != set(original):
            raise RuntimeError('original-layout conversion lost keys: '
                               f'{sorted(set(original) ^ set(converted))[:5]}')
    return out


def save_sd_single_file(path: str,
                        arch: str = 'tiny',
                        seed: int = 0,
                        config_dir: Optional[str] = None):
    """Save a random :func:`build_sd_pipeline` as one original-layout checkpoint file.

    Args:
        path (str): ``.safetensors`` (safetensors) or ``.ckpt`` (``torch.save`` of
            ``{'state_dict': ...}``, as original checkpoints are).
        arch (str): See :func:`build_sd_pipeline`. Defaults to ``'tiny'``.
        seed (int): Seed of the random weights. Defaults to 0.
        config_dir (str, optional): Also write the pipeline's diffusers configs, without any
            weights (``model_index.json``, component configs, tokenizer, scheduler): what
            ``from_single_file(config=...)`` reads to load the file offline. Defaults to None.

    Returns:
        StableDiffusionPipeline: The pipeline whose weights were saved.
    """
    import torch
    pipe = build_sd_pipeline(arch, seed)
    state = sd_single_file_state_dict(pipe)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        torch.save({'state_dict': state}, path)
    if config_dir is not None:
        pipe.save_config(config_dir)
        for name in ('unet', 'vae', 'scheduler'):
            getattr(pipe, name).save_config(osp.join(config_dir, name))
        pipe.text_encoder.config.save_pretrained(osp.join(config_dir, 'text_encoder'))
        pipe.tokenizer.save_pretrained(osp.join(config_dir, 'tokenizer'))
    return pipe
