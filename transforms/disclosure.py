"""How much the analysts' snapshot shows of each published column: its disclosure level.

Each contract column declares a level (leadhub/core/contracts.py): identifiers
never leave staging as clear text; quasi-identifiers are published as keyed
pseudonyms (record numbers, officer ids) or only as precise as their
``date_precision`` (dates and times); plain columns as they are. A published
column takes the level of the contract column it is copied from
(``TABLE_SOURCES``, ``DERIVED``), else of any contract column of the same name
that is a pseudonymized quasi-identifier (``arrest_id`` in every table), else:
a date or time the models computed in a table about people (one with a
person_key or a record number: cohort index dates, first seen, ...) is some
person's event date and is published to the coarsest precision any contract
declares; in a table of counts (per month, per year) it is plain. Anything
else is plain.

The pseudonyms use their own HKDF subkey (purpose ``publication``), so they
match neither the warehouse's tokens nor the clear numbers, yet the same
number gets the same pseudonym in every table (an arrest joins its bookings
and cases). Everything the marts count or measure (jail days, 6- and 12-month
windows, days to first contact) is computed in the warehouse from exact dates
before publishing, so coarse dates in the snapshot cost no aggregate.

The ops tables describe deliveries, not people; the one thing in them that
could carry record-level information is a file name chosen by an agency, so a
name is published only when what its contract's pattern leaves open is a date
stamp (``jail_bookings_20241231.csv``); otherwise it is replaced by the pattern
(``jail_bookings_*.csv``), in ``file_name`` and in the texts that quote it.
"""

from __future__ import annotations

import fnmatch
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Callable, Iterable

import pyarrow as pa

from leadhub.core.contracts import DATE_PRECISIONS, Column, Contract, load_contracts
from leadhub.core.errors import printable

# Which agency extract each core table is conformed from: its columns keep the meaning (and
# the level) of the contract columns of the same name.
TABLE_SOURCES = {
    ("core", "referral"): "police_referrals",
    ("core", "arrest"): "police_arrests",
    ("core", "arrest_charge"): "police_arrests",
    ("core", "booking"): "jail_bookings",
    ("core", "booking_charge"): "jail_bookings",
    ("core", "case_charge"): "prosecutor_cases",
    ("core", "consent"): "treatment_clients",
    ("core", "treatment_episode"): "treatment_episodes",
    ("core", "service_contact"): "treatment_contacts",
    ("core", "assessment"): "treatment_assessments",
}
# Published columns computed from one contract column under another name.
DERIVED = {
    ("core", "booking", "booking_date"): ("jail_bookings", "booking_ts"),
}
# Columns about the hub's own work or settings, not about anybody's records.
PLAIN = {
    ("core", "record_history", "changed_at"),
    ("core", "evaluation_settings", "program_start"),
    ("core", "evaluation_settings", "program_end"),
}
# Record keys made of record numbers ("A123|1"): pseudonymized whole.
PSEUDONYMIZED = {("core", "record_history", "record_key")}
# ops: file names as delivered, texts that quote them, and where originals are kept.
FILE_NAME_COLUMNS = {"file_name"}
FILE_TEXT_COLUMNS = {"reason"}
WITHHELD_OPS_COLUMNS = {"archive_path"}
DATE_TYPES = ("DATE", "TIMESTAMP")
PSEUDONYM_HEX = 24           # 96 bits: no collision among any county's record numbers
PSEUDONYM_TABLE = "leadhub_pseudonyms"  # temporary, on the publishing connection only
WITHHELD_NAME = "(file name withheld)"


@dataclass(frozen=True)
class Disclosure:
    """What the snapshot does with one column.

    treatment: keep | pseudonym | date (to ``precision``) | file_name | file_text | withhold
    """
    level: str
    treatment: str = "keep"
    precision: str | None = None
    note: str = ""

    def label(self) -> str:
        """How the data dictionary states it."""
        if self.note:
            return self.note
        if self.treatment == "pseudonym":
            return "quasi-identifier: keyed pseudonym (snapshot key)"
        if self.treatment == "date":
            level = self.level.replace("_", "-")
            if self.precision == "exact":
                return f"{level}: exact"
            return f"{level}: to the {self.precision}" + (", first day shown" if self.precision != "day" else "")
        if self.treatment == "file_name":
            return "plain: a name with more than a date stamp shows its contract's pattern"
        if self.treatment == "file_text":
            return "plain: file names shown as in file_name"
        if self.treatment == "withhold":
            return "not published"
        return self.level.replace("_", "-")


