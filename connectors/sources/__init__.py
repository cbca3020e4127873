"""Pull sources: agency systems the hub fetches from, declared as data.

Some agencies cannot drop files; the hub pulls instead, from a database view
(``kind: sql``, see ``connectors.sources.sql``) or an SFTP server (``kind: sftp``,
see ``connectors.sources.sftp``). Each source is one YAML file in this folder, or
in the folder named by ``LEADHUB_SOURCES_DIR`` so a deployment keeps its
declarations outside the package. The file name (without ``.yaml``) is the
source name.

A pull never loads anything itself: it writes what it fetched as a file into
the agency inbox, exactly as a clerk would, so the one intake (hash, encrypted
archive, ledger, validation, load) applies to every delivery. This module
holds what both connectors and the Airflow pull DAGs share: the declaration
models (one parser for everyone), the per-source state file, and the atomic
delivery of a file into an inbox. Running pulls is ``connectors.sources.run``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from leadhub.core.declared import Declared, ValidationError, declaration_error, read_yaml
from leadhub.core.errors import LeadHubError
from leadhub.core.files import atomic_write, fsync_path, open_private
from leadhub.core.settings import Settings

SOURCES_DIR = Path(__file__).parent
ENV_SOURCES_DIR = "LEADHUB_SOURCES_DIR"
MARK_TYPES = ("timestamp", "integer")
DEFAULT_BATCH_SIZE = 50_000
DEFAULT_SCHEDULE = "@hourly"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class PullError(LeadHubError):
    """A pull failed. The message names the source and never holds a row value."""


class _Declaration(Declared):
    """What every source declares. ``schedule`` is read by the Airflow pull DAGs only."""
    kind: Literal["sql", "sftp"]
    agency: str
    enabled: bool = True
    description: str = ""
    schedule: str = DEFAULT_SCHEDULE


class HighWaterMark(Declared):
    column: str
    type: Literal["timestamp", "integer"]


class SqlDeclaration(_Declaration):
    """``kind: sql``; the rules that need the extract's contract are in ``connectors.sources.sql``."""
    kind: Literal["sql"]
    extract: str
    url_env: str                     # names the variable holding the SQLAlchemy URL
    table: str | None = None
    query: str | None = None
    columns: dict[str, str] | None = None    # contract column -> source column, where they differ
    high_water_mark: HighWaterMark | None = None
    key: list[str] | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


class SftpDeclaration(_Declaration):
    kind: Literal["sftp"]
    host: str
    port: int = 22
    user: str
    private_key_env: str             # names the variable holding the key file's path
    passphrase_env: str | None = None
    known_hosts: str
    remote_dir: str
    delete_after_fetch: bool = False
    timeout_seconds: float = 30

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, raw):
        if isinstance(raw, dict) and ("password" in raw or "private_key" in raw):
            raise ValueError("secrets never go in this file; use private_key_env")
        return raw


DECLARATIONS = {"sql": SqlDeclaration, "sftp": SftpDeclaration}
KINDS = tuple(DECLARATIONS)


@dataclass(frozen=True)
class Source:
    """One declared source: its name (the file name) and its validated declaration."""
    name: str
    declaration: SqlDeclaration | SftpDeclaration = field(compare=False)
    path: Path | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return self.declaration.kind

    @property
    def agency(self) -> str:
        return self.declaration.agency

    @property
    def enabled(self) -> bool:
        return self.declaration.enabled

    @property
    def where(self) -> str:
        """How error messages name the source."""
        return f"source {self.path or self.name}"


@dataclass
class PullResult:
    """What one pull did: safe for logs and Airflow XComs (no identifiers)."""
    source: str
    kind: str
    agency: str
    files: list[str] = field(default_factory=list)
    rows: int | None = None       # sql: rows written into inbox files
    mark: str | None = None       # sql: the high-water mark after the pull (none for full-history extracts)
    skipped: int = 0              # sftp: remote entries left alone (unknown, in progress, seen)
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for the CLI."""
        if self.error:
            return f"{self.source}: FAILED — {self.error}"
        if self.kind == "sql":
            return (f"{self.source}: {self.rows} row(s) in {len(self.files)} file(s) to inbox/{self.agency}"
                    + (f", mark {self.mark}" if self.mark else ""))
        return (f"{self.source}: {len(self.files)} file(s) fetched to inbox/{self.agency}, "
                f"{self.skipped} remote entr{'y' if self.skipped == 1 else 'ies'} skipped")


def sources_dir() -> Path:
    return Path(os.environ.get(ENV_SOURCES_DIR) or SOURCES_DIR).expanduser()


def read_source(path: Path) -> Source:
    """One declaration file, checked for its keys and value types; PullError naming file and key."""
    where = f"source {path}"
    raw = read_yaml(path, PullError, where)
    if not isinstance(raw, dict):
        raise PullError(f"{where}: expected a mapping of settings")
    if raw.get("kind") not in KINDS:
        raise PullError(f"{where}: kind must be one of {', '.join(KINDS)}")
    model = DECLARATIONS[raw["kind"]]
    try:
        return Source(name=path.stem, declaration=model.model_validate(raw), path=path)
    except ValidationError as e:
        raise PullError(declaration_error(where, model, e)) from None


def load_sources(directory: Path | None = None) -> dict[str, Source]:
    """Every declaration in the folder, checked now so a typo fails before any pull.

    The DAG processor uses this too: it needs no database driver or SSH library.
    """
    from leadhub.core.contracts import agencies

    directory = Path(directory) if directory else sources_dir()
    known_agencies = agencies()
    sources = {}
    for path in sorted(directory.glob("*.yaml")):
        source = read_source(path)
        if source.agency not in known_agencies:
            raise PullError(f"{source.where}: agency must be one of {', '.join(known_agencies)}")
        sources[source.name] = source
    return sources


# --- state ----------------------------------------------------------------

def state_path(settings: Settings, source: str) -> Path:
    return settings.data_dir / "state" / f"{source}.json"


def load_state(settings: Settings, source: str) -> dict:
    path = state_path(settings, source)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise PullError(f"source {source}: state file {path} is unreadable; "
                        "restore it from backup or remove it to pull everything again") from None


def save_state(settings: Settings, source: str, state: dict) -> None:
    """Write the state atomically: a crash leaves either the old or the new state, never half."""
    path = state_path(settings, source)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {**state, "source": source, "updated_at": datetime.now(timezone.utc).isoformat()}
    with atomic_write(path, text=True, mode=None, tmp=path.with_name(path.name + ".part")) as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")


# --- delivery into an inbox ------------------------------------------------

def open_part(path: Path):
    """Create a part file readable by the hub only: it holds raw identifiers."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.fdopen(open_private(path), "wb")


def deliver(part: Path, final: Path) -> None:
    """Rename a complete, fsynced part file to its real name; the intake may take it from then on.

    Never over an earlier delivery of the same name that the intake has not taken yet: that
    file would vanish without a ledger row. The same bytes again are simply dropped.
    """
    if os.path.lexists(final):
        from connectors.inbox_files import file_sha256

        same = final.is_file() and not final.is_symlink() and file_sha256(final) == file_sha256(part)
        part.unlink()
        if same:
            return
        raise PullError(f"{final.name} is still waiting in the inbox from an earlier pull; "
                        "run the intake first, then pull again")
    os.link(part, final)  # fails rather than replaces if the name appeared in between
    part.unlink()
    fsync_path(final.parent)


def name_part(value: str) -> str:
    """A value made safe for a file name: letters, digits, '.', '_' and '-' only."""
    return _UNSAFE.sub("-", value)
