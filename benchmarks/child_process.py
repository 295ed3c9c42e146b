"""Runs one benchmark configuration in a fresh Python process.

Peak memory (`ru_maxrss`) only rises within a process, so each
configuration of a memory benchmark runs in its own child: the calling
script re-runs itself with `--child ...` arguments, and the child prints
its figures as JSON on its last line of output.
"""

import json
import os
import subprocess
import sys


def measure_in_child(script, arguments):
    """Runs `python script --child *arguments`; returns its last JSON line.

    Args:
        script: the benchmark script (`__file__` of the caller).
        arguments: the child's arguments after `--child`, as strings.

    Returns:
        The decoded JSON of the child's last line of output.
    """
    repo = os.path.dirname(os.path.dirname(os.path.abspath(script)))
    output = subprocess.run(
        [sys.executable, os.path.abspath(script), "--child", *arguments],
        env=dict(os.environ, PYTHONPATH=repo),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])
