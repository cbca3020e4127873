"""One writer at a time: real processes contend for the hub's writer lock and the warehouse file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import duckdb

from leadhub.pipeline import ingest_agency
from leadhub.core.lock import writer_lock
from leadhub.core.warehouse import connect

# A writer that holds the warehouse's write connection while it works: it records when it got
# in and when it left, in the warehouse itself, so the test reads the order from the data.
WRITER = textwrap.dedent("""
    import sys, time
    from leadhub.core.warehouse import connect
    name = sys.argv[2]
    print("starting", flush=True)
    with connect(sys.argv[1]) as con:
        con.execute("CREATE TABLE IF NOT EXISTS turns (name VARCHAR, step VARCHAR, t DOUBLE)")
        con.execute("INSERT INTO turns VALUES (?, 'in', ?)", [name, time.time()])
        time.sleep(1.5)
        con.execute("INSERT INTO turns VALUES (?, 'out', ?)", [name, time.time()])
""")

# Holds the lock (or a read-only warehouse connection) until its stdin closes.
HOLD_LOCK = textwrap.dedent("""
    import sys
    from leadhub.core.lock import writer_lock
    with writer_lock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()
""")
HOLD_READER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("held", flush=True)
    sys.stdin.read()
""")


def _env(settings, timeout: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_HOME"}
    env.update(LEADHUB_DATA_DIR=str(settings.data_dir), LEADHUB_KEY_FILE=str(settings.key_file))
    if timeout is not None:
        env["LEADHUB_LOCK_TIMEOUT_SECONDS"] = timeout
    return env


def _hold(script: str, target, env) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=60)


def _leadhub(settings, *args, timeout: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leadhub.cli", *args], env=_env(settings, timeout),
                          capture_output=True, text=True, timeout=300)


def test_two_writers_started_together_take_turns(settings):
    with connect(settings.warehouse_path):
        pass  # migrated once, so both writers find the same schema
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(settings.warehouse_path), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(settings, "120"))
             for name in ("first", "second")]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert not any("Traceback" in err for _, err in results)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        turns = con.execute("SELECT name, step FROM turns ORDER BY t").fetchall()
    # Whoever got in first left before the other got in: in, out, in, out by the same two names.
    assert [step for _, step in turns] == ["in", "out", "in", "out"]
    assert turns[0][0] == turns[1][0] != turns[2][0] == turns[3][0]


def test_a_writer_that_cannot_have_the_lock_gives_up_with_one_line_naming_the_holder(settings):
    holder = _hold(HOLD_LOCK, settings.writer_lock_path, _env(settings))
    try:
        done = _leadhub(settings, "ingest", timeout="0.2")
    finally:
        _release(holder)
    assert done.returncode == 2
    # (progress bars and log lines may come before it; the reason is one line of its own)
    lines = [line for line in done.stderr.splitlines() if line.startswith("leadhub:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("leadhub: error: another LEAD Hub writer holds")
    assert f"pid {holder.pid} " in lines[0] and "since" in lines[0] and "LEADHUB_LOCK_TIMEOUT_SECONDS" in lines[0]
    # Released, the same command goes through.
    assert _leadhub(settings, "ingest", timeout="0.2").returncode == 0


def test_a_reader_holding_the_warehouse_gets_a_writer_one_line_pointing_to_the_snapshot(settings):
    with connect(settings.warehouse_path):
        pass
    reader = _hold(HOLD_READER, settings.warehouse_path, _env(settings))
    try:
        done = {command: _leadhub(settings, command, timeout="0.2") for command in ("build", "ingest")}
    finally:
        _release(reader)
    for command, result in done.items():
        assert result.returncode == 2, command
        # (progress bars and log lines may come before it; the reason is one line of its own)
        lines = [line for line in result.stderr.splitlines() if line.startswith("leadhub:")]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"open in process {reader.pid}" in lines[0]
        assert "published/lead.duckdb" in lines[0]
        # ingest gives up once, not once per agency inbox
        assert "not taken" not in result.stdout


def test_the_lock_is_reentrant_in_one_process_and_released_after(settings):
    with writer_lock(settings.writer_lock_path, timeout=0):
        with connect(settings.warehouse_path) as con:  # takes the same lock again: no deadlock
            con.execute("CREATE TABLE t AS SELECT 1 AS x")
    # Free again: another process can take it at once.
    other = _hold(HOLD_LOCK, settings.writer_lock_path, _env(settings))
    _release(other)
    assert other.returncode == 0


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_warehouse_archive_and_state_are_private(settings, master_key):
    inbox = settings.inbox("treatment")
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "treatment_contacts_20240101.csv").write_text(
        "contact_id,client_id,contact_date,service_type\nS1,C1,2024-01-01,housing\n")
    os.utime(inbox / "treatment_contacts_20240101.csv", (1, 1))
    assert ingest_agency(settings, "treatment", master_key)[0]["status"] == "accepted"
    archived = list(settings.archive_dir.rglob("*.enc"))
    assert archived
    for d in (settings.archive_dir, settings.quarantine_dir, settings.warehouse_path.parent,
              settings.state_dir):
        assert _mode(d) == 0o700, d
    for f in (settings.warehouse_path, settings.writer_lock_path, *archived):
        assert _mode(f) == 0o600, f
    for d in {f.parent for f in archived}:
        assert _mode(d) == 0o700, d


def test_a_timeout_that_is_not_a_number_is_a_one_line_reason(settings, monkeypatch):
    import pytest

    from leadhub.core.errors import LeadHubError

    monkeypatch.setenv("LEADHUB_LOCK_TIMEOUT_SECONDS", "ten minutes")
    with pytest.raises(LeadHubError, match="LEADHUB_LOCK_TIMEOUT_SECONDS must be a number of seconds"):
        with writer_lock(settings.writer_lock_path):
            pass
