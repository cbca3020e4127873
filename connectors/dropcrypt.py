"""Files encrypted by an agency to the hub's public key, and the command agencies run.

An agency that may not leave plaintext in a shared folder encrypts each
extract with ``leadhub-encrypt hub_drop.pub jail_bookings_20241231.csv`` and
uploads ``jail_bookings_20241231.csv.lhx``. Only the hub, holding the private
key, can read it; any change to the file is detected.

Construction (per file):
  * X25519: a fresh ephemeral key pair per file, agreed with the hub's static
    public key (ephemeral-static ECDH), so every file has its own secret and
    the agency needs no secret of its own;
  * HKDF-SHA256 over the shared secret, bound to both public keys, gives a
    32-byte AES-256-GCM key used for this file only;
  * the plaintext is cut into chunks, each sealed separately (the "STREAM"
    construction): the 12-byte nonce is the chunk counter (11 bytes) and a
    final-chunk flag (1 byte), and the file header is associated data of every
    chunk. Reordering, dropping or duplicating chunks, cutting the file at a
    chunk boundary or appending anything all fail authentication. Memory use
    is one chunk, so a 2 GB extract is fine.

File layout: header = MAGIC "LHX1" | chunk size (4 bytes, big-endian) |
hub key id (8 bytes) | ephemeral public key (32 bytes); then frames of
``chunk size + 16`` bytes (the last one shorter), each ciphertext + GCM tag.

This module imports only the standard library and ``cryptography`` so that it
is cheap to run on an agency workstation (and can be copied there alone).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import stat
import struct
import sys
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"LHX1"
SUFFIX = ".lhx"
CHUNK = 1024 * 1024
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 4 + 8 + 32
MAX_CHUNK = 64 * 1024 * 1024  # a header claiming more is refused instead of allocating it
ENV_DROP_KEY_FILE = "LEADHUB_DROP_KEY_FILE"
INFO = b"leadhub/drop/v1"


class DropCryptError(Exception):
    """A key or an encrypted file cannot be used; the message never holds file content."""


class DecryptionError(DropCryptError):
    """The file is not an intact .lhx file for this hub key (corrupt, truncated, tampered, wrong key)."""


# --- keys --------------------------------------------------------------------------------------

def _raw(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: X25519PublicKey) -> bytes:
    """8-byte fingerprint of a hub public key, written in every file header."""
    return hashlib.sha256(b"leadhub/drop-key-id" + _raw(public_key)).digest()[:8]


def fingerprint(public_key: X25519PublicKey) -> str:
    """The key id in hex, to compare by phone or letter when handing the public key to an agency."""
    return key_id(public_key).hex()


def default_key_path(master_key_file: Path) -> Path:
    """The hub's private drop key: ``$LEADHUB_DROP_KEY_FILE``, else ``drop.key`` beside the master key.

    Kept in its own file (not derived from the master key) so it can be rotated
    without touching pseudonyms, and kept outside the data directory like the
    master key.
    """
    env = os.environ.get(ENV_DROP_KEY_FILE)
    return Path(env).expanduser().resolve() if env else Path(master_key_file).with_name("drop.key")


def public_path_for(private_path: Path) -> Path:
    return Path(private_path).with_name(Path(private_path).stem + ".pub")


def generate_hub_keypair(path: Path, public_path: Path | None = None) -> tuple[Path, Path]:
    """Create the hub's X25519 key pair: private key at ``path`` (mode 0600, never overwritten),
    public key as a small PEM file (default ``<stem>.pub`` beside it) to hand to agencies."""
    path = Path(path)
    public_path = Path(public_path) if public_path else public_path_for(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = X25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DropCryptError(f"drop key {path} already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    public = private.public_key()
    public_path.write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, public_path


def load_private_key(path: Path) -> X25519PrivateKey:
    """The hub's private drop key; refused if others can read it."""
    path = Path(path)
    if not path.exists():
        raise DropCryptError(f"no drop key at {path}; create one with 'leadhub keygen-drop' "
                             f"(or set {ENV_DROP_KEY_FILE})")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise DropCryptError(f"drop key {path} is readable by others (mode {mode:o}); run chmod 600")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError:
        raise DropCryptError(f"drop key {path} is not a PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise DropCryptError(f"drop key {path} is not an X25519 key")
    return key


def load_public_key(path: Path) -> X25519PublicKey:
    """The hub's public key as handed to an agency: PEM, or the 32 raw bytes in base64."""
    data = Path(path).read_bytes()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = X25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except ValueError:
        raise DropCryptError(f"{path} is not a LEAD Hub public key") from None
    if not isinstance(key, X25519PublicKey):
        raise DropCryptError(f"{path} is not an X25519 public key")
    return key


# --- the stream --------------------------------------------------------------------------------

def _file_key(shared: bytes, ephemeral: bytes, hub: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=INFO + ephemeral + hub).derive(shared))


