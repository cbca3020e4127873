"""What the data covers: per extract, the months of its events and its deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from leadhub.core.contracts import load_contracts
from transforms.report.model import Table, fetch_dicts
from transforms.report.suppression import NOT_APPLICABLE


@dataclass(frozen=True)
class Coverage:
    """One extract: the months its events span and its latest accepted delivery."""
    extract: str
    first_month: date | None
    last_month: date | None
    batches: int
    latest_received: datetime | None


PERIOD_COLUMNS = ("source", "period_first_month", "period_last_month")


def _periods(con) -> dict[str, tuple[date | None, date | None]]:
    """{extract: (first month, last month)} of the events of its current rows.

    The published snapshot holds them in ``ops.snapshot_info``, taken from the exact dates
    before the snapshot's own dates were coarsened; on the warehouse itself the same query
    runs over the current rows. A snapshot from before these columns existed has none.
    """
    from transforms.publish import snapshot_info_sql

    columns = {r["column_name"] for r in fetch_dicts(con, """SELECT column_name FROM duckdb_columns()
        WHERE schema_name = 'ops' AND table_name = 'snapshot_info'""")}
    current = fetch_dicts(con, "SELECT 1 FROM duckdb_views() WHERE schema_name = 'current' LIMIT 1")
    if columns:
        if not set(PERIOD_COLUMNS) <= columns:
            return {}
        source = "ops.snapshot_info"
    elif current:
        source = f"({snapshot_info_sql()})"
    else:
        return {}
    return {r["source"]: (r["period_first_month"], r["period_last_month"])
            for r in fetch_dicts(con, f"SELECT {', '.join(PERIOD_COLUMNS)} FROM {source} AS s")}


def data_coverage(con) -> list[Coverage]:
    """Per extract: first and last month of its events, batches loaded, latest receipt."""
    periods = _periods(con)
    received = {r["contract"]: r for r in fetch_dicts(con, """
        SELECT contract, count(*) AS batches, max(received_at) AS latest_received
        FROM ops.batches GROUP BY contract""")}
    out = []
    for name in load_contracts():
        first, last = periods.get(name, (None, None))
        r = received.get(name)
        out.append(Coverage(name, first, last, r["batches"] if r else 0,
                            r["latest_received"] if r else None))
    return out


def lineage_table(coverage: list[Coverage]) -> Table:
    """Per extract: the period its events cover, the batches loaded and the latest receipt."""
    rows = [[c.extract,
             f"{c.first_month:%Y-%m}" if c.first_month else NOT_APPLICABLE,
             f"{c.last_month:%Y-%m}" if c.last_month else NOT_APPLICABLE,
             str(c.batches),
             c.latest_received.strftime("%Y-%m-%d %H:%M") if c.latest_received else "none received"]
            for c in coverage]
    return Table(name="batch_lineage",
                 title="Data lineage: period covered and deliveries loaded, per extract",
                 header=["Extract", "First month of events", "Last month of events", "Batches",
                         "Latest received"],
                 rows=rows, sources=frozenset(),
                 note="Months of the events in the extract's current rows, by the date each "
                      "row is about (referral, arrest, booking, case referral, consent, intake "
                      "or contact date). Latest received: when the newest accepted delivery of "
                      "the extract arrived.")
