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

from leadhub.core.declared import Declared, ValidationError, declaration_error, read_yaml

# The declarations are data that belong with the intake they drive (connectors/contracts/<agency>/),
# read here by path: the core reads them without importing the connectors stage.
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "connectors" / "contracts"

TYPES = {"string", "integer", "date", "timestamp", "decimal"}
IDENTIFIER_ROLES = {"first_name", "middle_name", "last_name", "dob", "ssn",
                    "agency_person_id", "address", "phone"}
HISTORY_KINDS = {"incremental", "full"}
# How much of a column the analysts' snapshot may show (transforms/disclosure.py applies it):
#   identifier        never leaves staging as clear text (needs an identifier role: it is tokenized)
#   quasi_identifier  record numbers, officer ids: a keyed pseudonym of its own key in the snapshot;
#                     dates and times: only as precise as ``date_precision``
#   plain             published as it is
DISCLOSURE_LEVELS = ("identifier", "quasi_identifier", "plain")
# Coarsest first. "exact" keeps a timestamp's time of day; "day" and coarser publish a date
# (the first day of the year or month).
DATE_PRECISIONS = ("year", "month", "day", "exact")
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
    disclosure: str = "plain"
    date_precision: str | None = None

    @property
    def is_date(self) -> bool:
        return self.type in ("date", "timestamp")


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

    @property
    def event_column(self) -> Column | None:
        """The date a row is about, for the period an extract covers: the ``age_at`` column,
        else the first required date or time column, else the first one."""
        dates = [c for c in self.columns if c.is_date and c.disclosure != "identifier"]
        if self.age_at:
            return self.column(self.age_at)
        return next((c for c in dates if not c.nullable), dates[0] if dates else None)

    def role(self, role: str) -> Column | None:
        return next((c for c in self.columns if c.identifier == role), None)

    def matches(self, filename: str) -> bool:
        return fnmatch.fnmatchcase(filename, self.file_pattern)


class _ColumnDecl(Declared):
    """One column as written in a contract file; ``Column`` is built from it."""
    name: str
    type: str = "string"
    nullable: bool = True
    description: str = ""
    identifier: str | None = None
    formats: list[str] = []
    known_values: list[str | int | float | bool] | None = None
    reference: str | None = None
    null_markers: list[str | None] = ["", "NULL", "N/A"]
    disclosure: str | None = None
    date_precision: str | None = None


class _FormatDecl(Declared):
    type: str = "csv"
    delimiter: str | None = None
    quotechar: str = '"'
    encoding: str = "utf-8"
    header: bool = True


class _ContractDecl(Declared):
    """A contract file as written; types and keys only, the rules are in ``_check``."""
    agency: str
    extract: str
    description: str = ""
    file_pattern: str
    format: _FormatDecl = _FormatDecl()
    history: str = "incremental"
    cadence_hours: int
    stale_after_hours: int
    primary_key: list[str]
    age_at: str | None = None
    part2: bool = False
    # Thresholds of the history-aware checks; expectations.history knows their names.
    validation: dict[str, object] | None = None
    columns: list[_ColumnDecl]


def _parse(path: Path) -> Contract:
    where = f"contract {path}"
    raw = read_yaml(path, ContractError, where)
    try:
        decl = _ContractDecl.model_validate(raw)
    except ValidationError as e:
        raise ContractError(declaration_error(where, _ContractDecl, e)) from None
    columns = tuple(
        Column(
            name=c.name, type=c.type, nullable=c.nullable, description=c.description,
            identifier=c.identifier, formats=tuple(c.formats),
            known_values=tuple(map(str, c.known_values)) if c.known_values is not None else None,
            reference=c.reference, null_markers=tuple(c.null_markers),
            **_disclosure(c.model_dump(exclude_unset=True), decl.primary_key),
        )
        for c in decl.columns
    )
    fmt = decl.format.model_dump(exclude_unset=True, exclude_none=True)
    contract = Contract(
        agency=decl.agency, extract=decl.extract, description=decl.description,
        file_pattern=decl.file_pattern, format=FileFormat.from_raw(fmt),
        history=decl.history, cadence_hours=decl.cadence_hours,
        stale_after_hours=decl.stale_after_hours,
        primary_key=tuple(decl.primary_key), columns=columns,
        age_at=decl.age_at, part2=decl.part2, source=path,
        validation=dict(decl.validation or {}),
    )
    _check(contract, where)
    return contract


def _disclosure(raw: dict, primary_key) -> dict:
    """The column's disclosure level and date precision, as declared or by default.

    Defaults, for contracts that do not declare them: a column with an identifier
    role is an identifier; a text column of the primary key (a record number) and
    every date or time column are quasi-identifiers; anything else is plain. A
    quasi-identifying date is published to the year: in a county-sized population
    a month, with one more attribute, already singles out many people
    (tests/transforms/test_reidentify.py); a contract declares finer on purpose.
    """
    is_date = raw.get("type") in ("date", "timestamp")
    level = raw.get("disclosure")
    if level is None:
        if raw.get("identifier"):
            level = "identifier"
        elif is_date or (raw.get("name") in primary_key and raw.get("type", "string") == "string"):
            level = "quasi_identifier"
        else:
            level = "plain"
    precision = raw.get("date_precision")
    if precision is None and is_date and level != "identifier":
        precision = "year" if level == "quasi_identifier" else "exact"
    return {"disclosure": level, "date_precision": precision}


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
        if col.disclosure not in DISCLOSURE_LEVELS:
            raise ContractError(f"{where}: column {col.name} has disclosure {col.disclosure!r}; "
                                f"use one of {', '.join(DISCLOSURE_LEVELS)}")
        if bool(col.identifier) != (col.disclosure == "identifier"):
            # Only a column with a role is tokenized; any other reaches staging in the clear.
            raise ContractError(f"{where}: column {col.name} must have both an identifier role and "
                                f"disclosure identifier, or neither")
        if col.date_precision is not None and (not col.is_date or col.date_precision not in DATE_PRECISIONS):
            raise ContractError(f"{where}: column {col.name}: date_precision applies to date and "
                                f"timestamp columns and is one of {', '.join(DATE_PRECISIONS)}")
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


def load_contracts(directory: Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """All contracts keyed by qualified name, in a stable order (read once per folder)."""
    return _load_contracts(Path(directory).resolve())


@cache
def _load_contracts(directory: Path) -> dict[str, Contract]:
    contracts = {}
    for path in sorted(Path(directory).glob("*/*.yaml")):
        c = _parse(path)
        if c.name in contracts:
            raise ContractError(f"contract {path}: {c.name} is declared twice")
        contracts[c.name] = c
    return contracts


load_contracts.cache_clear = _load_contracts.cache_clear  # after a contract file changes


def agencies(directory: Path = CONTRACTS_DIR) -> list[str]:
    return sorted({c.agency for c in load_contracts(directory).values()})


def contract_for_file(agency: str, filename: str, directory: Path = CONTRACTS_DIR) -> Contract | None:
    """The contract a dropped file belongs to, or None for an unknown file name."""
    hits = [c for c in load_contracts(directory).values() if c.agency == agency and c.matches(filename)]
    return hits[0] if len(hits) == 1 else None