# Columns the hub computes that stand for a person: published as they are, said plainly.
NOTED = {
    "person_key": Disclosure("quasi_identifier", note="quasi-identifier: the linkage's person key, "
                             "a pseudonym derived from no clear value"),
    "age_at_event": Disclosure("quasi_identifier", note="quasi-identifier: whole years (the date of "
                               "birth it comes from is never published)"),
    "age_at_index": Disclosure("quasi_identifier", note="quasi-identifier: whole years (the date of "
                               "birth it comes from is never published)"),
}


def _from_contract(column: Column) -> Disclosure:
    if column.disclosure == "identifier":
        return Disclosure("identifier", "withhold")
    if column.is_date:
        return Disclosure(column.disclosure, "date", column.date_precision or "exact")
    if column.disclosure == "quasi_identifier":
        return Disclosure("quasi_identifier", "pseudonym")
    return Disclosure("plain")


@cache
def _pseudonymized_names() -> frozenset[str]:
    """Names of contract columns published as pseudonyms wherever they appear."""
    return frozenset(c.name for contract in load_contracts().values() for c in contract.columns
                     if c.disclosure == "quasi_identifier" and not c.is_date)


def coarsest_date_precision() -> str:
    """The coarsest date precision any contract declares for a quasi-identifying date."""
    declared = [c.date_precision for contract in load_contracts().values() for c in contract.columns
                if c.is_date and c.disclosure == "quasi_identifier" and c.date_precision]
    return min(declared, key=DATE_PRECISIONS.index) if declared else "year"


def is_person_level(schema: str, table: str, columns: Iterable[str]) -> bool:
    """Whether a table's rows are about people or their records (not counts)."""
    names = set(columns)
    return "person_key" in names or bool(names & _pseudonymized_names()) or (schema, table) in TABLE_SOURCES


def column_disclosure(schema: str, table: str, column: str, sql_type: str,
                      person_level: bool = True) -> Disclosure:
    """The disclosure of one column of a published table (see the module docstring).

    ``person_level``: whether the table is about people (``is_person_level``).
    """
    is_date = sql_type.upper().startswith(DATE_TYPES)
    if schema == "ops":
        if column in WITHHELD_OPS_COLUMNS:
            return Disclosure("plain", "withhold")
        if column in FILE_NAME_COLUMNS:
            return Disclosure("plain", "file_name")
        if column in FILE_TEXT_COLUMNS:
            return Disclosure("plain", "file_text")
        return Disclosure("plain")
    if column in NOTED:
        return NOTED[column]
    if (schema, table, column) in PLAIN:
        return Disclosure("plain", "date", "exact") if is_date else Disclosure("plain")
    if (schema, table, column) in PSEUDONYMIZED:
        return Disclosure("quasi_identifier", "pseudonym")
    contracts = load_contracts()
    source = DERIVED.get((schema, table, column))
    if source is None and (schema, table) in TABLE_SOURCES:
        contract = contracts[TABLE_SOURCES[(schema, table)]]
        if column in contract.column_names:
            source = (contract.name, column)
    if source:
        return _from_contract(contracts[source[0]].column(source[1]))
    if column in _pseudonymized_names():
        return Disclosure("quasi_identifier", "pseudonym")
    if is_date and person_level:
        return Disclosure("quasi_identifier", "date", coarsest_date_precision())
    if is_date:
        return Disclosure("plain", "date", "exact")
    return Disclosure("plain")


