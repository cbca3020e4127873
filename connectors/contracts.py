"""Extract contracts: each agency extract declared once, as data.

A contract (one YAML file under ``connectors/contracts/<agency>/``) is the
single source of truth for parsing, pseudonymization, validation suites and
the data dictionary. Adding an agency or an extract means adding a file here.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

CONTRACTS_DIR = Path(__file__).parent / "contracts"

TYPES = {"string", "integer", "date", "timestamp", "decimal"}
IDENTIFIER_ROLES = {"first_name", "middle_name", "last_name", "dob", "ssn",
                    "agency_person_id", "address", "phone"}
HISTORY_KINDS = {"incremental", "full"}
# csv/tsv: delimited text; xlsx: one-sheet Excel workbook; jsonl: one JSON object per line.
FORMAT_TYPES = {"csv", "tsv", "xlsx", "jsonl"}
# Agency, extract and column names become folder names, table names and SQL column names.
PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class ContractError(ValueError):
    """A contract file is malformed."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    nullable: bool = True
    description: str = ""
    identifier: str | None = None
    formats: tuple[str, ...] = ()
    known_values: tuple[str, ...] | None = None
    reference: str | None = None
    null_markers: tuple[str, ...] = ("", "NULL", "N/A")


@dataclass(frozen=True)
class FileFormat:
    """How the bytes of a delivery are laid out.

    ``header: false`` means the file has no header row and its columns come in
    the contract's declared order. ``tsv`` defaults the delimiter to a tab.
    ``delimiter``, ``quotechar`` and ``encoding`` apply to csv/tsv; ``encoding``
    also to jsonl; an xlsx workbook carries its own encoding.
    """
    type: str = "csv"
    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"
    header: bool = True

    @classmethod
    def from_raw(cls, raw: dict) -> "FileFormat":
        raw = dict(raw)
        if raw.get("type") == "tsv" and "delimiter" not in raw:
            raw["delimiter"] = "\t"
        return cls(**raw)


@dataclass(frozen=True)
class Contract:
    agency: str
    extract: str
    description: str
    file_pattern: str
    format: FileFormat
    history: str
    cadence_hours: int
    stale_after_hours: int
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    age_at: str | None = None
    part2: bool = False
    source: Path | None = field(default=None, compare=False)
    # Optional per-extract thresholds of the history-aware checks (expectations.history).
    validation: dict = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """Qualified name used for tables, suites and DAG tasks: ``agency_extract``."""
        return f"{self.agency}_{self.extract}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def identifier_columns(self) -> list[Column]:
        return [c for c in self.columns if c.identifier]

    @property
    def plain_columns(self) -> list[Column]:
        """Columns that reach the warehouse as they are."""
        return [c for c in self.columns if not c.identifier]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def role(self, role: str) -> Column | None:
        return next((c for c in self.columns if c.identifier == role), None)

    def matches(self, filename: str) -> bool:
        return fnmatch.fnmatchcase(filename, self.file_pattern)


def _parse(path: Path) -> Contract:
    raw = yaml.safe_load(path.read_text())
    where = f"contract {path}"
    try:
        columns = tuple(
            Column(
                name=c["name"], type=c.get("type", "string"), nullable=c.get("nullable", True),
                description=c.get("description", ""), identifier=c.get("identifier"),
                formats=tuple(c.get("formats", ())),
                known_values=tuple(map(str, c["known_values"])) if "known_values" in c else None,
                reference=c.get("reference"),
                null_markers=tuple(c.get("null_markers", ("", "NULL", "N/A"))),
            )
            for c in raw["columns"]
        )
        contract = Contract(
            agency=raw["agency"], extract=raw["extract"], description=raw.get("description", ""),
            file_pattern=raw["file_pattern"], format=FileFormat.from_raw(raw.get("format", {})),
            history=raw.get("history", "incremental"), cadence_hours=int(raw["cadence_hours"]),
            stale_after_hours=int(raw["stale_after_hours"]),
            primary_key=tuple(raw["primary_key"]), columns=columns,
            age_at=raw.get("age_at"), part2=bool(raw.get("part2", False)), source=path,
            validation=dict(raw.get("validation") or {}),
        )
    except (KeyError, TypeError) as e:
        raise ContractError(f"{where}: missing or malformed field {e}") from None
    _check(contract, where)
    return contract


def _check(c: Contract, where: str) -> None:
    names = c.column_names
    for name in (c.agency, c.extract, *names):
        if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
            raise ContractError(f"{where}: {name!r} is not a plain name (lower-case letters, digits, '_')")
    if len(set(names)) != len(names):
        raise ContractError(f"{where}: duplicate column names")
    for col in c.columns:
        if col.type not in TYPES:
            raise ContractError(f"{where}: column {col.name} has unknown type {col.type}")
        if col.identifier and col.identifier not in IDENTIFIER_ROLES:
            raise ContractError(f"{where}: column {col.name} has unknown identifier role {col.identifier}")
        if col.type in ("date", "timestamp") and not col.formats:
            raise ContractError(f"{where}: date column {col.name} declares no formats")
    for k in c.primary_key:
        if k not in names:
            raise ContractError(f"{where}: primary key column {k} is not a column")
        if c.column(k).identifier not in (None, "agency_person_id"):
            raise ContractError(f"{where}: primary key column {k} is a personal identifier")
    if c.format.type not in FORMAT_TYPES:
        raise ContractError(f"{where}: format type must be one of {sorted(FORMAT_TYPES)}")
    if c.format.type == "jsonl" and not c.format.header:
        raise ContractError(f"{where}: jsonl objects name their columns; header: false does not apply")
    if c.history not in HISTORY_KINDS:
        raise ContractError(f"{where}: history must be one of {sorted(HISTORY_KINDS)}")
    if c.age_at and (c.age_at not in names or not c.role("dob")):
        raise ContractError(f"{where}: age_at needs a date column and a dob column")
    if c.role("agency_person_id") is None:
        raise ContractError(f"{where}: every extract must name its agency person id column")


@cache
def load_contracts(directory: Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """All contracts keyed by qualified name, in a stable order."""
    contracts = {}
    for path in sorted(Path(directory).glob("*/*.yaml")):
        c = _parse(path)
        if c.name in contracts:
            raise ContractError(f"contract {path}: {c.name} is declared twice")
        contracts[c.name] = c
    return contracts


def agencies(directory: Path = CONTRACTS_DIR) -> list[str]:
    return sorted({c.agency for c in load_contracts(directory).values()})


def contract_for_file(agency: str, filename: str, directory: Path = CONTRACTS_DIR) -> Contract | None:
    """The contract a dropped file belongs to, or None for an unknown file name."""
    hits = [c for c in load_contracts(directory).values() if c.agency == agency and c.matches(filename)]
    return hits[0] if len(hits) == 1 else None
