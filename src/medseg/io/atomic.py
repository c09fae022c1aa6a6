"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "fsync_path", "fsync_dir"]


def _default_mode() -> int:
    """Mode of a newly created file under the process umask (``0o644`` under ``022``)."""
    mask = os.umask(0)  # reading the umask means setting it; restored at once
    os.umask(mask)
    return 0o666 & ~mask


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a written file's data to disk (``fsync``), so a rename after it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where
    folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without directory fsync
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``target`` atomically.

    The temporary file keeps the target's full suffix (``.nii.gz``, ``.png``) so writers
    that pick a format from the extension still work. On any exception the temporary file
    is removed and ``target`` is left untouched. The file is ``fsync``-ed before the rename
    and its folder after it, so a completed save survives a crash or power loss. The result
    gets the permissions of the file it replaces, or those of a new file under the umask
    (not ``mkstemp``'s private ``0600``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        mode = target.stat().st_mode & 0o7777 if target.exists() else _default_mode()
        os.chmod(tmp, mode)
        fsync_path(tmp)  # data on disk before the rename makes it visible
        os.replace(tmp, target)
        fsync_dir(target.parent)  # the rename itself survives a crash
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
