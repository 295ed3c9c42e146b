"""Write-aside-and-rename: naming, clean-up after kill -9, concurrency."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grok_tf.io import atomic_files
from tests.helpers import HANG_GUARD

MODULE = atomic_files.__file__

# Children load atomic_files by path: no TensorFlow, a fast start.
PRELUDE = """
import importlib.util, os, signal, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("atomic_files", sys.argv[1])
atomic_files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic_files)
parent = Path(sys.argv[2])
"""


def child(script, parent, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + script, MODULE, str(parent)],
        text=True,
        **kwargs,
    )


def listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


def hidden(directory):
    return [name for name in listing(directory) if name.startswith(".")]


@pytest.fixture
def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


@pytest.fixture
def live_pid():
    """The pid of another process that stays alive during the test."""
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    yield sleeper.pid
    sleeper.stdin.close()
    sleeper.wait(timeout=HANG_GUARD)


def sibling(parent, name, kind, pid, host=None, token="0123abcd", suffix=""):
    host = atomic_files.HOST if host is None else host
    return Path(parent) / f".{name}.{kind}-{host}-{pid}-{token}{suffix}"


def make_dir(path, text="x"):
    path.mkdir()
    (path / "data").write_text(text)
    return path


# --- naming ---------------------------------------------------------------


class FakeModel:
    """`save(path)` as Keras does it: `.keras` paths only, one file."""

    def __init__(self, data, barrier=None, fail=False):
        self.data, self.barrier, self.fail = data, barrier, fail
        self.saved_to = []

    def save(self, path):
        assert str(path).endswith(".keras"), path
        self.saved_to.append(Path(path))
        Path(path).write_bytes(self.data[: len(self.data) // 2])
        if self.barrier:
            self.barrier.wait(timeout=HANG_GUARD)  # every saver is mid-write
        if self.fail:
            raise OSError("disk full")
        Path(path).write_bytes(self.data)


def test_temporary_names_carry_host_pid_and_a_token(tmp_path):
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())
    assert atomic_files.HOST.startswith(host)
    tail = rf"{re.escape(atomic_files.HOST)}-{os.getpid()}-[0-9a-f]{{8}}"
    seen = []
    with atomic_files.atomic_directory(tmp_path / "hashes") as partial:
        seen.append(partial.name)
    atomic_files.write_atomically(
        tmp_path / "a.json", lambda f: seen.extend(hidden(tmp_path))
    )
    model = FakeModel(b"model")
    atomic_files.save_atomically(model, tmp_path / "model.keras")
    seen.append(model.saved_to[0].name)
    atomic_files.write_next_version(
        tmp_path / "models", lambda p: seen.append(p.name) or make_dir(p / "v")
    )
    patterns = [
        rf"\.hashes\.partial-{tail}",
        rf"\.a\.json\.tmp-{tail}",
        rf"\.model\.keras\.partial-{tail}\.keras",
        rf"\.version\.partial-{tail}",
    ]
    for pattern, name in zip(patterns, seen, strict=True):
        assert re.fullmatch(pattern, name), (pattern, name)
    assert hidden(tmp_path) == [] and hidden(tmp_path / "models") == []


# --- clean-up of what dead writers left ----------------------------------


def write_directory(parent):
    with atomic_files.atomic_directory(parent / "4") as partial:
        (partial / "data").write_text("new")


def write_file(parent):
    atomic_files.write_json(parent / "4", {"new": True})


def save_model(parent):
    atomic_files.save_atomically(FakeModel(b"new"), parent / "4")


def write_version(parent):
    atomic_files.write_next_version(parent, lambda p: make_dir(p / "v"))


@pytest.mark.parametrize(
    "write", [write_directory, write_file, save_model, write_version]
)
def test_a_write_removes_what_dead_writers_left(
    tmp_path, dead_pid, live_pid, write
):
    make_dir(tmp_path / "3")
    exact = sibling(tmp_path, "3", "partial", dead_pid)
    stale = [
        make_dir(exact),
        make_dir(sibling(tmp_path, "version", "partial", dead_pid)),
        sibling(tmp_path, "a.json", "tmp", dead_pid),
        sibling(tmp_path, "m.keras", "partial", dead_pid, suffix=".keras"),
        sibling(tmp_path, "a-1.x", "tmp", dead_pid, token="ffffffff"),
    ]
    for path in stale[2:]:
        path.write_text("half")
    kept = [
        # Live writers: this process, another one.
        make_dir(sibling(tmp_path, "3", "partial", os.getpid())),
        make_dir(sibling(tmp_path, "3", "partial", live_pid, token="1" * 8)),
        # Another host's writers: their pids mean nothing here.
        make_dir(sibling(tmp_path, "3", "partial", dead_pid, host="other")),
        make_dir(sibling(tmp_path, "3", "partial", dead_pid, host="vm-2.lan")),
        # Near misses of the pattern.
        make_dir(tmp_path / f".3.partial-{dead_pid}-0123abcd"),  # no host
        make_dir(sibling(tmp_path, "3", "partial", dead_pid, token="0123")),
        make_dir(sibling(tmp_path, "3", "partial", dead_pid, token="0123ABCD")),
        make_dir(sibling(tmp_path, "3", "partial", dead_pid, suffix=".bak")),
        make_dir(sibling(tmp_path, "3", "backup", dead_pid)),
        make_dir(sibling(tmp_path, "", "partial", dead_pid)),
        make_dir(Path(str(exact)[:-9])),  # no token
        make_dir(tmp_path / exact.name[1:]),  # not hidden
        make_dir(sibling(tmp_path, "3", "partial", "0" + str(dead_pid))),
        make_dir(sibling(tmp_path, "3", "partial", "9" * 30)),  # no such pid
        make_dir(sibling(tmp_path, "3", "tmp", dead_pid, suffix=".keras")),
        # Right name, wrong kind of entry: never made by a writer.
        sibling(tmp_path, "3", "partial", dead_pid, token="2" * 8),
        make_dir(sibling(tmp_path, "a.json", "tmp", dead_pid, token="3" * 8)),
    ]
    kept[-2].write_text("a file")
    target = make_dir(tmp_path / "elsewhere", "not ours")
    link = sibling(tmp_path, "3", "partial", dead_pid, token="4" * 8)
    link.symlink_to(target, target_is_directory=True)
    kept.append(link)

    write(tmp_path)

    for path in stale:
        assert not os.path.lexists(path), path.name
    for path in kept:
        assert os.path.lexists(path), path.name
    assert (target / "data").read_text() == "not ours"
    published = {"3", "4", "elsewhere"}  # `write` made 4
    assert set(listing(tmp_path)) == published | {p.name for p in kept}


def test_a_dead_writers_previous_version_is_restored_or_removed(
    tmp_path, dead_pid, live_pid
):
    # Killed between the two renames: `hashes` is missing, and its last
    # complete version sits aside. Two such leftovers: the newest wins.
    make_dir(sibling(tmp_path, "hashes", "old", dead_pid, token="a" * 8), "1")
    time.sleep(0.01)
    make_dir(sibling(tmp_path, "hashes", "old", dead_pid, token="b" * 8), "2")
    # Killed before deleting the old one: `index` is the new version.
    make_dir(tmp_path / "index", "new")
    make_dir(sibling(tmp_path, "index", "old", dead_pid), "old")
    # A live writer between its renames: not ours to touch.
    make_dir(sibling(tmp_path, "live", "old", live_pid), "live")

    atomic_files.write_json(tmp_path / "other.json", {})

    assert (tmp_path / "hashes/data").read_text() == "2"
    assert (tmp_path / "index/data").read_text() == "new"
    assert hidden(tmp_path) == [sibling(tmp_path, "live", "old", live_pid).name]
    assert not (tmp_path / "live").exists()


def test_kill_9_mid_write_is_cleaned_by_the_next_write(tmp_path):
    writer = child(
        """
