import subprocess
import sys

SCRIPT = r'''
import logging, os, subprocess, sys
from xpaste.utils.stdio import stdout_to_stderr
logger = logging.getLogger('x')
logger.addHandler(logging.StreamHandler(sys.stdout))  # bound to stdout before, as MMLogger's
print('before', flush=True)
with stdout_to_stderr():
    print('print inside')
    logger.warning('log inside')
    os.write(1, b'fd inside\n')
    subprocess.run([sys.executable, '-c', 'print("child inside")'], check=True)
    {raise_}
print('after')
'''


def run(raise_=''):
    return subprocess.run([sys.executable, '-c', SCRIPT.replace('{raise_}', raise_)],
                          capture_output=True, text=True)


def test_everything_written_to_stdout_inside_goes_to_stderr():
    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ['before', 'after']
    for text in ('print inside', 'log inside', 'fd inside', 'child inside'):
        assert text in proc.stderr.splitlines()


def test_stdout_is_restored_after_an_error():
    proc = run("try:\n        raise KeyError('x')\n    except KeyError:\n        pass")
    assert proc.stdout.splitlines() == ['before', 'after']
    proc = run("raise KeyError('x')")
    assert proc.returncode != 0 and 'KeyError' in proc.stderr
    assert proc.stdout.splitlines() == ['before']
