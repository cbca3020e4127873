"""The trigger that starts a feed when a complete file lands in an agency inbox.

Airflow's own file triggers for asset watchers delete the file they saw, and a
delivery must never be lost before the intake has archived it, so the hub
polls with its own trigger. ``InboxFilesTrigger`` runs in the triggerer as the
watcher of a ``leadhub://inbox/<agency>`` asset; each event it yields becomes
an asset event, and the agency's feed DAG is scheduled on that asset.

It only lists the directory and reads file sizes and times: it never opens,
moves or deletes a file. A file counts as complete when its name is not a
temporary one (the clerks' ``.part``/``.tmp`` convention, rsync's hidden
copies) and its size and modification time did not change between two polls,
so a copy still in progress does not start a run. Each complete file is reported once; a file
re-delivered under the same name (new size or time) is reported again. The
memory of what was reported is lost when the triggerer restarts, which at
worst starts one feed run that finds the file already taken — harmless,
because the intake is idempotent.

This module is imported at parse time and in the triggerer: standard library,
``airflow.triggers``, ``leadhub.core.errors`` and ``connectors.inbox_files`` (no
duckdb, pyarrow or pandas) only.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from connectors.inbox_files import is_in_progress
from leadhub.core.errors import printable

FileKey = tuple[str, int, int]  # name, size, mtime in ns


def list_candidates(directory: str) -> set[FileKey]:
    """Regular files in ``directory`` with non-temporary names; an absent directory is empty."""
    found: set[FileKey] = set()
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return found
    for entry in entries:
        if is_in_progress(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                # Symlinks and other oddities are also the intake's business (it quarantines
                # them), so they count as arrivals; directories do not.
                if entry.is_dir(follow_symlinks=False):
                    continue
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # taken by the intake between listing and stat
            continue
        found.add((entry.name, st.st_size, st.st_mtime_ns))
    return found


class InboxScan:
    """The polling logic, separate from asyncio so tests can drive it step by step.

    ``poll(listing)`` takes one directory listing and returns the names of files
    that are complete (unchanged since the previous listing) and not yet reported.
    """

    def __init__(self) -> None:
        self.previous: set[FileKey] = set()
        self.reported: set[FileKey] = set()

    def poll(self, listing: set[FileKey]) -> list[str]:
        stable = listing & self.previous
        new = stable - self.reported
        self.previous = listing
        self.reported = (self.reported & listing) | new  # forget files that left the inbox
        return sorted(name for name, _, _ in new)


class InboxFilesTrigger(BaseEventTrigger):
    """Yields an event (with the new file names) whenever complete files arrive in ``directory``."""

    def __init__(self, directory: str, agency: str, poll_seconds: float = 30.0) -> None:
        super().__init__()
        self.directory = directory
        self.agency = agency
        self.poll_seconds = float(poll_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"directory": self.directory, "agency": self.agency, "poll_seconds": self.poll_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        scan = InboxScan()
        while True:
            listing = await asyncio.to_thread(list_candidates, self.directory)
            names = scan.poll(listing)
            if names:
                self.log.info("%s inbox: %d complete file(s) arrived", self.agency, len(names))
                # Escaped: a name that is not UTF-8 could not be stored with the event, and one
                # with a newline could forge a line of the triggerer's log.
                yield TriggerEvent({"agency": self.agency, "files": [printable(n) for n in names]})
            await asyncio.sleep(self.poll_seconds)
