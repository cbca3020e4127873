"""Feed health for stewards: ledger counts and staleness per declared extract."""

from __future__ import annotations

from datetime import datetime, timedelta

from leadhub.core.contracts import load_contracts
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect, utcnow


def feed_status(settings: Settings, now: datetime | None = None) -> list[dict]:
    """One row per contract; a feed is stale when nothing was accepted within its declared window."""
    now = now or utcnow()
    with connect(settings.warehouse_path) as con:
        counts = {(a, e, s): (n, last) for a, e, s, n, last in con.execute(
            "SELECT agency, extract, status, count(*), max(received_at) FROM ops.file_ledger "
            "GROUP BY ALL").fetchall()}
    rows = []
    for c in load_contracts().values():
        def n(status):
            return counts.get((c.agency, c.extract, status), (0, None))[0]
        last = max((counts[k][1] for k in counts
                    if k[:2] == (c.agency, c.extract) and k[2] in ("accepted", "superseded")), default=None)
        stale = last is None or now - last > timedelta(hours=c.stale_after_hours)
        rows.append({"feed": c.name, "agency": c.agency, "extract": c.extract,
                     "accepted": n("accepted") + n("superseded"), "duplicate": n("duplicate"),
                     "quarantined": n("quarantined"), "held": n("held"), "last_accepted": last.isoformat(" ", "minutes") if last else None,
                     "stale_after_hours": c.stale_after_hours, "stale": stale})
    return rows


def held_files(settings: Settings) -> list[dict]:
    """Deliveries the volume guard held, oldest first: each waits for 'leadhub release' and stays held."""
    with connect(settings.warehouse_path) as con:
        rows = con.execute("SELECT file_id, agency, file_name, received_at, reason FROM ops.file_ledger "
                           "WHERE status = 'held' ORDER BY received_at").fetchall()
    return [{"file_id": f, "agency": a, "file": n, "received_at": r, "reason": why} for f, a, n, r, why in rows]
