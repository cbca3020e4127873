import io
import os

import pytest

from connectors.archive import decrypt_to, encrypt_file
from leadhub.errors import LeadHubError


def test_archive_round_trips_byte_for_byte_and_hides_plaintext(tmp_path, master_key):
    src = tmp_path / "jail_bookings_20240101.csv"
    src.write_bytes(b"booking_id,last_name\nB1,ZEBEDIAH\n" + os.urandom(3_000_000))
    dst = tmp_path / "archive" / "x.enc"
    encrypt_file(src, dst, master_key)
    assert b"ZEBEDIAH" not in dst.read_bytes()
    out = io.BytesIO()
    decrypt_to(dst, out, master_key)
    assert out.getvalue() == src.read_bytes()


def test_tampered_archive_fails_authentication(tmp_path, master_key):
    src = tmp_path / "f.csv"
    src.write_bytes(b"a,b\n1,2\n")
    dst = tmp_path / "f.enc"
    encrypt_file(src, dst, master_key)
    data = bytearray(dst.read_bytes())
    data[30] ^= 1
    dst.write_bytes(bytes(data))
    with pytest.raises(LeadHubError, match="authentication"):
        decrypt_to(dst, io.BytesIO(), master_key)