with atomic_files.atomic_directory(parent / "4") as partial:
    (partial / "saved_model.pb").write_bytes(b"half a model")
    print(partial, flush=True)
    sys.stdin.read()  # blocks until killed
""",
        tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    partial = Path(writer.stdout.readline().strip())
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait(timeout=HANG_GUARD) == -signal.SIGKILL
    assert partial.is_dir() and partial.parent == tmp_path
    assert hidden(tmp_path) == [partial.name]

    write_directory(tmp_path)  # another name, same folder

    assert listing(tmp_path) == ["4"]
    assert (tmp_path / "4/data").read_text() == "new"


def test_kill_9_between_the_renames_restores_the_previous_version(tmp_path):
    (tmp_path / "hashes").mkdir()
    (tmp_path / "hashes/data").write_text("previous")
    writer = child(
        """
real_replace = os.replace
def replace(source, target):
    if ".partial-" in os.fspath(source):  # `hashes` is aside already
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(source, target)
os.replace = replace
with atomic_files.atomic_directory(parent / "hashes") as partial:
    (partial / "data").write_text("next")
""",
        tmp_path,
    )
    assert writer.wait(timeout=HANG_GUARD) == -signal.SIGKILL
    assert not (tmp_path / "hashes").exists()
    assert len(hidden(tmp_path)) == 2  # .hashes.old-*, .hashes.partial-*

    atomic_files.write_json(tmp_path / "other.json", {})

    assert listing(tmp_path) == ["hashes", "other.json"]
    assert (tmp_path / "hashes/data").read_text() == "previous"


# --- concurrent writers ---------------------------------------------------


@pytest.fixture(params=["renameat2", "rename"])
def rename_mode(request, monkeypatch):
    """Runs a test with renameat2(RENAME_NOREPLACE), then without it."""
    if request.param == "renameat2":
        if atomic_files._renameat2 is None:
            pytest.skip("no renameat2 in this C library")
    else:
        monkeypatch.setattr(atomic_files, "_renameat2", None)
    return request.param


def in_threads(count, work):
    """Runs `work(i, barrier)` in `count` threads; returns results or raises."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(i):
        try:
            results[i] = work(i, barrier)
        except Exception as error:
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG_GUARD)
    if errors:
        raise errors[0]
    return results


