"""The shared file and transaction plumbing: atomic writes, private modes, durable appends, transactions."""

import os
import stat

import duckdb
import pytest

from leadhub.core.files import (append_durably, atomic_write, atomic_write_bytes, open_private, replace_dir,
                           replace_durably, transaction)


def mode_of(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, tmp=tmp_path / ".state.part") as f:
            f.write(b"half of the new")
            raise RuntimeError("crash")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_an_atomic_write_is_private_even_over_a_wide_leftover_temporary(tmp_path):
    path = tmp_path / "crosswalk.enc"
    leftover = tmp_path / "crosswalk.tmp"
    leftover.write_bytes(b"stale")
    os.chmod(leftover, 0o644)
    with atomic_write(path, tmp=leftover) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and mode_of(path) == 0o600 and not leftover.exists()


def test_an_atomic_write_without_a_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "report.csv", text=True, mode=None) as f:
            f.write("a,b\n")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "report.csv") == 0o640  # 0666 & ~0027


def test_open_private_with_o_excl_refuses_an_existing_name(tmp_path):
    (tmp_path / "key").write_text("existing")
    with pytest.raises(FileExistsError):
        open_private(tmp_path / "key", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert (tmp_path / "key").read_text() == "existing"


def test_append_durably_appends_and_narrows_a_wide_existing_file(tmp_path):
    log = tmp_path / "audit.log"
    log.write_text("one\n")
    os.chmod(log, 0o644)
    append_durably(log, "two\n")
    assert log.read_text() == "one\ntwo\n" and mode_of(log) == 0o600


def test_replace_durably_swaps_a_finished_file_in(tmp_path):
    (tmp_path / "lead.duckdb").write_bytes(b"old")
    (tmp_path / ".lead.duckdb.1.tmp").write_bytes(b"new")
    replace_durably(tmp_path / ".lead.duckdb.1.tmp", tmp_path / "lead.duckdb")
    assert [p.name for p in tmp_path.iterdir()] == ["lead.duckdb"]
    assert (tmp_path / "lead.duckdb").read_bytes() == b"new"


def test_replace_dir_swaps_a_finished_folder_in_and_removes_the_old_one(tmp_path):
    target = tmp_path / "latest"
    (target / "sub").mkdir(parents=True)
    (target / "old.html").write_text("old")
    (target / "sub" / "old.csv").write_text("old")
    new = tmp_path / ".latest.partial"
    (new / "sub").mkdir(parents=True)
    (new / "report.html").write_text("new")
    (new / "sub" / "table.csv").write_text("a,b")
    replace_dir(new, target)
    # The target holds exactly the new tree; the staging name and the hidden .old are gone.
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == ["report.html", "sub", "sub/table.csv"]
    assert (target / "report.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_replace_dir_puts_a_first_folder_in_place_and_clears_a_killed_runs_leftover(tmp_path):
    leftover = tmp_path / ".docs.old"          # a run killed while deleting the previous folder
    leftover.mkdir()
    (leftover / "half.html").write_text("half")
    new = tmp_path / "docs.building"
    new.mkdir()
    (new / "index.html").write_text("site")
    replace_dir(new, tmp_path / "docs")
    assert (tmp_path / "docs" / "index.html").read_text() == "site"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_a_transaction_commits_or_rolls_back_also_on_keyboard_interrupt():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (n INTEGER)")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(KeyboardInterrupt):
        with transaction(con):
            con.execute("INSERT INTO t VALUES (2)")
            raise KeyboardInterrupt
    # Only the committed row is left, and the connection is usable (no transaction open).
    assert con.execute("SELECT list(n) FROM t").fetchone()[0] == [1]
    with transaction(con):
        con.execute("INSERT INTO t VALUES (3)")
    assert con.execute("SELECT list(n ORDER BY n) FROM t").fetchone()[0] == [1, 3]
