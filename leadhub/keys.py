"""The master secret and the purpose-specific keys derived from it.

One 32-byte master secret lives in a key file outside the repository and the
warehouse, readable by its owner only. Each use gets its own subkey through
HKDF-SHA256 so that, for example, the archive key reveals nothing about the
pseudonym key. The key id is a public fingerprint stored beside every
pseudonym, so a rotation can tell old tokens from new ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from leadhub.errors import KeyError_

KEY_BYTES = 32
PURPOSES = ("pseudonym", "archive", "similarity", "crosswalk")


def create_key_file(path: Path) -> Path:
    """Write a fresh random master key with 0600 permissions; never overwrite one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyError_(f"key file {path} already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(KEY_BYTES).hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


@dataclass(frozen=True)
class MasterKey:
    secret: bytes = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> "MasterKey":
        path = Path(path)
        if not path.exists():
            raise KeyError_(
                f"no key file at {path}; create one with 'leadhub keygen' "
                "(or set LEADHUB_KEY_FILE) — the hub will not run without a key")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyError_(f"key file {path} is readable by others (mode {mode:o}); run chmod 600")
        try:
            secret = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise KeyError_(f"key file {path} is not a hex-encoded key") from None
        if len(secret) != KEY_BYTES:
            raise KeyError_(f"key file {path} holds {len(secret)} bytes; expected {KEY_BYTES}")
        return cls(secret)

    @property
    def key_id(self) -> str:
        """Public fingerprint: safe to store, useless for recomputing tokens."""
        return hmac.new(self.secret, b"leadhub/key-id", hashlib.sha256).hexdigest()[:12]

    def subkey(self, purpose: str) -> bytes:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown key purpose {purpose!r}")
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                    info=b"leadhub/" + purpose.encode()).derive(self.secret)


def load_or_create(path: Path) -> MasterKey:
    """For the demo only: create the key on first run, as the README promises."""
    if not Path(path).exists():
        create_key_file(path)
    return MasterKey.load(path)