def test_concurrent_publishes_take_distinct_consecutive_versions(
    tmp_path, rename_mode
):
    for name in ("1", "2"):
        make_dir(tmp_path / name)
    count = 16

    def publish(i, barrier):
        partial = atomic_files.sibling_directory(tmp_path / "v", "partial")
        (partial / "id").write_text(str(i))
        (partial / "variables").mkdir()
        (partial / "variables/data").write_bytes(bytes([i]) * 10_000)
        barrier.wait(timeout=HANG_GUARD)
        return atomic_files.publish_next_version(partial, tmp_path)

    published = in_threads(count, publish)

    assert sorted(int(p.name) for p in published) == list(range(3, 3 + count))
    for i, path in enumerate(published):
        assert path.parent == tmp_path
        assert (path / "id").read_text() == str(i)
        assert (path / "variables/data").read_bytes() == bytes([i]) * 10_000
    assert hidden(tmp_path) == []


def test_publishing_processes_take_distinct_versions(tmp_path):
    count = 6
    writers = [
        child(
            """
partial = atomic_files.sibling_directory(parent / "version", "partial")
(partial / "pid").write_text(str(os.getpid()))
print("ready", flush=True)
while not (parent / "go").exists():
    time.sleep(0.002)
print(atomic_files.publish_next_version(partial, parent).name, flush=True)
""",
            tmp_path,
            stdout=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    for writer in writers:
        assert writer.stdout.readline() == "ready\n"
    (tmp_path / "go").touch()
    versions = {}
    for writer in writers:
        out, _ = writer.communicate(timeout=HANG_GUARD)
        assert writer.returncode == 0
        versions[writer.pid] = out.strip()
    assert sorted(map(int, versions.values())) == list(range(1, count + 1))
    for pid, version in versions.items():
        assert (tmp_path / version / "pid").read_text() == str(pid)
    assert hidden(tmp_path) == []


def test_the_next_version_skips_every_taken_name(tmp_path, rename_mode):
    make_dir(tmp_path / "1")
    make_dir(tmp_path / "2")
    (tmp_path / "3").mkdir()  # empty, yet taken: never replaced
    (tmp_path / "4").write_text("a file named 4")
    make_dir(tmp_path / "²")  # a digit to str.isdigit, not to int()
    make_dir(tmp_path / "99999999999999999999")  # beyond TF Serving's int64
    make_dir(tmp_path / "notes")

    first = atomic_files.write_next_version(
        tmp_path, lambda p: make_dir(p / "v", "first")
    )
    second = atomic_files.write_next_version(
        tmp_path, lambda p: make_dir(p / "v", "second")
    )

    assert (first.name, second.name) == ("5", "6")
    assert (first / "v/data").read_text() == "first"
    assert (second / "v/data").read_text() == "second"
    assert (tmp_path / "4").read_text() == "a file named 4"
    assert listing(tmp_path / "3") == []


def test_a_version_is_taken_when_published_not_when_started(tmp_path):
    make_dir(tmp_path / "1")

    def slow(partial):
        # Another writer publishes 2 while this one is still writing.
        atomic_files.write_next_version(tmp_path, lambda p: make_dir(p / "v"))
        make_dir(partial / "v", "slow")

    assert atomic_files.write_next_version(tmp_path, slow).name == "3"
    assert (tmp_path / "3/v/data").read_text() == "slow"
    assert listing(tmp_path) == ["1", "2", "3"]


def test_a_failed_or_empty_version_publishes_nothing(tmp_path):
    def crash(partial):
        make_dir(partial / "v")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_files.write_next_version(tmp_path, crash)
    with pytest.raises(ValueError, match="empty"):
        atomic_files.write_next_version(tmp_path, lambda p: None)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("target", ["full", "empty", "file"])
def test_rename_noreplace_never_replaces(tmp_path, rename_mode, target):
    source = make_dir(tmp_path / "source", "new")
    existing = tmp_path / "existing"
    if target == "full":
        make_dir(existing, "old")
    elif target == "empty":
        existing.mkdir()
    else:
        existing.write_text("old")
    with pytest.raises(FileExistsError):
        atomic_files.rename_noreplace(source, existing)
    assert (source / "data").read_text() == "new"
    if target == "full":
        assert (existing / "data").read_text() == "old"
    elif target == "empty":
        assert listing(existing) == []
    else:
        assert existing.read_text() == "old"
    atomic_files.rename_noreplace(source, tmp_path / "free")
    assert listing(tmp_path) == ["existing", "free"]


def test_concurrent_writes_of_one_directory_all_succeed(tmp_path):
    count = 8
    make_dir(tmp_path / "hashes", "first")

    def write(i, barrier):
        with atomic_files.atomic_directory(tmp_path / "hashes") as partial:
            (partial / "data").write_text(f"writer {i}")
            (partial / "copy").write_text(f"writer {i}")
            barrier.wait(timeout=HANG_GUARD)  # all publish at once

    in_threads(count, write)

    data = (tmp_path / "hashes/data").read_text()
    assert data in {f"writer {i}" for i in range(count)}
    assert (tmp_path / "hashes/copy").read_text() == data
    assert listing(tmp_path) == ["hashes"]


def test_replace_false_refuses_an_existing_directory(tmp_path):
    make_dir(tmp_path / "1", "first")
    with (
        pytest.raises(FileExistsError, match="exists already"),
        atomic_files.atomic_directory(tmp_path / "1", replace=False) as p,
    ):
        (p / "data").write_text("second")
    assert (tmp_path / "1/data").read_text() == "first"
    assert listing(tmp_path) == ["1"]


# --- save_atomically -------------------------------------------------------


def test_concurrent_saves_of_one_model_do_not_collide(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"previous")
    count = 4
    models = [FakeModel(f"model {i} ".encode() * 100) for i in range(count)]

    def save(i, barrier):
        models[i].barrier = barrier
        atomic_files.save_atomically(models[i], path)

    in_threads(count, save)

    assert len({model.saved_to[0] for model in models}) == count
    assert path.read_bytes() in {model.data for model in models}
    assert listing(tmp_path) == ["model.keras"]


def test_a_failed_save_leaves_the_previous_model_and_no_partial(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"previous")
    with pytest.raises(OSError, match="disk full"):
        atomic_files.save_atomically(FakeModel(b"next", fail=True), path)
    assert path.read_bytes() == b"previous"
    assert listing(tmp_path) == ["model.keras"]


def test_save_atomically_writes_a_keras_model(tmp_path):
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    atomic_files.save_atomically(model, tmp_path / "run/model.keras")
    loaded = keras.saving.load_model(tmp_path / "run/model.keras")
    x = np.ones((1, 3), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model(x))
    assert listing(tmp_path / "run") == ["model.keras"]


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o027)
    try:
        atomic_files.write_json(tmp_path / "a.json", {"a": 1})
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "a.json").read_text() == '{\n  "a": 1\n}\n'
