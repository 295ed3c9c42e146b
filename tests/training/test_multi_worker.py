"""Training across worker processes: MultiWorkerMirroredStrategy on loopback.

Each worker is its own process, started with the same `grok-tf train`
command and its own `--worker-index`, exactly as on separate machines.

Ports: `reserved_ports` keeps each chosen port bound by a socket of ours
until the workers have exited, so no other process is handed it in the
meantime; TF's gRPC server can still bind it (see `reserved_ports`). Should
a worker fail to bind anyway (a program binding that very port by number,
or a TF whose server stops using SO_REUSEADDR), `run_cluster` stops the
run at once and starts it again with new ports, at most `ATTEMPTS` times.
Every process is killed when the test ends; `TIMEOUT` is only a guard
against a hung cluster.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from tests.helpers import HANG_GUARD
from tests.helpers import make_colour_dataset
from tests.helpers import one_replica_batches
from tests.helpers import write_spec

TIMEOUT = HANG_GUARD
ATTEMPTS = 3
# What a worker prints when its gRPC server cannot bind its port (TF 2.21:
# "UnknownError: Could not start gRPC server").
BIND_ERRORS = ("Could not start gRPC server", "Address already in use")


@contextlib.contextmanager
def reserved_ports(count):
    """Yields `count` free loopback ports, held bound until the block ends.

    Each port stays bound by one of our sockets, with SO_REUSEADDR and not
    listening. The kernel then gives the port to no one else (not to a
    bind to port 0, nor to an outgoing connection, and a plain bind fails),
    but TF's gRPC server, which binds the wildcard address with
    SO_REUSEADDR (and without SO_REUSEPORT), can bind and listen on it:
    verified with TF 2.21 (and by test_reserved_ports_...). Binding port 0
    and closing the sockets before the workers start, as before, left a
    window in which any process could take a port.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        yield ports


def run_workers(commands, envs=None):
    """Runs one process per command; returns their (code, out, err).

    As soon as a process fails, the others are killed (a cluster without
    one of its workers would wait for it until `TIMEOUT`); their code is
    then negative (the signal).
    """
    envs = envs or [{}] * len(commands)
    with contextlib.ExitStack() as stack:
        logs = [
            [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in "oe"]
            for _ in commands
        ]
        processes = [
            subprocess.Popen(
                c, stdout=out, stderr=err, text=True, env={**os.environ, **env}
            )
            for c, env, (out, err) in zip(commands, envs, logs, strict=True)
        ]
        try:
            deadline = time.monotonic() + TIMEOUT
            while any(p.poll() is None for p in processes):
                if any(p.poll() not in (None, 0) for p in processes):
                    break  # one failed: the rest cannot finish
                if time.monotonic() > deadline:
                    pytest.fail(f"workers still running after {TIMEOUT} s")
                time.sleep(0.2)
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                p.wait()
        results = []
        for p, (out, err) in zip(processes, logs, strict=True):
            out.seek(0)
            err.seek(0)
            results.append((p.returncode, out.read(), err.read()))
        return results


def run_cluster(make_commands, count):
    """Runs `make_commands(ports)` on `count` reserved ports, until it works.

    `make_commands` returns `(commands, envs)`. A run in which a worker
    could not bind its port (`BIND_ERRORS` in its stderr) is started again
    with new ports, at most `ATTEMPTS` times; any other failure fails the
    test with the stderr of a process that failed by itself (not one that
    `run_workers` killed after it).

    Returns:
        The (code, out, err) of every process, all codes 0.
    """
    for attempt in range(1, ATTEMPTS + 1):
        with reserved_ports(count) as ports:
            results = run_workers(*make_commands(ports))
        failed = [r for r in results if r[0] != 0]
        if not failed:
            return results
        bind_failed = any(
            code > 0 and any(e in err for e in BIND_ERRORS)
            for code, _, err in failed
        )
        if bind_failed and attempt < ATTEMPTS:
            print(f"attempt {attempt}: a worker could not bind {ports}")
            continue
        # Killed processes (negative codes) only followed a failure.
        code, _, err = max(failed, key=lambda r: r[0])
        why = "could not bind its port" if bind_failed else "failed"
        pytest.fail(
            f"a worker {why} (exit code {code}, attempt {attempt} of "
            f"{ATTEMPTS}):\n{err[-3000:]}"
        )
    raise AssertionError("unreachable")


