"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


def _default_mode() -> int:
    """Mode of a newly created file under the process umask (``0o644`` under ``022``)."""
    mask = os.umask(0)  # reading the umask means setting it; restored at once
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``target`` atomically.

    The temporary file keeps the target's full suffix (``.nii.gz``, ``.png``) so writers
    that pick a format from the extension still work. On any exception the temporary file
    is removed and ``target`` is left untouched. The result gets the permissions of the file
    it replaces, or those of a new file under the umask (not ``mkstemp``'s private ``0600``).
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
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
