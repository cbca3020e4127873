"""The master secret and the purpose-specific keys derived from it.

One 32-byte master secret lives outside the repository and the warehouse:
in a key file readable by its owner only, in the ``LEADHUB_MASTER_KEY``
environment variable (for containers that receive secrets that way), or in a
vault reached through a provider named by ``LEADHUB_KEY_PROVIDER``
(``package.module:function``, returning the hex secret). Each use gets its own
subkey through HKDF-SHA256 so that, for example, the archive key reveals
nothing about the pseudonym key. The key id is a public fingerprint stored
beside every pseudonym, so a rotation can tell old tokens from new ones.

A key made by ``leadhub demo`` carries a header line marking it as a demo key.
Every command refuses such a key unless ``LEADHUB_DEMO=1`` (which the demo sets
for itself), so a demo installation cannot silently start taking real data.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from leadhub.core.errors import KeyError_
from leadhub.core.files import PRIVATE_DIR_MODE, open_private

KEY_BYTES = 32
# "publication": pseudonyms of record numbers in the analysts' snapshot, unrelated to the
# warehouse's tokens, so neither tokens nor clear agency numbers join to the snapshot.
PURPOSES = ("pseudonym", "archive", "similarity", "crosswalk", "publication", "seal")
ENV_MASTER_KEY = "LEADHUB_MASTER_KEY"
ENV_KEY_PROVIDER = "LEADHUB_KEY_PROVIDER"
ENV_DEMO = "LEADHUB_DEMO"
DEMO_HEADER = "# leadhub demo key: synthetic data only, refused unless LEADHUB_DEMO=1"


def demo_mode() -> bool:
    return os.environ.get(ENV_DEMO) == "1"


def create_key_file(path: Path, demo: bool = False) -> Path:
    """Write a fresh random master key with 0600 permissions; never overwrite one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    try:
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        raise KeyError_(f"key file {path} already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "w") as f:
        if demo:
            f.write(DEMO_HEADER + "\n")
        f.write(os.urandom(KEY_BYTES).hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def _parse_secret(text: str, where: str) -> tuple[bytes, bool]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    demo = DEMO_HEADER in lines  # wherever it stands: a comment added above it must not make it real
    body = [ln for ln in lines if not ln.startswith("#")]
    try:
        secret = bytes.fromhex(body[0]) if len(body) == 1 else b""
    except ValueError:
        raise KeyError_(f"{where} is not a hex-encoded key") from None
    if len(secret) != KEY_BYTES:
        raise KeyError_(f"{where} does not hold one {KEY_BYTES}-byte hex key")
    return secret, demo


class KeyProvider(Protocol):
    """Where the master secret comes from; returns (secret, is_demo_key)."""

    def fetch(self) -> tuple[bytes, bool]: ...


@dataclass(frozen=True)
class FileKeyProvider:
    path: Path

    def fetch(self) -> tuple[bytes, bool]:
        path = Path(self.path)
        if not path.exists():
            raise KeyError_(
                f"no key file at {path}; create one with 'leadhub keygen' "
                f"(or set LEADHUB_KEY_FILE or {ENV_MASTER_KEY}) — the hub will not run without a key")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyError_(f"key file {path} is readable by others (mode {mode:o}); run chmod 600")
        return _parse_secret(path.read_text(), f"key file {path}")


@dataclass(frozen=True)
class EnvKeyProvider:
    variable: str = ENV_MASTER_KEY

    def fetch(self) -> tuple[bytes, bool]:
        return _parse_secret(os.environ.get(self.variable, ""), f"environment variable {self.variable}")


@dataclass(frozen=True)
class PluginKeyProvider:
    """``module:function`` — the function returns the hex secret (e.g. read from a vault)."""
    target: str

    def fetch(self) -> tuple[bytes, bool]:
        module, _, name = self.target.partition(":")
        try:
            fn: Callable[[], str] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            raise KeyError_(f"key provider {self.target!r} cannot be imported") from None
        return _parse_secret(fn(), f"key provider {self.target}")


def provider_for(path: Path | None) -> KeyProvider:
    """Vault plugin if configured, else the environment variable if set, else the key file."""
    if os.environ.get(ENV_KEY_PROVIDER):
        return PluginKeyProvider(os.environ[ENV_KEY_PROVIDER])
    if os.environ.get(ENV_MASTER_KEY):
        return EnvKeyProvider()
    if path is None:
        raise KeyError_(f"no master key: set LEADHUB_KEY_FILE, {ENV_MASTER_KEY} or {ENV_KEY_PROVIDER}")
    return FileKeyProvider(Path(path))


@dataclass(frozen=True)
class MasterKey:
    secret: bytes = field(repr=False)
    demo: bool = False

    @classmethod
    def load(cls, path: Path | None = None, allow_demo: bool | None = None) -> "MasterKey":
        """The installation's key from its provider; a demo key only in demo mode."""
        secret, demo = provider_for(path).fetch()
        allow = demo_mode() if allow_demo is None else allow_demo
        if demo and not allow:
            raise KeyError_("this installation holds a demo key (made by 'leadhub demo'); it is refused "
                            "outside demo mode: create a real key with 'leadhub keygen' in a new key "
                            "location, or set LEADHUB_DEMO=1 to keep playing with synthetic data")
        return cls(secret, demo)

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
    """For the demo only: create a key marked as a demo key on first run."""
    if not os.environ.get(ENV_MASTER_KEY) and not os.environ.get(ENV_KEY_PROVIDER) and not Path(path).exists():
        create_key_file(path, demo=True)
    return MasterKey.load(path, allow_demo=True)