def test_two_workers_train_one_run(tmp_path):
    spec = write_spec(tmp_path, make_colour_dataset(tmp_path / "data"))
    run = tmp_path / "run"

    def commands(ports):
        shutil.rmtree(run, ignore_errors=True)  # nothing of a failed try
        workers = ",".join(f"127.0.0.1:{port}" for port in ports)
        train = [sys.executable, "-m", "grok_tf", "train", "--spec", str(spec)]
        return [
            [
                *train,
                *("--out", str(run), "--epochs", "1"),
                *("--steps-per-epoch", "2", "--workers", workers),
                *("--worker-index", str(index)),
            ]
            for index in range(2)
        ], None

    run_cluster(commands, 2)
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
        timeout=HANG_GUARD,
    )
    assert done.returncode == 2
    assert "--worker-index must be in 0..1" in done.stderr


@pytest.fixture(autouse=True)
def _no_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)


def test_two_worker_processes_equal_one_process(tmp_path):
    """All losses together: 2 workers = 1 process on the concatenated batch."""
    x, y, sw = one_replica_batches(tmp_path / "data", replicas=2)
    batch = tmp_path / "batch.npz"
    np.savez(batch, batch=np.array({"x": x, "y": y, "sw": sw}, dtype=object))
    step = [sys.executable, "-m", "tests.training.workers.one_step", str(batch)]

    def commands(ports):
        workers = [f"127.0.0.1:{port}" for port in ports]
        envs = [
            {
                "TF_CONFIG": json.dumps(
                    {
                        "cluster": {"worker": workers},
                        "task": {"type": "worker", "index": i},
                    }
                )
            }
            for i in range(2)
        ]
        commands = [
            [*step, str(tmp_path / f"worker{i}.npz"), str(tmp_path / f"w{i}")]
            for i in range(2)
        ]
        single = [*step, str(tmp_path / "single.npz"), str(tmp_path / "s")]
        return [*commands, single], [*envs, {}]

    run_cluster(commands, 2)
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


def test_reserved_ports_stay_taken_but_tf_like_servers_can_bind_them():
    with reserved_ports(2) as ports:
        assert len(set(ports)) == 2
        for port in ports:
            # Another program is refused the port...
            with socket.socket() as other, pytest.raises(OSError):
                other.bind(("127.0.0.1", port))
            # ...but a server binding like gRPC's (wildcard address,
            # SO_REUSEADDR) gets it, and accepts connections.
            with socket.socket() as server:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("0.0.0.0", port))
                server.listen()
                with socket.create_connection(("127.0.0.1", port), 10):
                    pass
    with socket.socket() as other:  # released at the end of the block
        other.bind(("127.0.0.1", ports[0]))


# Stand-in workers: the first try of worker 0 fails as a worker that cannot
# bind its port does; worker 1 waits for its peer, like a real one.
FLAKY_WORKER = """
import pathlib, sys, time
marker, index = pathlib.Path(sys.argv[1]), int(sys.argv[2])
if index == 0 and not marker.exists():
    marker.write_text("tried")
    sys.exit("UnknownError: Could not start gRPC server")
if index == 1 and not marker.exists():
    time.sleep(600)  # waits for a peer that never comes
print("trained", sys.argv[3])
"""


def test_a_run_whose_worker_cannot_bind_is_retried_on_new_ports(tmp_path):
    tried = []

    def commands(ports):
        tried.append(ports)
        marker = tmp_path / "marker"
        return [
            [sys.executable, "-c", FLAKY_WORKER, str(marker), str(i), str(p)]
            for i, p in enumerate(ports)
        ], None

    results = run_cluster(commands, 2)

    assert len(tried) == 2 and tried[0] != tried[1]
    assert [(code, out) for code, out, _ in results] == [
        (0, f"trained {port}\n") for port in tried[1]
    ]


@pytest.mark.parametrize(
    "error, tries, match",
    [
        ("bad spec", 1, "a worker failed .*attempt 1 of 3"),
        ("Could not start gRPC server", 3, "could not bind .*attempt 3 of 3"),
    ],
)
def test_failures_stop_the_run_and_show_the_workers_error(error, tries, match):
    tried = []

    def commands(ports):
        tried.append(ports)
        return [
            [sys.executable, "-c", f"import sys; sys.exit({error!r})"],
            [sys.executable, "-c", "import time; time.sleep(600)"],
        ], None

    with pytest.raises(pytest.fail.Exception, match=f"{match}\\):\\n{error}"):
        run_cluster(commands, 2)
    assert len(tried) == tries
