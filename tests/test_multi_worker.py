"""Training across worker processes: MultiWorkerMirroredStrategy on loopback.

Each worker is its own process, started with the same `grok-tf train`
command and its own `--worker-index`, exactly as on separate machines.
Ports are chosen free; every process is killed when the test ends.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.data_helpers import make_colour_dataset
from tests.data_helpers import write_spec

TIMEOUT = 240


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(commands, envs=None):
    """Starts one process per command; returns their (code, out, err)."""
    envs = envs or [{}] * len(commands)
    processes = [
        subprocess.Popen(
            c,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for c, env in zip(commands, envs, strict=True)
    ]
    try:
        outputs = [p.communicate(timeout=TIMEOUT) for p in processes]
        return [
            (p.returncode, *o) for p, o in zip(processes, outputs, strict=True)
        ]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_two_workers_train_one_run(tmp_path):
    spec = write_spec(tmp_path, make_colour_dataset(tmp_path / "data"))
    run = tmp_path / "run"
    workers = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    commands = [
        [
            sys.executable,
            "-m",
            "grok_tf",
            "train",
            "--spec",
            str(spec),
            "--out",
            str(run),
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--workers",
            workers,
            "--worker-index",
            str(index),
        ]
        for index in range(2)
    ]
    results = run_workers(commands)
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    assert (run / "model.keras").is_file()
    assert json.loads((run / "run.json").read_text())["replicas"] == 2
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 1
    assert not list(run.glob(".worker_*"))  # the other worker cleaned up


def test_worker_flags_are_checked(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grok_tf",
            "train",
            "--spec",
            "x.yaml",
            "--out",
            str(tmp_path),
            "--workers",
            "a:1,b:2",
            "--worker-index",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--worker-index must be in 0..1" in done.stderr


@pytest.fixture(autouse=True)
def _no_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)


def test_two_worker_processes_equal_one_process(tmp_path):
    """All losses together: 2 workers = 1 process on the concatenated batch."""
    from tests.test_groknet_replicas import one_replica_batches

    x, y, sw = one_replica_batches(tmp_path / "data", replicas=2)
    batch = tmp_path / "batch.npz"
    np.savez(batch, batch=np.array({"x": x, "y": y, "sw": sw}, dtype=object))
    step = [sys.executable, "-m", "tests.workers.one_step", str(batch)]
    workers = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    commands = [
        [*step, str(tmp_path / f"worker{i}.npz"), str(tmp_path / f"w{i}")]
        for i in range(2)
    ]
    envs = [
        {
            "TF_CONFIG": json.dumps(
                {
                    "cluster": {"worker": workers.split(",")},
                    "task": {"type": "worker", "index": i},
                }
            )
        }
        for i in range(2)
    ]
    single = [*step, str(tmp_path / "single.npz"), str(tmp_path / "s")]
    results = run_workers([*commands, single], [*envs, {}])
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    outputs = [
        np.load(tmp_path / f"{name}.npz", allow_pickle=True)
        for name in ("worker0", "worker1", "single")
    ]
    reference = outputs[2]
    for output in outputs[:2]:
        logs, expected = output["logs"].item(), reference["logs"].item()
        assert set(logs) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(logs[key], value, rtol=1e-5, err_msg=key)
        for a, b in zip(output["weights"], reference["weights"], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
