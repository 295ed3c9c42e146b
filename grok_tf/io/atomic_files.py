"""Writes that never leave a half-written file or directory behind.

Everything grok_tf writes for later use (models, run records, hash indexes,
compression artefacts, SavedModel versions) is written beside its final
place and renamed into it: a crash mid-write leaves the previous version,
or nothing, never a partial one that a reader (or TF Serving) would load.

Naming. Every temporary sibling is hidden and names its writer:

    .<name>.partial-<host>-<pid>-<token>         directory being written
    .<name>.partial-<host>-<pid>-<token>.keras   `.keras` model being saved
    .<name>.tmp-<host>-<pid>-<token>             file being written
    .<name>.old-<host>-<pid>-<token>             previous <name>, set aside

`<host>` is `HOST` (the host name, plus the PID namespace on Linux, since a
pid means something only there), `<pid>` the writing process and `<token>`
8 random hex digits, so concurrent writers never share a name. A new
SavedModel version is written as `.version.partial-...` (its number is
chosen only when it is published, `publish_next_version`).

Clean-up. A writer killed mid-write (`kill -9`, out of memory, power loss)
leaves its siblings behind. So before creating its own, every write scans
the folder it writes into (`remove_stale_siblings`) for siblings, of any
`<name>`, whose `<host>` is this `HOST` and whose `<pid>` no longer exists,
and removes them; except an `.old-*` whose `<name>` is missing: its writer
died between the two renames of `publish_directory`, and it holds the last
complete version, so it is renamed back to `<name>`. Siblings of other
hosts or of live processes (a reused pid counts as live: kept, the safe
side), symbolic links, and names that do not match the pattern exactly
are never touched.
"""

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

# Bounds the retries of a publish that other writers keep overtaking.
ATTEMPTS = 1000
# TF Serving reads version folder names as int64.
MAX_VERSION = 2**63 - 1
VERSION_PARTIAL = "version"  # `.version.partial-*`: a version being written


def _host():
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host
    return f"{host}_pidns{namespace}"


HOST = _host()


