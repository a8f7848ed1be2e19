"""Atomic artifacts: at every instant a reader finds the old version or the complete new one.

Files are written to a temporary sibling and moved into place with ``os.replace``.

A directory (an adapter, a fine-tuned model, a LlamaIndex export) is built complete in a
temporary sibling ``.NAME.<token>.tmp`` and then *exchanged* with ``NAME`` in one system call
(``renameat2(RENAME_EXCHANGE)``, Linux 3.15+ on ext4, xfs, btrfs, tmpfs, ...): ``NAME`` is a
real directory before, during and after the swap, so ``cp -r``, ``SentenceTransformer(NAME)``
and LlamaIndex's loader keep working, and no instant exists where ``NAME`` is missing or
half-written. The old version, now at the temporary name, is then removed. Where the exchange
is not supported the swap falls back to two renames (``NAME`` is missing for the microseconds
between them; :func:`read_directory` waits that out).

Why not two ``os.replace`` calls (the 0.1 scheme)? A crash between them left ``NAME`` missing,
and two concurrent writers failed with ``ENOTEMPTY``. Why not a symlink swap? ``cp -r`` and
``rsync -a`` copy a symlink as a link, so a copied adapter would point at nothing.

Readers that open several files (:func:`read_directory`) open the directory once and read
every file relative to that handle, so a swap between two reads cannot mix versions.

Safety rules every write follows:

* Only a directory queryshift wrote is replaced (:func:`check_output_directory`): one whose
  files are all listed in its ``.queryshift-manifest.json``, an empty one, or one in a layout
  written by queryshift before manifests existed. Anything else is refused, before anything
  is touched.
* A build in progress holds an exclusive ``flock`` on its temporary directory or file. Debris
  left by killed writers (``.NAME.*.tmp``, ``.NAME.*.old``) is removed by the next successful
  write, and only when no live writer holds its lock.
* New files and directories get the usual ``0o666`` / ``0o777`` minus the umask (not the
  ``0o600`` / ``0o700`` of ``tempfile``), so a service under another account can read them.
* A full disk (``ENOSPC``, ``EDQUOT``) is reported as one :class:`ArtifactWriteError` line
  naming the target; the partial build is removed and the previous version stays in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from queryshift.errors import ArtifactWriteError, OutputPathError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks, so debris is never removed
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_NAME",
    "DirectorySnapshot",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_directory",
    "check_output_directory",
    "read_directory",
    "remove_abandoned",
    "remove_abandoned_in",
]

MANIFEST_NAME = ".queryshift-manifest.json"
"""Written last into every directory :func:`atomic_directory` builds: the files queryshift put
there, so a later write can tell its own directory from one holding the user's files."""

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_RENAME_EXCHANGE = 2  # <linux/fs.h>
_AT_FDCWD = -100
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}
_READ_ATTEMPTS = 50

# Layouts queryshift wrote before directories carried a manifest (0.1): replaced without one.
# An adapter (adapters/io.py, pipeline.HELDOUT_NAME), a LlamaIndex export
# (integrations/llamaindex/files.py) and a fine-tuned model (training/finetune.py REPORT_NAME).
_LEGACY_EXACT = (
    ({"adapter_config.json", "adapter.safetensors"}, {"heldout_queries.json"}),
    ({"config.json", "pytorch_model.bin", "queryshift_adapter.json"}, set()),
)
_LEGACY_MARKER = "finetune_report.json"