def sql_identifier(name: str) -> str:
    """An SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def published_expression(column: str, sql_type: str, disclosure: Disclosure) -> str:
    """The SELECT expression that publishes ``column`` (UDFs from ``register_functions``); a
    pseudonym comes from a join, see ``published_query``."""
    quoted = sql_identifier(column)
    if disclosure.treatment == "pseudonym":
        raise ValueError(f"{column}: pseudonyms are joined from {PSEUDONYM_TABLE}, see published_query")
    if disclosure.treatment == "date":
        if disclosure.precision == "exact":
            return quoted
        if disclosure.precision == "day":
            return f"CAST({quoted} AS DATE) AS {quoted}"
        return f"CAST(date_trunc('{disclosure.precision}', {quoted}) AS DATE) AS {quoted}"
    if disclosure.treatment == "file_name":
        return f"leadhub_file_name({quoted}) AS {quoted}"
    if disclosure.treatment == "file_text":
        return f"leadhub_file_text({quoted}) AS {quoted}"
    return quoted


def pseudonym_function(key: bytes) -> Callable[[str | None], str | None]:
    """Keyed pseudonym of a record number: HMAC-SHA256 under the publication subkey, shortened."""
    digest = hmac.digest

    def pseudonym(value: str | None) -> str | None:
        if value is None:
            return None
        return digest(key, value.encode("utf-8", "surrogateescape"), "sha256").hex()[:PSEUDONYM_HEX]

    return pseudonym


def pseudonym_table(key: bytes, values: Iterable[str]) -> pa.Table:
    """``PSEUDONYM_TABLE``'s rows for distinct non-null ``values``: (lh_value, lh_pseudonym).

    A record number appears in many rows and tables (an arrest in its charges, bookings and
    cases); computing its HMAC once here and joining is what keeps publication linear in the
    distinct numbers instead of calling Python once per published value.
    """
    values = list(values)
    pseudonym = pseudonym_function(key)
    return pa.table({"lh_value": pa.array(values, pa.string()),
                     "lh_pseudonym": pa.array([pseudonym(v) for v in values], pa.string())})


def published_query(source: str, columns: dict[str, tuple[str, Disclosure]], where: str = "") -> str:
    """The SELECT that publishes table ``source``: {column: (sql type, disclosure)} in order.

    Each pseudonymized column is a LEFT JOIN on ``PSEUDONYM_TABLE`` (NULL stays NULL); the rows
    keep the source table's order. ``where`` filters the source's rows (its own column names).
    """
    select, joins = [], []
    for column, (sql_type, disclosure) in columns.items():
        if disclosure.treatment == "pseudonym":
            alias = f"lh_p{len(joins)}"
            joins.append(f" LEFT JOIN {PSEUDONYM_TABLE} {alias} "
                         f"ON {alias}.lh_value = CAST(lh_src.{sql_identifier(column)} AS VARCHAR)")
            select.append(f"{alias}.lh_pseudonym AS {sql_identifier(column)}")
        else:
            select.append(published_expression(column, sql_type, disclosure))
    order = " ORDER BY lh_src.rowid" if joins else ""
    return f"SELECT {', '.join(select)} FROM {source} lh_src{''.join(joins)}{where}{order}"


_DATE_STAMP = re.compile(r"(\d{8}|\d{6}|\d{4}-\d{2}-\d{2}|\d{4}-\d{2})(?:[_-](\d{8}|\d{6}|\d{4}-\d{2}-\d{2}|\d{4}-\d{2}))*")
_STAMP_FORMATS = {8: "%Y%m%d", 6: "%Y%m", 10: "%Y-%m-%d", 7: "%Y-%m"}


def _is_date_stamp(text: str) -> bool:
    """'20241231', '2024-12', '20240101_20240131': dates (valid ones) and separators only."""
    if not _DATE_STAMP.fullmatch(text):
        return False
    for part in re.findall(r"\d{4}-\d{2}-\d{2}|\d{4}-\d{2}|\d+", text):
        try:
            when = datetime.strptime(part, _STAMP_FORMATS[len(part)])
        except (KeyError, ValueError):
            return False
        if not 1900 <= when.year <= 2199:
            return False
    return True


def _pattern_regex(pattern: str) -> re.Pattern:
    parts = [("(.*)" if ch == "*" else "(.)" if ch == "?" else re.escape(ch)) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def file_name_function(contracts: Iterable[Contract] | None = None) -> Callable[[str | None], str | None]:
    """A delivered file name as the snapshot may show it (see the module docstring)."""
    patterns = [(c.file_pattern, _pattern_regex(c.file_pattern))
                for c in (contracts if contracts is not None else load_contracts().values())]

    def published(name: str | None) -> str | None:
        if name is None:
            return None
        for pattern, regex in patterns:
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            match = regex.fullmatch(name)
            if match and all(_is_date_stamp(g) for g in match.groups() if g):
                return name
            return pattern
        return WITHHELD_NAME

    return published


def file_text_function(names: Iterable[str],
                       published: Callable[[str | None], str | None]) -> Callable[[str | None], str | None]:
    """Texts (ledger reasons) with every known file name, raw or escaped, shown as ``published``."""
    replacements: dict[str, str] = {}
    for name in names:
        if not name:
            continue
        shown = published(name)
        for form in {name, printable(name)}:
            if form != shown:
                replacements[form] = shown
    if not replacements:
        return lambda text: text
    regex = re.compile("|".join(re.escape(f) for f in sorted(replacements, key=len, reverse=True)))

    def shown(text: str | None) -> str | None:
        return None if text is None else regex.sub(lambda m: replacements[m.group(0)], text)

    return shown
