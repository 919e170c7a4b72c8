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


@pytest.mark.slow
def test_benchmark_bank_json_is_the_only_stdout(tmp_path):
    proc = run_tool('benchmark_bank.py', '--tiny', '--images', '4', '--workers', '1',
                    '--executor', 'thread', '--json')
    result = parse_one_object(proc.stdout)
    assert result['instances_written'] == 4 and result['settings']['arch'] == 'tiny'
    assert proc.stderr  # the logs went somewhere else
