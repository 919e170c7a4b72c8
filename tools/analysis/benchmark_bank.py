"""Bank builder throughput against its generator, with random-weight models (no download).

Runs generate -> segment -> score -> filter -> write with a random-weight generator of a real
architecture and reports, in the same run, the images/s of the generator's own compute (raw:
latents -> uint8 on the device), of the diffusers call as the build makes it, of the whole
pipeline, their ratio, each stage's own images/s, the GPU's utilisation and peak memory::

    python tools/analysis/benchmark_bank.py --preset paper --json       # SD 1.5, 50 steps, b32
    python tools/analysis/benchmark_bank.py --preset turbo --json       # 1 step, b64, full VAE
    python tools/analysis/benchmark_bank.py --preset turbo-tiny --segmenter classical sam --json
    python tools/analysis/benchmark_bank.py --preset cpu-tiny --json    # CPU, under a minute

A preset's settings can be overridden one by one (``--images 256``); without ``--preset`` the
options describe the run alone (``--arch sd21 --steps 1 --guidance 0 ...``).
"""
import argparse
import contextlib
import json

from xpaste.testing.benchmark import BENCHMARK_SEGMENTERS, PRESETS, run_benchmark, run_preset
from xpaste.utils.stdio import stdout_to_stderr


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Bank builder throughput vs the bare generator')
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        help='paper (SD 1.5, 50 steps, b32), turbo (SD 2.1 arch, 1 step, b64, full VAE), '
        'turbo-tiny (the same with AutoencoderTiny), cpu-tiny (a CPU run under a minute)')
    parser.add_argument('--tiny', action='store_true', help='the same as --preset cpu-tiny')
    parser.add_argument(
        '--segmenter',
        nargs='+',
        choices=BENCHMARK_SEGMENTERS,
        dest='segmenters',
        help='segmenters of the build (default: classical, in the CPU workers); sam and '
        'clipseg run random-weight models of their real architectures on the GPU; several '
        'make an ensemble')
    parser.add_argument('--sam-type', help='SAM architecture: vit_b, vit_l or vit_h (default)')
    parser.add_argument('--arch', choices=['sd15', 'sd21', 'tiny'], help='default: sd15')
    parser.add_argument('--images', type=int, help='images per measurement (default 128)')
    parser.add_argument('--batch-size', type=int, help='generator batch size (default 32)')
    parser.add_argument('--steps', type=int, help='denoising steps (default 50)')
    parser.add_argument(
        '--guidance', type=float, dest='guidance_scale', help='CFG scale, 0 = no CFG (default 7.5)')
    parser.add_argument('--resolution', type=int, help='image side (default: the arch\'s)')
    parser.add_argument('--dtype', help='generator dtype (default float16; float32 on CPU)')
    parser.add_argument('--device', help='default: cuda if available')
    parser.add_argument('--vae', choices=['full', 'tiny'], help='default: full')
    parser.add_argument('--scheduler', help='diffusers scheduler class')
    parser.add_argument('--clip', help="open_clip architecture of the scorer, 'tiny' or 'none'")
    parser.add_argument(
        '--chunk-size', type=int, help='images per work unit (default: min(batch, 8))')
    parser.add_argument('--workers', type=int, help='CPU workers (default 8)')
    parser.add_argument('--executor', choices=['process', 'thread'])
    parser.add_argument('--segment-side', type=int, help='classical segmenter working side')
    parser.add_argument(
        '--compile', action='store_true', default=None, help='torch.compile the UNet')
    parser.add_argument(
        '--compile-vae', action='store_true', default=None, help='torch.compile the VAE decoder')
    parser.add_argument('--work-dir', help='keep the build here (default: a temporary dir)')
    parser.add_argument(
        '--json',
        nargs='?',
        const='-',
        metavar='PATH',
        help='write the result as json to PATH; without PATH, print it as the only output on '
        'stdout (logs go to stderr)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    preset = 'cpu-tiny' if args.tiny and not args.preset else args.preset
    options = {
        k: v
        for k, v in vars(args).items() if k not in ('tiny', 'json', 'preset') and v is not None
    }
    if args.work_dir:
        options['keep'] = True
    # with --json and no PATH, stdout holds the json object alone; logs go to stderr
    with stdout_to_stderr() if args.json == '-' else contextlib.nullcontext():
        result = run_preset(preset, **options) if preset else run_benchmark(**options)
    text = json.dumps(result, indent=1)
    if args.json == '-':
        print(text)
    elif args.json:
        with open(args.json, 'w') as f:
            f.write(text + '\n')
    return result


if __name__ == '__main__':
    main()
