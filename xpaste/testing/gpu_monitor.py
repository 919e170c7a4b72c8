"""What a benchmark block costs the machine: GPU utilisation (sampled), peak GPU and host memory.

:class:`GpuMonitor` samples the GPU's utilisation while a block runs (``nvidia-smi``, or
``torch.cuda.utilization`` when pynvml is installed) and reads torch's peak of allocated GPU
memory; :func:`host_peak_memory_mb` reads the peak resident memory of this process and of its
largest worker. On a machine without CUDA every GPU figure is None and ``gpu_reason`` says why.
"""
import os
import resource
import shutil
import subprocess
import sys
import threading
from typing import Optional


def host_peak_memory_mb() -> dict:
    """Peak resident memory (MiB) of this process and of its largest finished child (the
    worker processes of a build, once they are gone)."""
    scale = 1 / 1024 if sys.platform != 'darwin' else 1 / 2**20  # ru_maxrss: KiB on Linux
    return dict(
        host_peak_memory_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1),
        host_peak_memory_workers_mb=round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale, 1))


def _nvidia_smi_sampler(index: int):
    """A function returning the utilisation (%) of GPU ``index`` now, or None without a way
    to read it."""
    import torch
    try:
        torch.cuda.utilization(index)
        return lambda: float(torch.cuda.utilization(index))
    except (ImportError, RuntimeError, ValueError):
        pass
    exe = shutil.which('nvidia-smi')
    if exe is None:
        return None
    visible = os.environ.get('CUDA_VISIBLE_DEVICES', '').split(',')
    if index < len(visible) and visible[index].strip().isdigit():  # nvidia-smi counts all GPUs
        index = int(visible[index])

    def sample() -> Optional[float]:
        try:
            out = subprocess.run([
                exe, '--query-gpu=utilization.gpu', '--format=csv,noheader,nounits', '-i',
                str(index)
            ],
                                 capture_output=True,
                                 text=True,
                                 timeout=5)
            return float(out.stdout.strip().splitlines()[0])
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return None

    return sample


class GpuMonitor:
    """Samples GPU utilisation and peak GPU memory over a ``with`` block.

    Args:
        device (str): The torch device of the block (``'cuda:N'`` or ``'cpu'``).
        interval (float): Seconds between utilisation samples. Defaults to 0.25.
    """

    def __init__(self, device: str, interval: float = 0.25):
        self.device = str(device)
        self.interval = interval
        self.samples: list = []
        self.reason: Optional[str] = None
        self._stop = threading.Event()
        self._thread = None
        self._sample = None

    def __enter__(self):
        if not self.device.startswith('cuda'):
            self.reason = f'no CUDA device (the benchmark ran on {self.device!r})'
            return self
        import torch
        index = torch.device(self.device).index or 0
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._sample = _nvidia_smi_sampler(index)
        if self._sample is None:
            self.reason = 'utilisation unreadable: neither pynvml nor nvidia-smi is available'
        else:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            value = self._sample()
            if value is not None:
                self.samples.append(value)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def result(self) -> dict:
        """``gpu_utilisation`` (mean %, None when unmeasured), ``gpu_busy_fraction`` (the
        same as a fraction), ``gpu_peak_memory_mb`` and ``gpu_reason`` (None, or why a GPU
        figure is missing)."""
        out = dict(
            gpu_utilisation=None,
            gpu_busy_fraction=None,
            gpu_peak_memory_mb=None,
            gpu_reason=self.reason)
        if not self.device.startswith('cuda'):
            return out
        import torch
        out['gpu_peak_memory_mb'] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        if self.samples:
            mean = sum(self.samples) / len(self.samples)
            out.update(gpu_utilisation=round(mean, 1), gpu_busy_fraction=round(mean / 100, 3))
        elif self.reason is None:
            out['gpu_reason'] = 'the block was shorter than one utilisation sample'
        return out
