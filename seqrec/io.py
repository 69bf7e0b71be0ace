"""Atomic writes (a reader never sees a half-written output), and whether the process that began one lives."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a whole file, streamed in chunks of `chunk` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: str | Path, text: str) -> None:
    """Write text to `path` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def pid_alive(pid: object) -> bool:
    """Whether process `pid` runs on this host (a lock or temporary file of a dead one is stale)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path` (`.tmp-<pid>-*`), renamed over it on success: a reader never sees half
    a folder. Temporary folders of writers that died are removed first. If another process renames its folder to
    `path` between this one's removal of the old and its rename (DDP ranks writing the same content), the other's
    is kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path.parent)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{os.getpid()}-"))
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_abandoned(folder: Path) -> None:
    """Temporary folders of atomic_folder writes whose process is gone (a crash or kill -9 mid-write)."""
    for tmp in folder.glob(".tmp-*"):
        pid = tmp.name.split("-")[1]
        if not pid.isdigit() or not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            log.info("removed %s, left by an interrupted write", tmp)
