"""One writer at a time across the whole hub: a file lock that waits.

DuckDB allows one writing process per database file, and intake, build,
publication, key rotation, retention and re-processing also change the
archive, the inboxes and the state files together with the warehouse. Every
writing entry point therefore takes one exclusive ``fcntl.flock`` on
``writer.lock`` beside the warehouse (``Settings.writer_lock_path``) before it
starts. A second writer waits for it (``LEADHUB_LOCK_TIMEOUT_SECONDS``, default
10 minutes) and, when it gives up, says in one line who holds it: the holder
writes its pid, command and start time into the lock file.

The operating system releases a flock when its holder exits, however it exits
(``kill -9`` included), so a crash never leaves a stale lock; the holder line
left in the file is only read while somebody holds the lock. The lock is
re-entrant within a process: the CLI takes it for a whole command, and the
warehouse's write connection inside that command takes it again at no cost.
A forked child does not inherit the right to it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from leadhub.core.errors import LeadHubError
from leadhub.core.files import PRIVATE_FILE_MODE, make_private_dir
from leadhub.core.settings import ENV_LOCK_TIMEOUT, lock_timeout_seconds

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2

# {lock path: [fd, depth, owner pid]} of the locks this process holds.
_held: dict[Path, list[int]] = {}
_guard = threading.RLock()


class WriterLockTimeout(LeadHubError):
    """Another writer held the hub's writer lock for longer than this one would wait."""


def _command() -> str:
    """What this process is, for the holder line: the program and its subcommand (``leadhub
    build``, ``airflow tasks``), never other arguments, which may be file names."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c") else "python"
    sub = sys.argv[1] if len(sys.argv) > 1 and re.fullmatch(r"[a-z][a-z-]{0,30}", sys.argv[1]) else ""
    return f"{program} {sub}".strip()


def holder(path: Path) -> str:
    """The holder line a lock file records: 'pid N (command) since TIME', or '' when unknown."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


@contextmanager
def writer_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the hub's writer lock at ``path`` for the ``with`` block, waiting up to ``timeout`` s.

    Raises WriterLockTimeout with one line naming the holder when it cannot
    have the lock in time.
    """
    path = Path(path).absolute()
    timeout = lock_timeout_seconds() if timeout is None else timeout
    with _guard:
        entry = _held.get(path)
        if entry and entry[2] == os.getpid():
            entry[1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[path][1] -= 1
        return

    make_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        _acquire(fd, path, timeout)
        since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({_command()}) since {since}\n".encode(), 0)
        with _guard:
            _held[path] = [fd, 1, os.getpid()]
        try:
            yield
        finally:
            with _guard:
                del _held[path]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if waiting:
                log.info("writer lock %s taken", path)
            return
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            held_by = holder(path) or "another process"
            raise WriterLockTimeout(
                f"another LEAD Hub writer holds {path}: {held_by}; gave up after {timeout:g} s "
                f"(set {ENV_LOCK_TIMEOUT} to wait longer, or run this again when it has finished)")
        if not waiting:
            log.warning("waiting for the writer lock %s, held by %s", path, holder(path) or "another process")
            waiting = True
        time.sleep(POLL_SECONDS)
