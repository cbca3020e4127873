"""Justice Counts bulk-upload files, written from the jc_* marts.

The Justice Counts Publisher takes, per agency, one CSV per metric file, named by the file's
canonical name (``arrests_by_type.csv``): columns ``year``, ``month`` for a metric reported
monthly, the breakdown column for a breakdown file, and ``value``, with the categories spelled
exactly as the Publisher's dimensions (Recidiviz pulse-data, recidiviz/justice_counts/
metricfiles/ and dimensions/). The marts already count by the published definitions and carry
those labels (transforms/sql/75_marts_justice_counts.sql); this module only reshapes them.

It reads the marts, never the report's tables: those suppress small counts, and what the
Publisher receives is a steward's decision, per sector, from the whole counts. A sector is
written only when the agreement of every agency its mart is built from permits
``justice_counts``.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from leadhub.core.agreements import AgreementError, agreement_for
from leadhub.core.audit import steward_dir
from leadhub.core.exports import escape_cell
from leadhub.core.files import atomic_write_text, make_private_dir, replace_dir
from leadhub.core.settings import Settings
from leadhub.core.warehouse import table_exists


@dataclass(frozen=True)
class MetricFile:
    """One file the Publisher accepts: its canonical name, the metric it holds, and how."""
    name: str                     # canonical file name, without .csv
    metric: str                   # the Justice Counts metric key
    monthly: bool                 # the definition's default reporting frequency
    breakdown: str | None = None  # the upload's breakdown column
    mart_column: str | None = None


@dataclass(frozen=True)
class Sector:
    """The files of one agency's sector (its Justice Counts system), from one mart."""
    folder: str
    system: str
    mart: str
    value_column: str
    extract: str                  # the contract whose deliveries the counts come from
    files: tuple[MetricFile, ...]


def _files(metric: str, monthly: bool, total: str, breakdowns: dict[str, tuple[str, str]]) -> tuple:
    """The aggregate file and one file per breakdown {file name: (upload column, mart column)}."""
    return (MetricFile(total, metric, monthly),
            *(MetricFile(name, metric, monthly, column, mart_column)
              for name, (column, mart_column) in breakdowns.items()))


OFFENSE = ("offense_type", "offense_type")
RACE = ("race/ethnicity", "race_ethnicity")
SEX = ("biological_sex", "biological_sex")
SEVERITY = ("case_severity", "case_severity")

# Every metric file the extracts support; the rest of each system's files (funding, staff,
# calls for service, pre/post-adjudication splits, ...) need data no agency sends.
# Only event counts may be annual: the export sums their months over the year.
SECTORS = (
    Sector("law_enforcement", "LAW_ENFORCEMENT", "jc_arrests", "arrests", "police_arrests", (
        *_files("LAW_ENFORCEMENT_ARRESTS", True, "arrests",
                {"arrests_by_type": OFFENSE, "arrests_by_race": RACE, "arrests_by_biological_sex": SEX}),
    )),
    Sector("prosecution", "PROSECUTION", "jc_cases", "cases", "prosecutor_cases", (
        *_files("PROSECUTION_CASES REFERRED", True, "cases_referred",
                {"cases_referred_by_severity": SEVERITY}),
        *_files("PROSECUTION_CASES_DECLINED", True, "cases_declined",
                {"cases_declined_by_severity": SEVERITY, "cases_declined_by_sex": SEX,
                 "cases_declined_by_race": RACE}),
        *_files("PROSECUTION_CASES_DIVERTED", True, "cases_diverted",
                {"cases_diverted_by_type": SEVERITY, "cases_diverted_by_race": RACE,
                 "cases_diverted_by_sex": SEX}),
        *_files("PROSECUTION_CASES_PROSECUTED", True, "cases_prosecuted",
                {"cases_prosecuted_by_type": SEVERITY, "cases_prosecuted_by_sex": SEX,
                 "cases_prosecuted_by_race": RACE}),
        *_files("PROSECUTION_CASES_DISPOSED", True, "cases_disposed",
                {"cases_disposed_by_type": ("disposition_type", "disposition_type")}),
    )),
    Sector("jails", "JAILS", "jc_jail", "value", "jail_bookings", (
        *_files("JAILS_TOTAL_ADMISSIONS", True, "total_admissions", {"total_admissions_by_type": OFFENSE}),
        *_files("JAILS_TOTAL_RELEASES", True, "total_releases", {}),
        *_files("JAILS_READMISSIONS", False, "readmissions", {}),
        *_files("JAILS_TOTAL_POPULATION", True, "total_population",
                {"total_population_by_type": OFFENSE, "total_population_by_race": RACE,
                 "total_population_by_sex": SEX}),
    )),
)


