"""Pull sources: agency systems the hub fetches from, declared as data.

Some agencies cannot drop files; the hub pulls instead, from a database view
(``kind: sql``, see ``connectors.pull_sql``) or an SFTP server (``kind: sftp``,
see ``connectors.pull_sftp``). Each source is one YAML file in this folder, or
in the folder named by ``LEADHUB_SOURCES_DIR`` so a deployment keeps its
declarations outside the package. The file name (without ``.yaml``) is the
source name.

A pull never loads anything itself: it writes what it fetched as a file into
the agency inbox, exactly as a clerk would, so the one intake (hash, encrypted
archive, ledger, validation, load) applies to every delivery. This module
holds what both connectors share: reading declarations, the per-source state
file, and the atomic delivery of a file into an inbox.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from connectors.archive import fsync_path
from leadhub.errors import LeadHubError
from leadhub.settings import Settings

SOURCES_DIR = Path(__file__).parent
ENV_SOURCES_DIR = "LEADHUB_SOURCES_DIR"
KINDS = ("sql", "sftp")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class PullError(LeadHubError):
    """A pull failed. The message names the source and never holds a row value."""


@dataclass(frozen=True)
class Source:
    """One declared source: the common fields, plus the raw kind-specific ones."""
    name: str
    kind: str
    agency: str
    enabled: bool
    options: dict = field(compare=False)
    path: Path | None = field(default=None, compare=False)

    def checked_options(self, known: set[str]) -> tuple[dict, str]:
        """(options, where-to-report) for a connector, refusing fields it does not know."""
        where = f"source {self.path or self.name}"
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise PullError(f"{where}: unknown field(s) {', '.join(unknown)}")
        return self.options, where


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


def load_sources(directory: Path | None = None) -> dict[str, Source]:
    """Every declaration in the folder, checked now so a typo fails before any pull."""
    from connectors import pull_sftp, pull_sql
    from connectors.contracts import agencies

    directory = Path(directory) if directory else sources_dir()
    known_agencies = agencies()
    sources = {}
    for path in sorted(directory.glob("*.yaml")):
        where = f"source {path}"
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            raise PullError(f"{where}: not valid YAML") from None
        if not isinstance(raw, dict):
            raise PullError(f"{where}: expected a mapping of settings")
        kind, agency = raw.get("kind"), raw.get("agency")
        if kind not in KINDS:
            raise PullError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if agency not in known_agencies:
            raise PullError(f"{where}: agency must be one of {', '.join(known_agencies)}")
        source = Source(name=path.stem, kind=kind, agency=agency, enabled=bool(raw.get("enabled", True)),
                        options=raw, path=path)
        # Parse the kind-specific part now: a broken declaration is reported up front.
        (pull_sql.SqlSource if kind == "sql" else pull_sftp.SftpSource).from_source(source)
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
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


# --- delivery into an inbox ------------------------------------------------

def open_part(path: Path):
    """Create a part file readable by the hub only: it holds raw identifiers."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def deliver(part: Path, final: Path) -> None:
    """Rename a complete, fsynced part file to its real name; the intake may take it from then on.

    Never over an earlier delivery of the same name that the intake has not taken yet: that
    file would vanish without a ledger row. The same bytes again are simply dropped.
    """
    if os.path.lexists(final):
        from connectors.inbox import file_sha256

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


# --- running pulls ----------------------------------------------------------

def pull_source(settings: Settings, source: Source) -> PullResult:
    """Run one source's connector; raises PullError on failure."""
    if source.kind == "sql":
        from connectors.pull_sql import pull_sql
        return pull_sql(settings, source)
    from connectors.pull_sftp import pull_sftp
    return pull_sftp(settings, source)


def pull_sources(settings: Settings, name: str | None = None,
                 directory: Path | None = None) -> list[PullResult]:
    """Pull the named source, or every enabled one.

    One source failing does not stop the others: its result carries the
    one-line reason in ``error``. The inbox files each pull wrote are then
    taken by the ordinary intake (``leadhub ingest``).
    """
    sources = load_sources(directory)
    if name is not None:
        if name not in sources:
            raise PullError(f"no pull source named {name} in {directory or sources_dir()}")
        if not sources[name].enabled:
            raise PullError(f"source {name} is disabled (enabled: false in {sources[name].path})")
        chosen = [sources[name]]
    else:
        chosen = [s for s in sources.values() if s.enabled]
    results = []
    for source in chosen:
        try:
            results.append(pull_source(settings, source))
        except PullError as e:
            results.append(PullResult(source.name, source.kind, source.agency, error=str(e)))
    return results
