"""Encrypted archive of every original file, AES-256-GCM, streamed.

Layout of an archive file: MAGIC (4 bytes) | key id (12 ascii) | nonce (12) |
ciphertext | tag (16). The header is authenticated as associated data, so a
file cannot be relabelled with another key id. The archive key is an HKDF
subkey of the master secret, separate from the pseudonymization key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from leadhub.core.readers import Source, reopen
from leadhub.core.errors import LeadHubError
from leadhub.core.files import PRIVATE_DIR_MODE, atomic_write
from leadhub.core.keys import MasterKey

MAGIC = b"LHA1"
CHUNK = 1024 * 1024
TAG_BYTES = 16


def encrypt_file(src: Source, dst: Path, key: MasterKey) -> str:
    """Encrypt src to dst durably: written to a temporary name, fsynced, renamed.

    ``src`` is a path or an open descriptor (read from its start). Returns the
    SHA-256 of the plaintext actually archived, so a caller can prove the
    archive holds the bytes it hashed before.
    """
    dst.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    nonce = os.urandom(12)
    header = MAGIC + key.key_id.encode("ascii") + nonce
    enc = Cipher(algorithms.AES(key.subkey("archive")), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(header)
    digest = hashlib.sha256()
    with reopen(src, "rb") as fin, atomic_write(dst) as fout:
        fout.write(header)
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(enc.update(chunk))
        fout.write(enc.finalize())
        fout.write(enc.tag)
    return digest.hexdigest()


def decrypt_to(src: Path, out: BinaryIO, key: MasterKey) -> None:
    """Decrypt an archive file into a binary stream; fails loudly on any tampering."""
    size = src.stat().st_size
    head_len = len(MAGIC) + 12 + 12
    with open(src, "rb") as f:
        header = f.read(head_len)
        if len(header) != head_len or not header.startswith(MAGIC):
            raise LeadHubError(f"{src}: not a LEAD Hub archive file")
        key_id = header[4:16].decode("ascii")
        if key_id != key.key_id:
            raise LeadHubError(f"{src}: archived under key {key_id}, current key is {key.key_id}")
        f.seek(size - TAG_BYTES)
        tag = f.read(TAG_BYTES)
        f.seek(head_len)
        dec = Cipher(algorithms.AES(key.subkey("archive")), modes.GCM(header[16:], tag)).decryptor()
        dec.authenticate_additional_data(header)
        remaining = size - head_len - TAG_BYTES
        while remaining > 0:
            chunk = f.read(min(CHUNK, remaining))
            remaining -= len(chunk)
            out.write(dec.update(chunk))
        try:
            dec.finalize()
        except Exception:
            raise LeadHubError(f"{src}: archive file failed authentication (corrupt or tampered)") from None
