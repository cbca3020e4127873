"""Files encrypted by agencies to the hub's public key: real X25519, HKDF and AES-GCM."""

import os
import stat

import pytest

from connectors import dropcrypt
from connectors.dropcrypt import (DecryptionError, DropCryptError, HEADER_BYTES, TAG_BYTES,
                                  decrypt_from_agency, encrypt_for_hub, generate_hub_keypair,
                                  load_private_key, load_public_key)


@pytest.fixture
def keys(tmp_path):
    private_path, public_path = generate_hub_keypair(tmp_path / "keys" / "drop.key")
    return load_private_key(private_path), load_public_key(public_path)


def _round_trip(tmp_path, keys, data, chunk_size=dropcrypt.CHUNK):
    private, public = keys
    src, enc, out = tmp_path / "plain.csv", tmp_path / "plain.csv.lhx", tmp_path / "out.csv"
    src.write_bytes(data)
    encrypt_for_hub(src, enc, public, chunk_size=chunk_size)
    assert decrypt_from_agency(enc, out, private) == len(data)
    return enc, out.read_bytes()


@pytest.mark.parametrize("size, chunk", [(0, 64), (1, 64), (64, 64), (128, 64), (1000, 64), (3_000_000, 1 << 20)])
def test_round_trip_any_size_and_chunk_boundary(tmp_path, keys, size, chunk):
    data = os.urandom(size)
    enc, back = _round_trip(tmp_path, keys, data, chunk)
    assert back == data
    frames = max(1, -(-size // chunk))
    assert enc.stat().st_size == HEADER_BYTES + size + frames * TAG_BYTES


def test_ciphertext_hides_the_plaintext_and_differs_every_time(tmp_path, keys):
    data = b"client_id,last_name\nC00001,ZEBEDIAH\n" * 50
    first, _ = _round_trip(tmp_path, keys, data)
    one = first.read_bytes()
    second, _ = _round_trip(tmp_path, keys, data)
    assert b"ZEBEDIAH" not in one and one != second.read_bytes()  # fresh ephemeral key per file


def _encrypted(tmp_path, keys, size=1000, chunk=100):
    src, enc = tmp_path / "p", tmp_path / "p.lhx"
    src.write_bytes(os.urandom(size))
    encrypt_for_hub(src, enc, keys[1], chunk_size=chunk)
    return enc, bytearray(enc.read_bytes())


def _tampered(data: bytearray, how: str, frame: int) -> bytes:
    body = HEADER_BYTES
    if how == "truncate_at_frame_boundary":
        return bytes(data[:body + 3 * frame])
    if how == "truncate_mid_frame":
        return bytes(data[:-5])
    if how == "drop_middle_frame":
        return bytes(data[:body + frame] + data[body + 2 * frame:])
    if how == "swap_frames":
        a, b = data[body:body + frame], data[body + frame:body + 2 * frame]
        return bytes(data[:body] + b + a + data[body + 2 * frame:])
    if how == "append":
        return bytes(data + data[body:body + frame])
    if how == "flip_ciphertext_bit":
        data[body + 10] ^= 1
        return bytes(data)
    if how == "flip_header_bit":
        data[5] ^= 1  # the chunk size: authenticated as associated data
        return bytes(data)
    if how == "header_only":
        return bytes(data[:body])
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncate_at_frame_boundary", "truncate_mid_frame", "drop_middle_frame",
                                 "swap_frames", "append", "flip_ciphertext_bit", "flip_header_bit",
                                 "header_only"])
def test_any_change_fails_authentication_and_leaves_no_plaintext(tmp_path, keys, how):
    enc, data = _encrypted(tmp_path, keys)
    enc.write_bytes(_tampered(data, how, 100 + TAG_BYTES))
    out = tmp_path / "out"
    with pytest.raises(DecryptionError):
        decrypt_from_agency(enc, out, keys[0])
    assert not out.exists()


def test_a_file_for_another_hub_key_is_refused_by_key_id(tmp_path, keys):
    other_private, _ = generate_hub_keypair(tmp_path / "other" / "drop.key")
    enc, _ = _encrypted(tmp_path, keys)
    with pytest.raises(DecryptionError, match="another key"):
        decrypt_from_agency(enc, tmp_path / "out", load_private_key(other_private))


def test_key_files_private_0600_public_pem_never_overwritten(tmp_path):
    private, public = generate_hub_keypair(tmp_path / "k" / "drop.key")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.name == "drop.pub" and public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert b"PRIVATE" not in public.read_bytes()
    with pytest.raises(DropCryptError, match="already exists"):
        generate_hub_keypair(private)
    private.chmod(0o644)
    with pytest.raises(DropCryptError, match="readable by others"):
        load_private_key(private)


def test_agency_command_writes_file_lhx(tmp_path, keys, capsys):
    _, public_path = generate_hub_keypair(tmp_path / "hub" / "drop.key")
    src = tmp_path / "jail_bookings_20240101.csv"
    src.write_bytes(b"booking_id\nB1\n")
    assert dropcrypt.main([str(public_path), str(src)]) == 0
    enc = tmp_path / "jail_bookings_20240101.csv.lhx"
    out = tmp_path / "back.csv"
    decrypt_from_agency(enc, out, load_private_key(tmp_path / "hub" / "drop.key"))
    assert out.read_bytes() == src.read_bytes()
    assert dropcrypt.main([str(public_path), str(src)]) == 2  # never overwrites an earlier output
    assert "already exists" in capsys.readouterr().err


def test_dropcrypt_stays_light_for_agency_workstations():
    import subprocess
    import sys
    code = ("import sys, connectors.dropcrypt; heavy = {'duckdb', 'pandas', 'great_expectations', "
            "'pyarrow', 'airflow', 'leadhub'} & set(m.split('.')[0] for m in sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_leadhub_keygen_drop_creates_the_pair_beside_the_master_key(settings, capsys):
    from leadhub.cli import main
    assert main(["keygen-drop"]) == 0
    private = settings.key_file.with_name("drop.key")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.with_name("drop.pub").exists()
    assert main(["keygen-drop"]) == 2  # refuses to overwrite


def test_leadhub_decrypt_drop_reads_an_archived_lhx(settings, tmp_path, capsys):
    from leadhub.cli import main
    assert main(["keygen-drop"]) == 0
    public = load_public_key(settings.key_file.with_name("drop.pub"))
    src, enc, out = tmp_path / "x.csv", tmp_path / "x.csv.lhx", tmp_path / "back.csv"
    src.write_bytes(b"a,b\n1,2\n")
    encrypt_for_hub(src, enc, public)
    assert main(["decrypt-drop", str(enc), str(out), "--reason", "check"]) == 0 and out.read_bytes() == src.read_bytes()
    assert main(["decrypt-drop", str(enc), str(out), "--reason", "check"]) == 2  # never overwrites
