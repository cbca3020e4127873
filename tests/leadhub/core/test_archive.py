import io
import os

import pytest

from leadhub.core.archive import decrypt_to, encrypt_file
from leadhub.core.errors import LeadHubError


def test_archive_round_trips_byte_for_byte_and_hides_plaintext(tmp_path, master_key):
    src = tmp_path / "jail_bookings_20240101.csv"
    src.write_bytes(b"booking_id,last_name\nB1,ZEBEDIAH\n" + os.urandom(3_000_000))
    dst = tmp_path / "archive" / "x.enc"
    encrypt_file(src, dst, master_key)
    assert b"ZEBEDIAH" not in dst.read_bytes()
    out = io.BytesIO()
    decrypt_to(dst, out, master_key)
    assert out.getvalue() == src.read_bytes()


def _tampered_archive(tmp_path, master_key):
    src = tmp_path / "f.csv"
    src.write_bytes(b"a,b\n1,2\n")
    dst = tmp_path / "f.enc"
    encrypt_file(src, dst, master_key)
    data = bytearray(dst.read_bytes())
    data[30] ^= 1
    dst.write_bytes(bytes(data))
    return dst


def test_tampered_archive_fails_authentication(tmp_path, master_key):
    dst = _tampered_archive(tmp_path, master_key)
    with pytest.raises(LeadHubError, match="authentication"):
        decrypt_to(dst, io.BytesIO(), master_key)


def test_encrypt_file_reads_an_open_descriptor_from_its_start_and_returns_the_archived_hash(tmp_path, master_key):
    import hashlib

    src = tmp_path / "f.csv"
    src.write_bytes(b"a,b\n1,2\n")
    fd = os.open(src, os.O_RDONLY)
    try:
        os.read(fd, 3)  # wherever the descriptor stands, the whole file is archived
        digest = encrypt_file(fd, tmp_path / "f.enc", master_key)
    finally:
        os.close(fd)
    out = io.BytesIO()
    decrypt_to(tmp_path / "f.enc", out, master_key)
    assert out.getvalue() == b"a,b\n1,2\n" and digest == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_steward_decrypt_writes_the_plaintext_for_its_owner_only(settings, master_key, tmp_path):
    from leadhub import cli

    src = tmp_path / "jail_bookings_20240101.csv"
    src.write_bytes(b"booking_id,last_name\nB1,ZEBEDIAH\n")
    archived = tmp_path / "x.enc"
    encrypt_file(src, archived, master_key)
    out = tmp_path / "restored.csv"
    old_umask = os.umask(0o022)
    try:
        assert cli.main(["decrypt", str(archived), str(out), "--reason", "records request"]) == 0
    finally:
        os.umask(old_umask)
    assert out.read_bytes() == src.read_bytes()
    assert out.stat().st_mode & 0o777 == 0o600
    assert cli.main(["decrypt", str(archived), str(out), "--reason", "again"]) == 2  # never overwrites: a one-line error
    assert out.read_bytes() == src.read_bytes()


def test_steward_decrypt_of_a_tampered_archive_leaves_no_plaintext(settings, master_key, tmp_path):
    from leadhub import cli

    archived = _tampered_archive(tmp_path, master_key)
    out = tmp_path / "restored.csv"
    assert cli.main(["decrypt", str(archived), str(out), "--reason", "records request"]) == 2
    assert not out.exists()
