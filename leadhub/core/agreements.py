"""Data-sharing agreements as code: one file per agency, ``connectors/agreements/<agency>.yaml``.

An agreement says for how long the hub may receive an agency's data (``effective`` to ``end``,
both days included), what it may be used for (``purposes``), how long it is kept
(``retention_days``) and the smallest count a publication may show (``small_cell_threshold``:
counts from 1 to the threshold are suppressed). Intake refuses deliveries received outside the
dates, the build refuses while an agency's data is held without an agreement in force, and the
snapshot and report (purpose ``evaluation``) leave out what an agreement does not permit, the
Justice Counts marts need ``justice_counts``, and the steward's re-identification crosswalk
(``transforms/crosswalk.py``) holds and returns only the ids of agencies whose agreement permits
``operations``. A missing or expired agreement is an error naming the agency, never a silent gap.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import duckdb

from pydantic import Field, model_validator

from leadhub.core.contracts import load_contracts
from leadhub.core.declared import Declared, ValidationError, declaration_error, read_yaml
from leadhub.core.errors import LeadHubError

# Data, read here by path like the contracts beside them: the core imports no stage.
AGREEMENTS_DIR = Path(__file__).resolve().parents[2] / "connectors" / "agreements"

# evaluation: the analysts' snapshot and the report; operations: the program's case work on
# individual people, i.e. re-identification through the steward's crosswalk (intake and linkage
# serve every purpose and are governed by the agreement being in force); justice_counts: the
# Justice Counts marts.
Purpose = Literal["evaluation", "operations", "justice_counts"]


class AgreementError(LeadHubError):
    """An agreement file is malformed, or an agency has no agreement in force."""


class Agreement(Declared):
    reference: str = Field(min_length=1)
    agency: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    effective: date
    end: date
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    retention_days: int = Field(gt=0)
    small_cell_threshold: int = Field(ge=1)

    @model_validator(mode="after")
    def _dates_in_order(self) -> "Agreement":
        if self.end < self.effective:
            raise ValueError("end is before effective")
        return self

    def in_force(self, on: date) -> bool:
        return self.effective <= on <= self.end

    def permits(self, purpose: str) -> bool:
        return purpose in self.purposes

    def describe(self) -> str:
        """``reference (agency, effective to end)``: what an error or a report names."""
        return f"{self.reference} ({self.agency}, {self.effective} to {self.end})"


def _parse(path: Path) -> Agreement:
    where = f"agreement {path.name}"
    raw = read_yaml(path, AgreementError, where)
    if not isinstance(raw, dict):
        raise AgreementError(f"{where}: must be a mapping of keys to values")
    try:
        agreement = Agreement(**raw)
    except ValidationError as err:
        raise AgreementError(declaration_error(where, Agreement, err)) from None
    if agreement.agency != path.stem:
        raise AgreementError(f"{where}: agency must be {path.stem}, the file's name")
    return agreement


def load_agreements(directory: Path | None = None) -> dict[str, Agreement]:
    """Every agreement keyed by agency. Read afresh each time: a steward may sign a new one
    while the hub runs."""
    folder = Path(directory) if directory is not None else AGREEMENTS_DIR
    return {a.agency: a for a in map(_parse, sorted(folder.glob("*.yaml")))}


def agreement_for(agency: str, on: date, directory: Path | None = None) -> Agreement:
    """The agency's agreement if it is in force on ``on``; AgreementError naming the agency
    (and the agreement, when there is one) otherwise."""
    agreement = load_agreements(directory).get(agency)
    if agreement is None:
        raise AgreementError(f"agency {agency} has no data-sharing agreement "
                             f"(connectors/agreements/{agency}.yaml)")
    if not agreement.in_force(on):
        raise AgreementError(f"agency {agency}: agreement {agreement.describe()} is not in force on {on}")
    return agreement


def permitted(agencies, purpose: str, on: date, directory: Path | None = None) -> dict[str, Agreement]:
    """The agreements of ``agencies`` that are in force on ``on`` and permit ``purpose``;
    AgreementError naming the first agency with none in force."""
    found = {a: agreement_for(a, on, directory) for a in sorted(agencies)}
    return {a: g for a, g in found.items() if g.permits(purpose)}


def held_agencies(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Agencies with rows in the warehouse's staging tables (any of their extracts)."""
    tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() "
                                        "WHERE database_name = current_database() AND schema_name = 'staging'")
              .fetchall()}
    held: set[str] = set()
    for contract in load_contracts().values():
        if contract.agency not in held and contract.name in tables and \
                con.execute(f'SELECT 1 FROM staging."{contract.name}" LIMIT 1').fetchone():
            held.add(contract.agency)
    return sorted(held)


def in_force_for_held(con: duckdb.DuckDBPyConnection, on: date) -> dict[str, Agreement]:
    """The agreement of every agency whose data the warehouse holds; AgreementError naming the
    first agency without one in force on ``on``."""
    return {agency: agreement_for(agency, on) for agency in held_agencies(con)}
