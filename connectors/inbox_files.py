"""What intake does with a delivered file before reading it: judge its name, open it once,
hash it, notice a change, and move it aside without following a link.

Kept apart from ``connectors.inbox`` (which takes files through the stages) because the
pull connectors and the maintenance commands use the same rules.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import time
from pathlib import Path

from leadhub.core.errors import RejectedFile
from leadhub.core.files import atomic_write, fsync_path

IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".crdownload")
# ASCII letters and digits only (no look-alike letters), no leading dot, bounded length.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
# rsync writes ".<name>.<6 random characters>" while it copies, then renames.
RSYNC_TEMP = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9._-]*\.[A-Za-z0-9]{6}")
STABLE_SECONDS = 0.5


def open_checked(path: Path, expected: os.stat_result) -> tuple[int, os.stat_result]:
    """Open a delivered file ONCE, for everything intake does with it.

    Opened without following a symlink or blocking on a FIFO, and it must be
    the regular file that was checked (``expected``, its lstat): a name swapped
    for a symlink or a pipe after the check is refused instead of read. Hashing,
    archiving and parsing all read this descriptor, never the name again.
    Returns the descriptor and its fstat (the reference for ``check_unchanged``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise RejectedFile(path.name, "file_changed", "the file was replaced while it was being taken") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
        os.close(fd)
        raise RejectedFile(path.name, "file_changed", "the file was replaced while it was being taken")
    return fd, st


def second_descriptor(fd: int) -> int | None:
    """Another descriptor of the file open as ``fd``, with a read offset of its own, or None.

    Descriptors made by ``dup`` share one offset, so two threads reading the delivery at
    once (its archive copy and its parse) would move each other. Opening ``/proc/self/fd``
    (Linux) opens the very file ``fd`` holds, whatever its name points to by now; it is
    checked to be that file. Elsewhere there is none, and the caller reads one thing at a time.
    """
    try:
        other = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    mine, theirs = os.fstat(fd), os.fstat(other)
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino) or not stat.S_ISREG(theirs.st_mode):
        os.close(other)
        return None
    return other


def check_unchanged(fd: int, name: str, before: os.stat_result) -> None:
    """Refuse a file written to while it was being taken (its archive or rows could differ from its hash)."""
    now = os.fstat(fd)
    if (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (before.st_size, before.st_mtime_ns, before.st_ctime_ns):
        raise RejectedFile(name, "file_changed", "the file was written to while it was being taken")


def file_sha256(source: Path | int) -> tuple[str, int]:
    """SHA-256 and size of a file (a path, or a descriptor read from its start)."""
    # Imported here: readers loads numpy and pyarrow, and the DAG processor and triggerer import this module.
    from leadhub.core.readers import reopen

    h, size = hashlib.sha256(), 0
    with reopen(source, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def is_in_progress(name: str) -> bool:
    """Agency clerks write under a temporary name and rename when done.

    Only the agreed suffixes and rsync's temporary names count; any other name
    with a leading dot (``.hidden.csv``, ``..%2f..``) is refused and recorded,
    never silently left in the inbox.
    """
    return name.lower().endswith(IN_PROGRESS_SUFFIXES) or RSYNC_TEMP.fullmatch(name) is not None


def is_stable(path: Path, wait: float = STABLE_SECONDS) -> bool:
    """A file still growing (a copy without the temporary-name convention) is left for later."""
    first = path.lstat()
    if time.time() - first.st_mtime > max(wait, 2.0):
        return True
    time.sleep(wait)
    second = path.lstat()
    return (first.st_size, first.st_mtime_ns) == (second.st_size, second.st_mtime_ns)


def move_aside(src: Path, dst: Path) -> None:
    """Rename, never following a link; across filesystems (an SFTP upload volume mounted apart
    from the data volume) copy durably first, then remove the original."""
    try:
        os.replace(src, dst)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    st = src.lstat()
    tmp = dst.with_name(dst.name + ".tmp")
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), tmp)
        os.replace(tmp, dst)
        fsync_path(dst.parent)
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fin, atomic_write(dst, tmp=tmp) as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
    else:
        raise OSError(errno.EXDEV, f"cannot move a non-regular file across filesystems: {src.name}")
    src.unlink()


def _mtime_or_now(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return time.time()


def pending_files(inbox: Path) -> list[Path]:
    """Complete files waiting in an inbox, oldest first."""
    if not inbox.is_dir():
        return []
    entries = [Path(e.path) for e in os.scandir(inbox) if not is_in_progress(e.name)]
    return sorted(entries, key=lambda p: (_mtime_or_now(p), p.name))
