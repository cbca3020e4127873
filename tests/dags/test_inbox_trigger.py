"""The inbox watcher's trigger: which files start a feed, and that it never touches them.

Imports ``airflow.triggers`` only (no DAG parsing, no metadata database), the
same as the triggerer does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from connectors.inbox_files import is_in_progress as intake_is_in_progress
from dags.inbox_trigger import InboxFilesTrigger, InboxScan, is_in_progress, list_candidates

NAMES = ["jail_bookings_20241231.csv", "jail_bookings_20241231.csv.part", "x.TMP", ".hidden.csv",
         "a.partial", "b.filepart", "c.crdownload", "report.csv.tmp", "notes.txt", ".x.restore.part", ".jail_bookings_1.csv.a1B2c3"]


def test_temporary_names_follow_the_intakes_rule():
    assert [is_in_progress(n) for n in NAMES] == [intake_is_in_progress(n) for n in NAMES]


def test_the_trigger_module_loads_no_dataframe_or_warehouse_library():
    # The triggerer and the DAG processor import it: duckdb, pyarrow and pandas stay out
    code = ("import sys, dags.inbox_trigger; "
            "print(sorted(m for m in ('duckdb', 'pyarrow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_complete_names_and_no_directories_are_candidates(tmp_path):
    for name in NAMES:
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "notes.txt")  # the intake quarantines it: an arrival
    assert sorted(n for n, _, _ in list_candidates(str(tmp_path))) == [
        ".hidden.csv", "jail_bookings_20241231.csv", "link.csv", "notes.txt"]
    assert list_candidates(str(tmp_path / "missing")) == set()


def test_a_file_is_reported_once_when_it_stopped_changing_and_again_when_resent():
    scan = InboxScan()
    growing = {("a.csv", 10, 1)}
    assert scan.poll(growing) == []                      # first sight: may still be growing
    assert scan.poll({("a.csv", 20, 2)}) == []           # it grew
    assert scan.poll({("a.csv", 20, 2)}) == ["a.csv"]    # unchanged since the last poll: complete
    assert scan.poll({("a.csv", 20, 2)}) == []           # reported once, not on every poll
    assert scan.poll(set()) == []                        # the intake took it
    assert scan.poll({("a.csv", 30, 9)}) == []
    assert scan.poll({("a.csv", 30, 9)}) == ["a.csv"]    # a re-send under the same name counts again


def test_trigger_serializes_to_its_importable_class_and_settings():
    trigger = InboxFilesTrigger(directory="/data/inbox/jail", agency="jail", poll_seconds=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "dags.inbox_trigger.InboxFilesTrigger"
    assert kwargs == {"directory": "/data/inbox/jail", "agency": "jail", "poll_seconds": 5.0}
    assert InboxFilesTrigger(**kwargs).serialize() == (classpath, kwargs)


def first_event(directory):
    """Run the trigger on ``directory`` until its first event."""
    async def run():
        events = InboxFilesTrigger(directory=str(directory), agency="jail", poll_seconds=0.01).run()
        try:
            return await asyncio.wait_for(anext(events), timeout=30)
        finally:
            await events.aclose()

    return asyncio.run(run())


def test_trigger_fires_for_a_delivered_file_and_leaves_every_file_in_place(tmp_path):
    (tmp_path / "jail_bookings_20241231.csv.part").write_text("still copying")
    delivered = tmp_path / "jail_bookings_20241230.csv"
    delivered.write_text("booking_id\n1\n")
    os.utime(delivered, (1, 1))
    before = sorted(p.name for p in tmp_path.iterdir())

    event = first_event(tmp_path)
    assert event.payload == {"agency": "jail", "files": ["jail_bookings_20241230.csv"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert delivered.read_text() == "booking_id\n1\n"


def test_trigger_events_carry_hostile_names_escaped(tmp_path):
    # b"\xff" is not UTF-8 and "\n" could start a forged log line: both arrive escaped
    for raw in (b"jail_bookings_\xff.csv", b"jail_bookings_1.csv\nINFO forged"):
        path = os.path.join(os.fsencode(tmp_path), raw)
        open(path, "wb").close()
        os.utime(path, (1, 1))

    event = first_event(tmp_path)
    assert sorted(event.payload["files"]) == ["jail_bookings_1.csv\\x0aINFO forged", "jail_bookings_\\xff.csv"]
    json.dumps(event.payload).encode("utf-8")  # storable as the event's JSON
