"""tools/{dist,slurm}_{train,test}.sh pass what they are given to train.py/test.py (with fake
``srun`` and ``python`` commands that record their arguments)."""
import os
import os.path as osp
import stat
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
RECORDER = '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$FAKE_ARGS"\n'


def run_script(tmp_path, script, *args, **env):
    """Run ``tools/<script>`` with ``srun`` and ``python`` replaced by recorders; return the
    completed process and the recorded arguments (one list, or None if nothing ran)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for name in ('srun', 'python'):
        fake = bin_dir / name
        fake.write_text(RECORDER)
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / 'args.txt'
    full_env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                    FAKE_ARGS=str(record), **env)
    proc = subprocess.run(['bash', osp.join(TOOLS, script), *args], env=full_env, cwd=str(tmp_path),
                          capture_output=True, text=True)
    recorded = record.read_text().splitlines() if record.exists() else None
    return proc, recorded


def _after(recorded, item):
    return recorded[recorded.index(item) + 1:]


def test_slurm_test_runs_test_py_with_checkpoint_and_options(tmp_path):
    proc, recorded = run_script(tmp_path, 'slurm_test.sh', 'part', 'job', 'cfg.py', 'ckpt.pth',
                                '--work-dir', 'a dir', '--out', 'p.pkl', GPUS='16')
    assert proc.returncode == 0, proc.stderr
    assert recorded[:2] == ['-p', 'part'] and '--job-name=job' in recorded
    assert '--ntasks=16' in recorded
    assert _after(recorded, 'python') == [
        '-u', osp.join(TOOLS, 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher=slurm',
        '--work-dir', 'a dir', '--out', 'p.pkl']


def test_slurm_train_passes_the_work_dir(tmp_path):
    proc, recorded = run_script(tmp_path, 'slurm_train.sh', 'part', 'job', 'cfg.py', 'work/x',
                                '--amp')
    assert proc.returncode == 0, proc.stderr
    assert '--ntasks=8' in recorded  # GPUS defaults to 8
    assert _after(recorded, 'python') == [
        '-u', osp.join(TOOLS, 'train.py'), 'cfg.py', '--work-dir=work/x', '--launcher=slurm',
        '--amp']


@pytest.mark.parametrize('script, args', [
    ('slurm_test.sh', ('part', 'job', 'cfg.py')),  # no checkpoint
    ('slurm_train.sh', ('part', 'job', 'cfg.py')),  # no work dir
])
def test_slurm_scripts_print_usage_when_arguments_are_missing(tmp_path, script, args):
    proc, recorded = run_script(tmp_path, script, *args)
    assert proc.returncode == 2 and recorded is None
    assert f'usage: [GPUS=8] bash tools/{script}' in proc.stderr


def test_dist_test_runs_torchrun_on_test_py(tmp_path):
    proc, recorded = run_script(tmp_path, 'dist_test.sh', 'cfg.py', 'ckpt.pth', '4', '--out',
                                'p.pkl')
    assert proc.returncode == 0, proc.stderr
    assert recorded[:2] == ['-m', 'torch.distributed.run'] and '--nproc_per_node=4' in recorded
    tail = _after(recorded, osp.join(TOOLS, 'test.py'))
    assert tail == ['cfg.py', 'ckpt.pth', '--launcher', 'pytorch', '--out', 'p.pkl']


def test_dist_train_runs_torchrun_on_train_py(tmp_path):
    proc, recorded = run_script(tmp_path, 'dist_train.sh', 'cfg.py', '2', '--amp')
    assert proc.returncode == 0, proc.stderr
    assert '--nproc_per_node=2' in recorded
    assert _after(recorded, osp.join(TOOLS, 'train.py')) == [
        'cfg.py', '--launcher', 'pytorch', '--amp']