def header(f: MetricFile) -> list[str]:
    return ["year", *(["month"] if f.monthly else []), *([f.breakdown] if f.breakdown else []), "value"]


def write_file(path: Path, f: MetricFile, rows: list[list]) -> None:
    """One upload file, private (0600) and written atomically: the counts are whole, small ones too."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header(f))
    writer.writerows([escape_cell(v) for v in row] for row in rows)
    atomic_write_text(path, text.getvalue())


def _periods(dated: list[tuple], monthly: bool) -> list[tuple]:
    """Every period from the first to the last one with data: (year, month) or (year,)."""
    if not dated:
        return []
    first, last = min(dated), max(dated)
    if not monthly:
        return [(y,) for y in range(first[0], last[0] + 1)]
    periods, (y, m) = [], first
    while (y, m) <= last:
        periods.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return periods


def covered_until(con: duckdb.DuckDBPyConnection, sector: Sector, today: date) -> datetime:
    """The end of what the sector's counts can hold: when its extract's latest delivery was
    received (a file holds nothing that happened after that), or the start of ``today``
    when no delivery is recorded."""
    if table_exists(con, "ops", "batches"):
        latest = con.execute("SELECT max(received_at) FROM ops.batches WHERE contract = ?",
                             [sector.extract]).fetchone()[0]
        if latest is not None:
            return latest
    return datetime(today.year, today.month, today.day)


def period_end(period: tuple) -> datetime:
    """The first moment after a (year, month) or (year,) period."""
    y, m = period if len(period) == 2 else (period[0], 12)
    return datetime(y + 1, 1, 1) if m == 12 else datetime(y, m + 1, 1)


def period_label(period: tuple) -> str:
    return "-".join(f"{p:02d}" for p in period)


def file_rows(con: duckdb.DuckDBPyConnection, sector: Sector, f: MetricFile,
              year: int | None = None, covered: datetime | None = None
              ) -> tuple[list[list], int, list[tuple]]:
    """(the file's rows, how many events of the metric have no date and are left out, the
    periods left out because they had not ended when the data was delivered).

    Every period from the first to the last with data gets a row per category (0 where there
    were none); the categories are those the mart holds for the metric in any period, so a
    category the agency never records (e.g. an ethnicity the jail does not keep) is left out
    rather than reported as 0. A period that ends after ``covered`` is left out: its count
    would be a part of the period's, sent as the whole.
    """
    column = f'"{f.mart_column}"' if f.mart_column else "NULL"
    value = f'"{sector.value_column}"'
    sql = (f"SELECT year, month, {column} AS category, sum({value})::BIGINT AS n "
           f"FROM marts.{sector.mart} WHERE metric = ? GROUP BY ALL")
    rows = con.execute(sql, [f.metric]).fetchall()
    undated = sum(n for y, _, _, n in rows if y is None)
    categories = sorted({c for y, _, c, _ in rows if c is not None}) if f.mart_column else [None]
    counts: dict[tuple, int] = {}
    for y, m, category, n in rows:
        if y is None or (year is not None and y != year):
            continue
        period = (y, m) if f.monthly else (y,)
        counts[(period, category)] = counts.get((period, category), 0) + n
    held = sorted({p for p, _ in counts if covered is not None and period_end(p) > covered})
    periods = _periods(sorted({p for p, _ in counts} - set(held)), f.monthly)
    out = [[*period, *([category] if f.mart_column else []), counts.get((period, category), 0)]
           for period in periods for category in categories]
    return out, undated, held


def refusal(sector: Sector, today: date) -> str | None:
    """Why the sector may not be written (an agency it is built from whose agreement in force
    does not permit justice_counts, or that has none), else None."""
    from transforms.publish import model_agencies

    for agency in sorted(model_agencies().get(("marts", sector.mart), frozenset())):
        try:
            agreement = agreement_for(agency, today)
        except AgreementError as e:
            return str(e)
        if not agreement.permits("justice_counts"):
            return f"agency {agency}: agreement {agreement.describe()} does not permit justice_counts"
    return None


def _remove_earlier(folder: Path, sector: Sector, notes: list[str]) -> None:
    """Remove a refused sector's files of an earlier run, which would otherwise look current;
    a folder holding anything else is left alone."""
    if not folder.is_dir():
        return
    ours = {f"{f.name}.csv" for f in sector.files}
    if all(p.name in ours for p in folder.iterdir()):
        shutil.rmtree(folder)
        notes.append(f"{sector.folder}: removed the files of an earlier run from {folder}")
    else:
        notes.append(f"{sector.folder}: {folder} holds other files too and was left as it is: "
                     "do not send it")


def steward_folder(settings: Settings) -> Path:
    """Where the files go unless the steward names another folder: beside the audit log, which
    only the steward reads (an agency may permit ``justice_counts`` but not ``evaluation``)."""
    return steward_dir(settings) / "justice_counts"


def write_justice_counts(con: duckdb.DuckDBPyConnection, out_dir: Path, today: date,
                         year: int | None = None) -> dict:
    """Write <out_dir>/<sector>/<canonical file name>.csv for every sector that may be sent.

    Each sector's folder is written aside and swapped in whole, so it never mixes files of two
    runs; a sector not written this time loses the folder of an earlier run, so ``out_dir``
    never mixes periods. Folders are 0700 and files 0600: only the steward reads them, not the
    analysts, whose snapshot follows the evaluation purpose instead.
    A period is written only once it ended before the sector's extract was last delivered, so
    that no part of a month is sent as the month's count.
    Returns {"files": {sector: [path, ...]}, "notes": [one line per sector left out, per
    metric with undated events and per sector with periods held back]}.
    """
    out_dir = make_private_dir(Path(out_dir))
    written: dict[str, list[str]] = {}
    notes: list[str] = []
    for sector in SECTORS:
        why = refusal(sector, today)
        if why:
            notes.append(f"{sector.folder}: not written: {why}")
            _remove_earlier(out_dir / sector.folder, sector, notes)
            continue
        if not table_exists(con, "marts", sector.mart):
            notes.append(f"{sector.folder}: not written: marts.{sector.mart} is missing (run build)")
            continue
        staging = out_dir / f".{sector.folder}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        make_private_dir(staging)
        names, undated, held = [], {}, set()
        covered = covered_until(con, sector, today)
        for f in sector.files:
            rows, undated[f.metric], left_out = file_rows(con, sector, f, year, covered)
            held.update(left_out)
            if rows:
                write_file(staging / f"{f.name}.csv", f, rows)
                names.append(f"{f.name}.csv")
        if held:
            notes.append(f"{sector.folder}: {', '.join(map(period_label, sorted(held)))} left out: the latest "
                         f"{sector.extract} delivery, received {covered:%Y-%m-%d %H:%M}, was before "
                         f"{'its' if len(held) == 1 else 'their'} end")
        for metric, n in undated.items():
            if n:
                notes.append(f"{sector.folder}: {metric}: {n} left out of the files, their event has no date "
                             f"(marts.{sector.mart} rows with year NULL)")
        if not names:
            shutil.rmtree(staging)
            notes.append(f"{sector.folder}: not written: no counts" + (f" for {year}" if year else ""))
            _remove_earlier(out_dir / sector.folder, sector, notes)
            continue
        replace_dir(staging, out_dir / sector.folder)
        written[sector.folder] = [str(out_dir / sector.folder / n) for n in names]
    return {"files": written, "notes": notes}
