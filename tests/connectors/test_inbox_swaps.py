"""A delivered file is read through the one descriptor opened when it was checked.

Hashing, the encrypted archive copy and parsing must all see the same bytes:
a name swapped for a symlink after the check is never followed, and a file
written to while it is being taken is quarantined instead of loaded with an
archive or rows that differ from the hash in the ledger.
"""

import hashlib
import io
import os

import duckdb

from connectors import inbox
from leadhub.core.archive import decrypt_to
from leadhub.pipeline import ingest_agency

HEADER = "contact_id,client_id,contact_date,service_type\n"
ORIGINAL = HEADER + "S1,C1,2024-01-01,housing\n"
NAME = "treatment_contacts_20240101.csv"


def _drop(settings, text=ORIGINAL):
    path = settings.inbox("treatment") / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (1, 1))
    return path


def _append_a_row(path):
    with open(path, "a") as f:
        f.write("S2,C1,2024-01-02,housing\n")


def _assert_refused_as_changed(outcome, settings):
    assert outcome["status"] == "quarantined" and "rule 'file_changed'" in outcome["reason"]
    assert _query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]
    assert _query(settings, "SELECT status FROM ops.file_ledger") == [("quarantined",)]


def _query(settings, sql):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_name_swapped_for_a_symlink_after_hashing_is_never_followed(settings, master_key, tmp_path,
                                                                      monkeypatch):
    """The archive keeps exactly the bytes that were hashed; the swapped file is refused, not read."""
    path = _drop(settings)
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text(HEADER + "X1,C9,2024-02-01,housing\nX2,C9,2024-02-02,housing\n")
    real_sha256 = inbox.file_sha256

    def hash_then_swap(source, *args):
        result = real_sha256(source, *args)
        swap = path.with_name("swap")
        swap.symlink_to(elsewhere)
        os.replace(swap, path)  # the inbox name now points elsewhere
        return result

    monkeypatch.setattr(inbox, "file_sha256", hash_then_swap)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "quarantined" and "rule 'file_changed'" in outcome["reason"]
    assert _query(settings, "SELECT count(*) FROM staging.treatment_contacts") == [(0,)]
    [(status, sha, archive)] = _query(settings, "SELECT status, sha256, archive_path FROM ops.file_ledger")
    assert status == "quarantined"
    out = io.BytesIO()
    decrypt_to(settings.data_dir / archive, out, master_key)
    assert out.getvalue() == ORIGINAL.encode()
    assert sha == hashlib.sha256(ORIGINAL.encode()).hexdigest()
    assert elsewhere.read_text().count("\n") == 3  # the target of the link was neither read into nor removed


def test_a_file_written_to_after_hashing_is_quarantined(settings, master_key, monkeypatch):
    path = _drop(settings)
    real_sha256 = inbox.file_sha256

    def hash_then_append(source, *args):
        result = real_sha256(source, *args)
        _append_a_row(path)
        return result

    monkeypatch.setattr(inbox, "file_sha256", hash_then_append)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    _assert_refused_as_changed(outcome, settings)
    assert list((settings.archive_dir / "treatment").glob("*.enc")) == []  # no archive that disagrees with the hash
    [kept] = [p for p in (settings.quarantine_dir / "treatment").iterdir() if not p.name.endswith(".json")]
    assert kept.read_text().count("\n") == 3  # nothing lost: the file as it now is waits in quarantine


def test_a_file_written_to_while_it_is_parsed_is_quarantined(settings, master_key, monkeypatch):
    path = _drop(settings)
    real_read_chunks = inbox.read_chunks

    def read_then_append(*args, **kwargs):
        for chunk in real_read_chunks(*args, **kwargs):
            _append_a_row(path)
            yield chunk

    monkeypatch.setattr(inbox, "read_chunks", read_then_append)
    [outcome] = ingest_agency(settings, "treatment", master_key)
    _assert_refused_as_changed(outcome, settings)