def _nonce(counter: int, final: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def encrypt_for_hub(src: Path, dst: Path, public_key: X25519PublicKey, chunk_size: int = CHUNK) -> None:
    """Encrypt ``src`` to ``dst`` for the holder of the hub's private key.

    Written as ``dst.part`` and renamed when complete, so a watched folder never
    sees half a file.
    """
    if not 0 < chunk_size <= MAX_CHUNK:
        raise ValueError("chunk size out of range")
    ephemeral = X25519PrivateKey.generate()
    eph_raw, hub_raw = _raw(ephemeral.public_key()), _raw(public_key)
    aead = _file_key(ephemeral.exchange(public_key), eph_raw, hub_raw)
    header = MAGIC + struct.pack(">I", chunk_size) + key_id(public_key) + eph_raw
    dst = Path(dst)
    part = dst.with_name(dst.name + ".part")
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            fout.write(header)
            counter = 0
            current = fin.read(chunk_size)
            while True:
                following = fin.read(chunk_size)
                final = not following
                fout.write(aead.encrypt(_nonce(counter, final), current, header))
                if final:
                    break
                counter, current = counter + 1, following
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(part, dst)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def decrypt_from_agency(src: Path | BinaryIO, dst: Path, private_key: X25519PrivateKey) -> int:
    """Decrypt an ``.lhx`` file (a path, or a binary file already open) to ``dst``.

    Returns the plaintext size. An open file is read from its start, so the
    caller can decrypt exactly the file it opened and checked.

    Raises DecryptionError when the file is not intact (then ``dst`` is
    removed: no unauthenticated byte is left behind for anyone to read).
    """
    dst = Path(dst)
    try:
        if hasattr(src, "read"):
            src.seek(0)
            return _decrypt(src, dst, private_key)
        with open(src, "rb") as fin:
            return _decrypt(fin, dst, private_key)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def _decrypt(fin: BinaryIO, dst: Path, private_key: X25519PrivateKey) -> int:
    hub_public = private_key.public_key()
    header = fin.read(HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise DecryptionError("not a LEAD Hub encrypted file (.lhx header missing)")
    (chunk_size,) = struct.unpack(">I", header[4:8])
    if not 0 < chunk_size <= MAX_CHUNK:
        raise DecryptionError("header declares an impossible chunk size")
    if header[8:16] != key_id(hub_public):
        raise DecryptionError(f"encrypted to another key (id {header[8:16].hex()}); "
                              f"this hub's key id is {fingerprint(hub_public)}")
    eph_raw = header[16:48]
    try:
        ephemeral = X25519PublicKey.from_public_bytes(eph_raw)
        shared = private_key.exchange(ephemeral)
    except ValueError:
        raise DecryptionError("header holds an invalid ephemeral key") from None
    aead = _file_key(shared, eph_raw, _raw(hub_public))
    frame = chunk_size + TAG_BYTES
    written, counter = 0, 0
    with open(dst, "wb") as fout:
        os.fchmod(fout.fileno(), 0o600)
        current = fin.read(frame)
        if not current:
            raise DecryptionError("file is truncated: no encrypted content after the header")
        while True:
            following = fin.read(frame)
            final = not following
            try:
                plain = aead.decrypt(_nonce(counter, final), current, header)
            except InvalidTag:
                raise DecryptionError(f"chunk {counter + 1} failed authentication "
                                      "(corrupt, truncated, tampered or wrong key)") from None
            fout.write(plain)
            written += len(plain)
            if final:
                break
            counter, current = counter + 1, following
        fout.flush()
        os.fsync(fout.fileno())
    return written


# --- the agency command ------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``leadhub-encrypt PUBLIC_KEY FILE``: write ``FILE.lhx`` next to FILE, then upload that."""
    p = argparse.ArgumentParser(
        prog="leadhub-encrypt",
        description="Encrypt an extract for the LEAD Hub before uploading it. Writes FILE.lhx; "
                    "upload that file, keeping the agreed file name (plus .lhx).")
    p.add_argument("public_key", type=Path, help="the hub's public key file you were given")
    p.add_argument("file", type=Path, help="the extract to encrypt, e.g. jail_bookings_20241231.csv")
    p.add_argument("-o", "--output", type=Path, help="where to write (default: FILE.lhx)")
    args = p.parse_args(argv)
    out = args.output or args.file.with_name(args.file.name + SUFFIX)
    try:
        public = load_public_key(args.public_key)
        if not args.file.is_file():
            raise DropCryptError(f"{args.file} is not a file")
        if out.exists():
            raise DropCryptError(f"{out} already exists; remove it first")
        encrypt_for_hub(args.file, out, public)
    except (DropCryptError, OSError) as e:
        print(f"leadhub-encrypt: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} for hub key {fingerprint(public)}; upload it, then delete the plaintext copy "
          "if your agency's rules say so")
    return 0


if __name__ == "__main__":
    sys.exit(main())