def save_atomically(model, path, weights_only=False):
    """Saves a Keras model (or only its weights) to `path` atomically.

    The model is saved to `.<name>.partial-<host>-<pid>-<token>.keras`
    (`.weights.h5` with `weights_only`) beside `path` (Keras insists on
    the suffix), flushed, and renamed into place: concurrent saves of one
    path do not collide (the last one wins); on error the partial file is
    removed and any previous `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(path.parent)
    suffix = ".weights.h5" if weights_only else ".keras"
    partial = _sibling_path(path, "partial", suffix)
    try:
        if weights_only:
            model.save_weights(partial)
        else:
            model.save(partial)
        fsync(partial)
        os.replace(partial, path)
    except BaseException:
        _remove_path(partial)
        raise
    fsync(path.parent)


def write_atomically(path, write):
    """Calls `write(binary file)` on a file beside `path`, then renames it.

    The file, `.<name>.tmp-<host>-<pid>-<token>`, gets the usual
    permissions (0666 less the umask). Its data is flushed to disk before
    the rename; on error it is removed and any previous `path` is
    untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(path.parent)
    temporary = _sibling_path(path, "tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync(path.parent)


def write_json(path, value):
    """Writes `value` as indented JSON to `path`, atomically."""
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    write_atomically(path, lambda f: f.write(text.encode()))


@contextlib.contextmanager
def atomic_directory(directory, replace=True):
    """Yields an empty directory that becomes `directory` on success.

    The body writes into the yielded sibling directory
    (`.<name>.partial-<host>-<pid>-<token>`). When it returns, the files
    are flushed and the directory is renamed into place
    (`publish_directory`, which replaces an existing `directory`; with
    `replace=False` an existing one is an error instead, checked by the
    rename itself); when it raises, the sibling is deleted and any
    previous `directory` stays as it was.

    Example (not run: writes into a run directory):

    >>> with atomic_directory("runs/demo/hashes") as partial:  # doctest: +SKIP
    ...     (partial / "a.json").write_text("{}")
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(directory.parent)
    partial = sibling_directory(directory, "partial")
    try:
        yield partial
        _fsync_tree(partial)
        if replace:
            publish_directory(partial, directory)
        else:
            try:
                rename_noreplace(partial, directory)
            except FileExistsError:
                raise FileExistsError(f"{directory} exists already") from None
            fsync(directory.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def publish_directory(partial, directory):
    """Renames `partial` to `directory`, replacing an existing one.

    An existing `directory` is renamed aside (`.<name>.old-*`), the new one
    renamed in, and the old one deleted; were the process killed between
    the two renames, the previous version survives as `.<name>.old-*`, and
    the next write in that folder renames it back. Concurrent publishers
    of one `directory` all succeed, the last one's version staying: one
    that finds `directory` back in place after setting it aside (another
    publisher was quicker) sets that one aside too and tries again.
    """
    partial, directory = Path(partial), Path(directory)
    olds = []
    try:
        for _ in range(ATTEMPTS):
            try:
                rename_noreplace(partial, directory)
                break
            except FileExistsError:
                pass
            old = sibling_directory(directory, "old")
            try:
                os.replace(directory, old)  # onto the empty `old`
            except FileNotFoundError:  # another publisher set it aside
                old.rmdir()
                continue
            except BaseException:
                with contextlib.suppress(OSError):
                    old.rmdir()
                raise
            olds.append(old)
            try:
                os.replace(partial, directory)
                break
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        else:
            raise FileExistsError(f"{directory}: {ATTEMPTS} publishes lost")
    except BaseException:
        _put_back(olds, directory)
        raise
    fsync(directory.parent)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def _put_back(olds, directory):
    """After a failed publish: the newest version set aside goes back."""
    if olds and not os.path.lexists(directory):
        with contextlib.suppress(OSError):
            rename_noreplace(olds.pop(), directory)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def write_next_version(parent, write):
    """Writes a new integer version folder of `parent` (TF Serving layout).

    `write(partial)` fills a hidden sibling directory
    (`.version.partial-<host>-<pid>-<token>`), which is then published as
    the next version (`publish_next_version`); when `write` or the publish
    raises, the sibling is deleted.

    Args:
        parent: the model's base path; created if needed.
        write: called with the empty directory to fill.

    Returns:
        The `Path` of the new version, `parent/<v>`.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(parent)
    partial = sibling_directory(parent / VERSION_PARTIAL, "partial")
    try:
        write(partial)
        return publish_next_version(partial, parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def publish_next_version(partial, parent):
    """Flushes `partial` and renames it to `parent/<v>`, `v` the next free.

    The number is taken at the moment of the rename, not when writing
    began: `v` is one more than the largest integer name in `parent` (of a
    file or a directory, up to `MAX_VERSION`), and the rename never
    replaces (`rename_noreplace`). If another writer takes `v` first, the
    next number is tried, up to `ATTEMPTS` times, so concurrent publishers
    each get their own version and none fails.

    Args:
        partial: a complete, non-empty directory in `parent` (an empty one
            is no SavedModel, and a fallback rename could replace it).
        parent: the folder of integer versions.

    Returns:
        The `Path` of the new version.

    Raises:
        ValueError: `partial` is empty.
        FileExistsError: no free number after `ATTEMPTS` tries.
    """
    partial, parent = Path(partial), Path(parent)
    if not any(partial.iterdir()):
        raise ValueError(f"{partial} is empty: not a version to publish")
    _fsync_tree(partial)
    version = 0
    for _ in range(ATTEMPTS):
        taken = (integer_version(name) for name in os.listdir(parent))
        version = max([version, *(v for v in taken if v is not None)]) + 1
        if version > MAX_VERSION:
            break
        target = parent / str(version)
        try:
            rename_noreplace(partial, target)
        except FileExistsError:
            continue
        fsync(parent)
        return target
    raise FileExistsError(f"{parent}: no free version number for {partial}")


def integer_version(name):
    """The version number a folder name stands for in TF Serving, or None.

    ASCII digits only (`"²".isdigit()` is true, yet no number), at most
    `MAX_VERSION`.
    """
    if name.isascii() and name.isdigit() and int(name) <= MAX_VERSION:
        return int(name)
    return None


def rename_noreplace(source, target):
    """Renames the directory `source` to `target`, unless `target` exists.

    On Linux, `renameat2(RENAME_NOREPLACE)` checks and renames in one
    atomic step. Elsewhere, or on a file system without it, `os.rename`
    after a check: rename(2) fails onto a file or a non-empty directory,
    so only an empty directory created at `target` in the instant between
    the check and the rename could be replaced.

    Raises:
        FileExistsError: `target` exists (nothing was renamed).
    """
    source, target = os.fsencode(source), os.fsencode(target)
    if _renameat2 is not None:
        status = _renameat2(
            _AT_FDCWD, source, _AT_FDCWD, target, _RENAME_NOREPLACE
        )
        if status == 0:
            return
        code = ctypes.get_errno()
        if code not in _NOREPLACE_UNSUPPORTED:
            raise OSError(code, os.strerror(code), source, None, target)
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target)
    try:
        os.rename(source, target)
    except OSError as error:
        if os.path.lexists(target) and os.path.lexists(source):
            raise FileExistsError(
                errno.EEXIST, os.strerror(errno.EEXIST), target
            ) from error
        raise


def _find_renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


_renameat2 = _find_renameat2()  # glibc >= 2.28; None elsewhere
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_NOREPLACE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def sibling_directory(directory, kind):
    """Creates an empty hidden directory beside `directory`.

    Named `.<name>.<kind>-<host>-<pid>-<token>` (see the module docstring),
    which `remove_stale_siblings` recognises once this process is gone.
    """
    sibling = _sibling_path(directory, kind)
    sibling.mkdir()
    return sibling


def _sibling_path(path, kind, suffix=""):
    path = Path(path)
    token = uuid.uuid4().hex[:8]
    return path.with_name(
        f".{path.name}.{kind}-{HOST}-{os.getpid()}-{token}{suffix}"
    )


_STALE = re.compile(
    r"\.(?P<name>.+)\.(?P<kind>partial|tmp|old)"
    rf"-{re.escape(HOST)}-(?P<pid>[1-9][0-9]*)-[0-9a-f]{{8}}"
    r"(?P<keras>\.keras)?"
)


# What each kind of sibling is when a writer makes it; nothing else is ours.
_MADE = {"partial": "dir", "old": "dir", "tmp": "file", "partial.keras": "file"}


def remove_stale_siblings(directory):
    """Removes what writers killed mid-write left in `directory`.

    Entries named as in the module docstring, by a writer of this `HOST`
    whose process no longer exists, and of the type that writer made
    (`.partial-*` and `.old-*` directories, `.tmp-*` and `.partial-*.keras`
    files): removed; but a dead writer's `.<name>.old-*` is renamed back to
    `<name>` when `<name>` is missing (the newest of several, by change
    time). Failures (a concurrent clean-up, permissions) are ignored: the
    entry is left for the next write.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    olds = {}
    for entry in entries:
        match = _STALE.fullmatch(entry.name)
        if not match or match["name"] in (".", ".."):
            continue
        kind = match["kind"] + (match["keras"] or "")
        if kind not in _MADE or not _is_a(entry, _MADE[kind]):
            continue
        if _alive(int(match["pid"])):
            continue
        if kind == "old":
            olds.setdefault(match["name"], []).append(entry)
        else:
            _remove_path(entry.path)
    for name, found in olds.items():
        target = Path(directory) / name
        if not os.path.lexists(target):
            newest = max(found, key=_change_time)
            try:
                rename_noreplace(newest.path, target)
            except OSError:
                continue  # e.g. `name` is back: the next write removes these
            found.remove(newest)
        for entry in found:
            _remove_path(entry.path)


def _is_a(entry, made):
    try:
        if made == "dir":
            return entry.is_dir(follow_symlinks=False)
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _alive(pid):
    """False only when no process `pid` exists (here)."""
    if os.name != "posix" or pid == os.getpid():
        return True  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: another user's
        return True
    return True


def _change_time(entry):
    try:
        return entry.stat(follow_symlinks=False).st_ctime_ns
    except OSError:
        return 0


def _remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _fsync_tree(directory):
    """Flushes every file and folder under `directory`, and itself."""
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                fsync(path)
        fsync(root)


def fsync(path):
    """Flushes a file or directory to disk, so a rename publishes data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
