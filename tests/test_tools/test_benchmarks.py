"""``tools/analysis/benchmark_*.py --json`` print one JSON object and nothing else on stdout (so
``... --json | python -m json.tool`` works); their logs and progress bars go to stderr."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_tool(script, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get(
        'PYTHONPATH')])))
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'analysis', script), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def parse_one_object(stdout: str) -> dict:
    """The one JSON object stdout holds (json.loads fails on anything around it)."""
    obj = json.loads(stdout)
    assert isinstance(obj, dict)
    return obj


def test_benchmark_paste_json_is_the_only_stdout(tmp_path):
    proc = run_tool('benchmark_paste.py', '--json', '--size', '128', '--num-instances', '3',
                    '--num-pastes', '2', '--repeats', '1', '--bank-size', '8',
                    '--index-instances', '0', '--work-dir', str(tmp_path))
    result = parse_one_object(proc.stdout)
    assert result['image_size'] == 128 and result['num_pastes'] == 2
    assert result['xpaste_warm_ms'] > 0 and result['copypaste_ms'] > 0


#: What ``benchmark_bank.py --json`` reports, GPU figures included (None on a CPU, with
#: ``gpu_reason`` saying why).
BANK_BENCHMARK_KEYS = {
    'raw_generator_img_s', 'generator_img_s', 'pipeline_img_s', 'ratio', 'ratio_to_generator',
    'stages', 'gpu_utilisation', 'gpu_busy_fraction', 'gpu_peak_memory_mb', 'gpu_reason',
    'host_peak_memory_mb', 'host_peak_memory_workers_mb', 'stream', 'instances_written',
    'settings', 'device'
}


@pytest.mark.slow
def test_benchmark_bank_json_is_the_only_stdout(tmp_path):
    proc = run_tool('benchmark_bank.py', '--tiny', '--images', '4', '--workers', '1',
                    '--executor', 'thread', '--json')
    result = parse_one_object(proc.stdout)
    assert result['instances_written'] == 4 and result['settings']['arch'] == 'tiny'
    assert proc.stderr  # the logs went somewhere else


@pytest.mark.slow
def test_benchmark_bank_cpu_preset_reports_every_field():
    """``--preset cpu-tiny --json``: one JSON object with every field; the GPU figures are
    None on a CPU, and ``gpu_reason`` says why."""
    proc = run_tool('benchmark_bank.py', '--preset', 'cpu-tiny', '--json')
    result = parse_one_object(proc.stdout)
    assert set(result) == BANK_BENCHMARK_KEYS
    assert result['settings']['preset'] == 'cpu-tiny' and result['device'] == 'cpu'
    for key in ('raw_generator_img_s', 'generator_img_s', 'pipeline_img_s'):
        assert result[key] > 0
    assert result['ratio'] == pytest.approx(
        result['pipeline_img_s'] / result['raw_generator_img_s'], rel=1e-2)
    assert set(result['stages']) == {'generate', 'segment', 'score', 'filter', 'write'}
    assert all(v > 0 for v in result['stages'].values())
    assert result['gpu_utilisation'] is None and result['gpu_peak_memory_mb'] is None
    assert result['gpu_busy_fraction'] is None and 'no CUDA device' in result['gpu_reason']
    assert result['host_peak_memory_mb'] > 0
    assert result['instances_written'] == result['settings']['images']
