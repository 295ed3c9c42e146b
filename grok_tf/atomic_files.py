"""Writes that never leave a half-written file or directory behind.

Everything grok_tf writes for later use (models, run records, hash indexes,
compression artefacts, SavedModel versions) is written beside its final
place and renamed into it: a crash mid-write leaves the previous version,
or nothing, never a partial one that a reader (or TF Serving) would load.
"""

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path


def save_atomically(model, path):
    """Saves a `.keras` file next to `path`, then renames it into place."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial.keras")
    model.save(partial)
    os.replace(partial, path)


def write_atomically(path, write):
    """Calls `write(binary file)` on a file beside `path`, then renames it.

    The data is flushed to disk before the rename; on error the temporary
    file is removed and any previous `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path, value):
    """Writes `value` as indented JSON to `path`, atomically."""
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    write_atomically(path, lambda f: f.write(text.encode()))


@contextlib.contextmanager
def atomic_directory(directory, replace=True):
    """Yields an empty directory that becomes `directory` on success.

    The body writes into the yielded sibling directory. When it returns,
    the files are flushed and the directory is renamed into place
    (`publish_directory`, which replaces an existing `directory`; with
    `replace=False` an existing one is an error instead, as for a new
    SavedModel version); when it raises, the sibling is deleted and any
    previous `directory` stays as it was.

    Example:

    >>> with atomic_directory("runs/demo/hashes") as partial:  # doctest: +SKIP
    ...     (partial / "a.json").write_text("{}")
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = sibling_directory(directory, "partial")
    try:
        yield partial
        for path in partial.rglob("*"):
            if path.is_file():
                fsync(path)
        if not replace and directory.exists():
            raise FileExistsError(f"{directory} exists already")
        publish_directory(partial, directory)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def publish_directory(partial, directory):
    """Renames `partial` to `directory`, replacing an existing one.

    An existing `directory` is renamed aside, the new one renamed in, and
    the old one deleted; were the process killed between the two renames,
    the previous version survives as `.<name>.old-*` beside `directory`.
    """
    partial, directory = Path(partial), Path(directory)
    if not directory.exists():
        os.replace(partial, directory)
        fsync(directory.parent)
        return
    old = sibling_directory(directory, "old")
    try:
        os.replace(directory, old)  # onto the empty `old`
        os.replace(partial, directory)
    except BaseException:
        if directory.exists():  # the new one is in place, or never left
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, directory)
        raise
    fsync(directory.parent)
    shutil.rmtree(old)


def sibling_directory(directory, kind):
    """Creates an empty, uniquely named directory beside `directory`."""
    directory = Path(directory)
    sibling = directory.with_name(
        f".{directory.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    sibling.mkdir()
    return sibling


def fsync(path):
    """Flushes a file or directory to disk, so a rename publishes data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
