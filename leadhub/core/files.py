"""The hub's file and transaction plumbing, written once.

Every durable file the hub writes goes through ``atomic_write`` (temporary
name in the same folder, fsync, rename, fsync of the folder): a reader or a
crash sees the old file or the new one, never half of one; ``replace_dir`` does the
same for a finished folder (the report, the Data Docs site). Files holding
anything about people are created 0600 and their folders 0700 before a byte is
written, so there is no moment when they are readable by others.
Inboxes (agencies upload into them), reports and the published snapshot
(analysts read them) keep the modes the deployment gives them.
``transaction`` is the one BEGIN/COMMIT/ROLLBACK block for DuckDB.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
TMP_SUFFIX = ".tmp"


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder so that a rename in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700, also when it already existed.

    A folder the hub does not own (a mounted volume) keeps its mode: the
    deployment decides it, and refusing to start over it would help no one.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    try:
        os.chmod(path, PRIVATE_DIR_MODE)
    except PermissionError:
        pass
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                 mode: int = PRIVATE_FILE_MODE) -> int:
    """os.open with the file's mode set even when it already existed (umask cannot widen it)."""
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def atomic_write(path: Path, text: bool = False, mode: int | None = PRIVATE_FILE_MODE,
                 tmp: Path | None = None, encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO]:
    """Yield a file open for writing; on success it replaces ``path`` durably, on error it vanishes.

    ``tmp`` names the temporary file where a caller's naming matters (e.g. so a sweep
    at the next start recognises it); by default it is ``<name>.tmp`` beside ``path``.
    ``mode=None`` leaves the mode to the umask, for files handed to readers (reports, exports).
    """
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(path.name + TMP_SUFFIX)
    if mode is None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    else:
        fd = open_private(tmp, mode=mode)
    try:
        with (os.fdopen(fd, "w", encoding=encoding, newline=newline) if text else os.fdopen(fd, "wb")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def replace_durably(tmp: Path, path: Path) -> None:
    """Swap a file finished by another writer (e.g. DuckDB) into place: fsync it, rename it, fsync the folder."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(Path(path).parent)


def replace_dir(new: Path, target: Path) -> None:
    """Swap a finished folder ``new`` into place as ``target`` (same parent folder), the old one removed after.

    Everything under ``new`` is fsynced before the swap and the parent folder after it, so a power cut
    leaves the old folder or the whole new one. The old folder is renamed aside to the hidden
    ``.<name>.old`` before it is deleted: a run killed while deleting leaves a partial folder only
    under that name, never under ``target``; the next swap clears it.
    """
    new, target = Path(new), Path(target)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    for folder, _, names in os.walk(new):
        for name in names:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))
    if target.exists():
        target.rename(old)
    new.rename(target)
    fsync_path(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    with atomic_write(path, mode=mode) as f:
        f.write(data)


def atomic_write_text(path: Path, data: str, mode: int = PRIVATE_FILE_MODE) -> None:
    with atomic_write(path, text=True, mode=mode) as f:
        f.write(data)


def append_durably(path: Path, text: str, mode: int = PRIVATE_FILE_MODE) -> None:
    """Append ``text`` with O_APPEND and fsync it before returning, so the entry is on disk before the
    action it records happens.

    The mode is set also on an existing file (e.g. one restored from a backup with a wider mode).
    """
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def transaction(con) -> Iterator:
    """BEGIN ... COMMIT on a DuckDB connection; ROLLBACK on any exception (KeyboardInterrupt too)."""
    con.execute("BEGIN")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