def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap the entries ``a`` and ``b`` in one step; ``False`` where the system cannot.

    Raises ``FileNotFoundError`` when either is missing.
    """
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the chain, including safetensors' Rust I/O errors (no errno)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        text = str(exc)
        if type(exc).__name__ == "SafetensorError" and ("StorageFull" in text or "os error 28" in text):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _disk_full_error(target: Path, what: str) -> ArtifactWriteError:
    return ArtifactWriteError(
        errno.ENOSPC,
        f"no space left on the device while writing {what} {target}: nothing was written "
        "and any previous version is untouched; free some space and retry",
    )


def _same_entry(fd: int, path: Path, *, follow: bool = False) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path) if follow else os.lstat(path))
    except FileNotFoundError:
        return False


def _lock(fd: int, *, blocking: bool) -> bool:
    if fcntl is None:  # pragma: no cover
        return blocking
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_locked(target: Path, *, directory: bool) -> tuple[Path, int]:
    """Create ``.NAME.<token>.tmp`` beside ``target`` (umask-respecting) and hold its lock.

    The lock tells :func:`remove_abandoned` that a live writer owns it. A cleaner may remove the
    entry between its creation and the lock; then it is gone once the lock is ours, and we retry.
    """
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            if directory:
                os.mkdir(tmp, 0o777)
            fd = os.open(tmp, os.O_RDONLY if directory else os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # a name clash
            continue
        except FileNotFoundError:
            if directory and tmp.parent.is_dir():  # a cleaner removed it before we could lock it
                continue
            raise
        _lock(fd, blocking=True)
        if _same_entry(fd, tmp):
            return tmp, fd
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a locked temporary sibling, ``fsync`` and one ``os.replace``.

    Raises:
        ArtifactWriteError: The disk is full; ``path`` is unchanged and the temporary file is gone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _new_locked(path, directory=False)
    try:
        _write_all(fd, data)
        os.fsync(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _disk_full(exc):
            raise _disk_full_error(path, "file") from exc
        raise
    finally:
        os.close(fd)
    _fsync_dir(path.parent)
    remove_abandoned(path)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _files_under(dir_fd: int) -> list[str]:
    """Relative POSIX paths of everything that is not a directory under the directory ``dir_fd``."""
    found = []
    for root, dirs, files, root_fd in os.fwalk(".", dir_fd=dir_fd):
        base = Path(root)
        links = [d for d in dirs if stat.S_ISLNK(os.stat(d, dir_fd=root_fd, follow_symlinks=False).st_mode)]
        found.extend((base / name).as_posix() for name in files + links)
    return sorted(found)


def _foreign_files(dir_fd: int) -> list[str]:
    """What in the directory ``dir_fd`` queryshift did not write (empty: safe to replace)."""
    top = set(os.listdir(dir_fd))
    if not top:
        return []
    present = set(_files_under(dir_fd))
    manifest = _read_at(dir_fd, MANIFEST_NAME)
    if manifest is not None:
        try:
            listed = set(json.loads(manifest)["files"])
        except (ValueError, KeyError, TypeError):
            listed = set()
        return sorted(present - listed - {MANIFEST_NAME})
    if present == top:  # no sub-directories
        for required, optional in _LEGACY_EXACT:
            if required <= top <= required | optional:
                return []
    if _LEGACY_MARKER in top:
        return []
    return sorted(top)


def _check_existing(path: str | Path, target: Path) -> None:
    """Refuse an existing ``target`` that is not a directory queryshift wrote; a missing one is fine.

    Read through one directory handle, and again if a concurrent writer swapped versions meanwhile.
    """
    for _attempt in range(_READ_ATTEMPTS):
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            return
        except NotADirectoryError:
            raise OutputPathError(f"refusing to write {path}: it exists and is not a directory") from None
        except PermissionError:
            raise OutputPathError(f"cannot write {path}: permission denied reading it") from None
        try:
            try:
                foreign = _foreign_files(fd)
            except FileNotFoundError:  # removed under us by a concurrent writer
                foreign = [""]
            if not foreign:
                return
            if _same_entry(fd, target, follow=True):
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise OutputPathError(
                    f"refusing to replace {path}: it holds files queryshift did not write ({shown}); "
                    "choose another output directory or move them away"
                )
        finally:
            os.close(fd)
    raise OutputPathError(f"cannot check {path}: it kept changing while being read")


def _resolve(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def check_output_directory(path: str | Path, *, protect: Iterable[str | Path] = ()) -> Path:
    """Check that a directory can be written at ``path`` without losing anything; return it resolved.

    Refused: the current directory or one containing it; any of ``protect`` (e.g. the input
    data) or a directory containing one; an existing entry that is not a directory, is a mount
    point, or holds files queryshift did not write (see the module docstring); a parent that is
    read-only or not writable. Call it before any long work (training), so a refusal costs
    nothing; :func:`atomic_directory` calls it again before it replaces anything.

    Raises:
        OutputPathError: One line naming ``path`` and the reason.

    Example:
        >>> import tempfile
        >>> check_output_directory(tempfile.mkdtemp() + "/new-adapter").name
        'new-adapter'
    """
    target = _resolve(path)
    where = Path.cwd().resolve()
    if target == where or target in where.parents:
        raise OutputPathError(
            f"refusing to write {path}: it is the current directory or contains it; name a new directory"
        )
    for item in protect:
        kept = _resolve(item)
        if kept == target or target in kept.parents:
            raise OutputPathError(f"refusing to write {path}: it would replace the input {item}")
    if os.path.ismount(target):
        raise OutputPathError(f"refusing to write {path}: it is a mount point")
    _check_existing(path, target)
    parent = target.parent
    try:
        while not parent.exists():
            parent = parent.parent
        writable = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    except PermissionError:
        writable = False
    if not parent.is_dir():
        raise OutputPathError(f"refusing to write {path}: {parent} is not a directory")
    if not writable:
        raise OutputPathError(f"cannot write {path}: {parent} is read-only or not writable by this user")
    return target


def _write_manifest(build: Path) -> None:
    from queryshift import __version__

    fd = os.open(build, os.O_RDONLY)
    try:
        files = [name for name in _files_under(fd) if name != MANIFEST_NAME]
    finally:
        os.close(fd)
    text = json.dumps({"written_by": "queryshift", "queryshift_version": __version__, "files": files})
    fd = os.open(build / MANIFEST_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _write_all(fd, (text + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _fsync_tree(build: Path) -> None:
    for root, _dirs, files in os.walk(build):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _publish(build: Path, target: Path) -> list[Path]:
    """Put ``build`` at ``target``; return where previous versions now lie (to be removed)."""
    while True:
        try:
            if _exchange(build, target):
                return [build]
        except FileNotFoundError:  # no target yet, or a two-rename swap is between its steps
            pass
        else:
            return _publish_by_renames(build, target)
        try:
            os.rename(build, target)
            return []
        except OSError as exc:  # another writer published first: swap with theirs
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise


def _publish_by_renames(build: Path, target: Path) -> list[Path]:
    """Fallback without an atomic exchange: move the old version aside, then move ours in."""
    aside: list[Path] = []
    while True:
        old = target.parent / f".{target.name}.{secrets.token_hex(6)}.old"
        try:
            os.rename(target, old)
            aside.append(old)
        except FileNotFoundError:
            pass
        try:
            os.rename(build, target)
            return aside
        except OSError as exc:  # a concurrent writer published in between: move theirs aside too
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, what: str = "directory") -> Iterator[Path]:
    """Yield an empty directory that replaces ``path`` whole when the block exits cleanly.

    ``path`` is first checked with :func:`check_output_directory` (nothing is touched if it holds
    anything queryshift did not write). If the block raises, the build is removed and ``path`` is
    untouched. A symlink at ``path`` is followed: the directory it points to is replaced.

    Args:
        path: The directory to write.
        what: What is written, for error messages ("adapter", "fine-tuned model").

    Raises:
        OutputPathError: ``path`` may not be replaced.
        ArtifactWriteError: The disk filled up; nothing was replaced.

    Example:
        >>> import tempfile
        >>> with atomic_directory(tempfile.mkdtemp() + "/out") as build:
        ...     _ = (build / "a.txt").write_text("hello")
    """
    target = check_output_directory(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        build, fd = _new_locked(target, directory=True)
    except OSError as exc:
        if _disk_full(exc):
            raise _disk_full_error(target, what) from exc
        raise
    try:
        try:
            yield build
            _write_manifest(build)
            _fsync_tree(build)
            check_output_directory(target)  # again: the user may have added files meanwhile
            previous = _publish(build, target)
        except BaseException as exc:
            shutil.rmtree(build, ignore_errors=True)
            if _disk_full(exc):
                raise _disk_full_error(target, what) from exc
            raise
    finally:
        os.close(fd)
    _fsync_dir(target.parent)  # the new version is in place; this makes the swap itself durable
    for old in previous:
        shutil.rmtree(old, ignore_errors=True)
    remove_abandoned(target)


def remove_abandoned(target: str | Path) -> list[Path]:
    """Remove debris of interrupted writes of ``target``: ``.NAME.*.tmp`` and ``.NAME.*.old`` siblings.

    An entry whose lock a live writer holds is left alone, so this is safe to call while other
    processes write ``target``. Called after every successful write.

    Returns:
        The entries removed.
    """
    target = Path(target)
    if fcntl is None:  # pragma: no cover
        return []
    debris = _debris_pattern(target.name, "tmp|old")
    removed = []
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return []
    for name in names:
        if debris.match(name):
            entry = target.parent / name
            if _remove_if_unlocked(entry):
                removed.append(entry)
    if removed:
        logger.info("removed %d leftovers of interrupted writes of %s", len(removed), target)
    return removed


def remove_abandoned_in(folder: str | Path) -> list[Path]:
    """Remove the temporary files of every killed :func:`atomic_write_bytes` in ``folder``.

    For folders of many small files (the embedding cache), where each file is written once under
    its own name, so no later write of the same name would clean up after it.
    """
    folder = Path(folder)
    if fcntl is None:  # pragma: no cover
        return []
    debris = re.compile(r"\..+\.[A-Za-z0-9_]{8,12}\.tmp\Z")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [folder / n for n in names if debris.match(n) and _remove_if_unlocked(folder / n)]


def _remove_if_unlocked(entry: Path) -> bool:
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        if not _lock(fd, blocking=False) or not _same_entry(fd, entry):
            return False
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry)
        return True
    finally:
        os.close(fd)


@dataclass(frozen=True)
class DirectorySnapshot:
    """Files read from one version of a directory (see :func:`read_directory`).

    Attributes:
        path: The directory as given.
        names: Every top-level entry of that version.
        files: The requested files that exist there (as regular files), by relative path.
    """

    path: Path
    names: frozenset[str]
    files: dict[str, bytes]


def read_directory(path: str | Path, wanted: Iterable[str], *, what: str = "directory") -> DirectorySnapshot:
    """Read the ``wanted`` files (relative paths) of the directory ``path``, all from one version.

    The directory is opened once and each file is read relative to that handle, so a concurrent
    :func:`atomic_directory` swap cannot mix an old file with a new one. If the version being read
    is removed by the writer mid-read, the read starts again on the new one.

    Args:
        path: The directory.
        wanted: Relative paths of the files to read; those missing are left out of ``files``.
        what: What the directory is, for error messages ("adapter directory").

    Raises:
        FileNotFoundError: ``path`` is missing (naming a copy an interrupted save left aside, if any).
        NotADirectoryError: ``path`` is not a directory.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.txt").write_text("hello")
        >>> read_directory(folder, ["a.txt", "b.txt"]).files
        {'a.txt': b'hello'}
    """
    path = Path(path)
    wanted = list(wanted)
    for attempt in range(_READ_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            aside = _set_aside(path)
            if aside and attempt < _READ_ATTEMPTS - 1:
                time.sleep(0.002)  # a two-rename swap is between its steps
                continue
            hint = f" (an interrupted save left the previous version in {aside[0]})" if aside else ""
            raise FileNotFoundError(f"{what} {path} does not exist{hint}") from None
        except NotADirectoryError:
            raise NotADirectoryError(f"{what} {path} is not a directory") from None
        try:
            names = frozenset(os.listdir(fd))
            files = {name: _read_at(fd, name) for name in wanted}
            if None not in files.values() or _same_entry(fd, path, follow=True):
                found = {name: data for name, data in files.items() if data is not None}
                return DirectorySnapshot(path, names, found)
            # the version we opened was swapped away and removed while we read it: read the new one
        finally:
            os.close(fd)
    raise OSError(f"{path} kept changing while being read ({_READ_ATTEMPTS} attempts)")


def _read_at(dir_fd: int, name: str) -> bytes | None:
    """A regular file's bytes, or ``None`` when it is missing or not a regular file."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _set_aside(path: Path) -> list[Path]:
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    aside = _debris_pattern(path.name, "old")
    return sorted(path.parent / n for n in names if aside.match(n))


def _debris_pattern(name: str, suffixes: str) -> re.Pattern[str]:
    """``.NAME.<token>.tmp`` / ``.old``: our 12-hex tokens and the 8-character ones of ``tempfile`` (0.1)."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8,12}}\.(?:{suffixes})\Z")
