"""Atomic file writes and hashing: everything genlab writes goes through here; and the one way to read
a file that untrusted code could have made (``read_regular_file``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def safe_join(folder: str | os.PathLike[str], name: str, *, what: str = "file name") -> Path:
    """``folder / name`` for a ``name`` that came from outside (a Hub's file list, a URL, an
    upload, a recipe's output): relative, ``/``-separated, without ``..``, ``.``, empty parts,
    backslashes, NUL or control characters, and still inside ``folder`` once symlinks are
    resolved. Every writer that takes an outside name joins it here; anything else raises
    :class:`~genlab.core.errors.UnsafePathError` (a 400, exit code 2) naming the bad name."""
    from genlab.core.errors import UnsafePathError

    if not isinstance(name, str) or not name or len(name) > 1024:
        raise UnsafePathError(f"{what} {name!r} is empty or too long")
    if name.startswith(("/", "~")) or any(c == "\\" or ord(c) < 32 or c == "\x7f" for c in name):
        raise UnsafePathError(f"{what} {name!r} is absolute or holds a backslash or control character")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts) or re.match(r"^[A-Za-z]:", name):
        raise UnsafePathError(f"{what} {name!r} has an empty, '.' or '..' part")
    base = Path(folder).resolve()
    target = base.joinpath(*parts)
    if not target.resolve().is_relative_to(base):  # a symlink inside the folder pointing out
        raise UnsafePathError(f"{what} {name!r} leads outside {base}")
    return target


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Write a file so that readers see either the old content or the new, never a torn file.

    The content goes to a temporary file in the same directory, is flushed to disk, and is then
    renamed over the target (`os.replace` is atomic on POSIX within one filesystem).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)  # the rename itself reaches the disk, not only the file's bytes
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of ``path``, where someone untrusted may have put anything: a symlink is not
    followed (``O_NOFOLLOW``), the open never waits on a FIFO (``O_NONBLOCK``), only a regular file
    is read (``fstat``), and one larger than ``max_bytes`` is refused, not cut. ``OSError`` otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks, size = [], 0
        while size <= max_bytes and (chunk := os.read(fd, min(1 << 20, max_bytes + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:  # counted as read: the file may grow after fstat
            raise OSError(f"{path} is larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _renameat2():
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return getattr(libc, "renameat2", None)


def swap_directory(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put directory ``new`` at ``target`` with no moment where ``target`` is missing: an existing
    target is exchanged with ``new`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``), then the
    old one (now at ``new``) is removed. Both directories' parents are fsynced."""
    import shutil

    new, target = Path(new), Path(target)
    if not target.exists():
        os.rename(new, target)
    else:
        renameat2 = _renameat2()
        at_cwd = -100  # AT_FDCWD
        if renameat2 is None or renameat2(at_cwd, bytes(new), at_cwd, bytes(target), _RENAME_EXCHANGE) != 0:
            # no exchange here (another kernel or libc): the shortest gap a rename pair allows
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.rename(target, old)
            os.rename(new, target)
            new = old
        shutil.rmtree(new, ignore_errors=True)
    fsync_dir(target.parent)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def package_file(module: str, relative: str, *, sha256: str, stamp: Path, package: str) -> Path:
    """A file shipped inside an installed PyPI package (located without importing the package,
    whose module may import things genlab does not need), checked against its pinned sha256 once
    per file state: later calls compare the stamp (path, size, mtime) and skip the hash."""
    import importlib.util

    from genlab.core.errors import IntegrityError, ModelLoadError

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the package {package} is not installed", hint=f"pip install {package}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing", hint=f"pip install --force-reinstall {package}")
    stat = path.stat()
    expected = {"sha256": sha256, "path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        if json.loads(Path(stamp).read_text("utf-8")) == expected:
            return path
    digest = sha256_file(path)
    if digest != sha256:
        raise IntegrityError(
            f"{path} has sha256 {digest}, expected {sha256}", hint=f"pip install --force-reinstall {package}"
        )
    atomic_write_json(stamp, expected)
    return path
