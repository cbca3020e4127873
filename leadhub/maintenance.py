"""Steward maintenance: feed staleness, retention, re-processing and back-fills.

Plain functions over ``Settings`` so the ``leadhub_maintenance`` DAG, the feed
DAGs' re-process parameters and the tests call the same code; none of them
needs Airflow. Every result is a small dict of file names, ids, statuses and
counts, safe for logs and XComs.

Nothing here loads data. Re-processing puts an archived original back into its
agency inbox under its original name, exactly as if the clerk had sent it
again, and the ordinary intake takes it from there: it is hashed, recorded in
the ledger as a new entry (the old entry's history stays), and either loaded
or, when the same bytes are already loaded, recorded as a ``duplicate``. A
back-fill of a pull source only moves the source's remembered position back;
the next pull delivers the rows or files again through the same intake.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from leadhub.core.errors import LeadHubError
from leadhub.core.files import open_private
from leadhub.core.settings import Settings
from leadhub.core.warehouse import utcnow

ENV_RETENTION_DAYS = "LEADHUB_ARCHIVE_RETENTION_DAYS"
# Seven years: a common records-retention period for justice and health records.
# Counties set their own through LEADHUB_ARCHIVE_RETENTION_DAYS; an agency's
# agreement (connectors/agreements/) overrides it for that agency's data.
DEFAULT_RETENTION_DAYS = 7 * 365

# Statuses whose bytes are in staging: sending them again only yields a 'duplicate'.
LOADED_STATUSES = ("accepted", "superseded")


# --- staleness ----------------------------------------------------------------

def stale_feeds(settings: Settings, now: datetime | None = None) -> list[dict]:
    """The feeds with nothing accepted within their contract's ``stale_after_hours``."""
    from connectors.status import feed_status

    return [row for row in feed_status(settings, now) if row["stale"]]


def staleness_message(stale: list[dict]) -> str | None:
    """One line per stale feed naming agency and extract, or None when every feed is fresh."""
    if not stale:
        return None
    # The first line names every stale feed: failure callbacks and alerts often show only that line.
    names = ", ".join(f"agency={row['agency']} extract={row['extract']}" for row in stale)
    lines = [f"{len(stale)} feed(s) stale ({names}); ask the agency for its next delivery or check its pull:"]
    for row in stale:
        last = row.get("last_accepted") or "never"
        lines.append(f"  agency={row['agency']} extract={row['extract']}: nothing accepted for "
                     f"{row['stale_after_hours']} h (last accepted: {last})")
    return "\n".join(lines)


# --- retention ---------------------------------------------------------------------
#
# What "past retention" means: a delivery is past retention when it was received
# (ops.file_ledger.received_at) longer ago than its agency's retention period. The
# period is the agency's agreement's ``retention_days``; where no agreement declares
# one, $LEADHUB_ARCHIVE_RETENTION_DAYS (else seven years). A steward's ``keep_days``
# for one run can shorten it, never lengthen it past the agreement.
#
# A loaded batch past retention expires whole: its staging rows and their history go,
# the core tables, marts and the snapshot are rebuilt from what remains, and its
# archived original is deleted; its ledger entry says 'expired' and keeps its counts.
# This holds for the batch the current views read too. For a full-history extract
# every delivery is a whole copy, so a feed that keeps delivering always has a young
# current batch; one whose latest delivery is itself past retention (the agency stopped
# sending) has no data the agreement still lets the hub hold, and its current view is
# left empty — the summary names such extracts. Deliveries that never loaded
# (quarantined, duplicate) lose their files only: the archived original and, for a
# quarantined one, the delivered file and its reason in quarantine/. A delivery still being
# taken ('received') or waiting for a steward ('held') is kept whatever its age, and an
# archive file the ledger does not know is listed, never deleted: a person decides.

def retention_days(value: int | str | None = None) -> int:
    """The retention in days: ``value`` if given, else $LEADHUB_ARCHIVE_RETENTION_DAYS, else seven years."""
    raw = value if value not in (None, "") else os.environ.get(ENV_RETENTION_DAYS) or DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except (TypeError, ValueError):
        raise LeadHubError(f"archive retention must be a whole number of days, not {raw!r}") from None
    if days < 1:
        raise LeadHubError(f"archive retention must be at least 1 day, not {days}")
    return days


# Ledger statuses kept whatever their age (intake unfinished, or a steward's decision pending).
WAITING_STATUSES = ("received", "held")
EXPIRED = "expired"


def agency_retention(agency: str, default_days: int, keep_days: int | None = None) -> tuple[int, str]:
    """(days, basis) for ``agency``: its agreement's retention, else ``default_days``;
    ``keep_days`` (one run's override) only ever shortens it."""
    days, basis = default_days, "no agreement declares one: the installation default"
    declared = _agreement_retention(agency)
    if declared is not None:
        days, basis = declared[0], f"agreement {declared[1]}"
    if keep_days is not None and keep_days < days:
        days, basis = keep_days, f"this run's --days; {basis} gives {days}"
    return days, basis


def _agreement_retention(agency: str) -> tuple[int, str] | None:
    """(retention_days, reference) of the agency's agreement, or None where none declares one.
    An agreement past its end still governs how long the data it brought may be kept."""
    from leadhub.core.agreements import load_agreements

    agreement = load_agreements().get(agency)
    if agreement is None or not agreement.retention_days:
        return None
    return agreement.retention_days, agreement.reference


def plan_retention(settings: Settings, keep_days: int | None = None, now: datetime | None = None) -> dict:
    """What retention would remove now, and why; changes nothing (see the rules above).

    Returns {"expired": [batch entries], "deleted": [archive paths], "waiting": [archive
    paths], "unaccounted": [archive paths], "kept_recent": n, "periods": {agency: {...}},
    "empty_extracts": [contract names], "rows": {table: n}, "now"}. Paths are relative to
    the data directory; no value of any row is read.
    """
    from leadhub.core.redact import row_counts_by_batch
    from leadhub.core.warehouse import connect

    default_days = retention_days(None)
    keep_days = retention_days(keep_days) if keep_days not in (None, "") else None
    now = now or utcnow()
    archive_files = {str(p.relative_to(settings.data_dir)) for p in settings.archive_dir.glob("*/*.enc")
                     if p.is_file()}
    plan = {"expired": [], "deleted": [], "waiting": [], "unaccounted": [], "kept_recent": 0, "unfinished": 0,
            "periods": {},
            "empty_extracts": [], "rows": {}, "now": f"{now:%Y-%m-%d %H:%M} UTC"}
    if not settings.warehouse_path.exists():
        if archive_files:
            raise LeadHubError(f"no warehouse at {settings.warehouse_path}: without the file ledger no "
                               "archive file can be shown to be out of use, so none was deleted")
        return plan
    with connect(settings.warehouse_path, read_only=True) as con:
        entries = con.execute(
            "SELECT l.file_id, l.agency, l.file_name, l.status, l.received_at, l.archive_path, b.batch_id, "
            "b.contract, b.row_count FROM ops.file_ledger l LEFT JOIN ops.batches b ON b.file_id = l.file_id "
            "ORDER BY l.received_at, l.file_id").fetchall()
        known, live = set(), set()  # live: extracts keeping a batch with rows
        for file_id, agency, name, status, received, archive, batch_id, contract, row_count in entries:
            known.add(archive)
            if agency not in plan["periods"]:
                days, basis = agency_retention(agency, default_days, keep_days)
                cutoff = now - timedelta(days=days)
                plan["periods"][agency] = {"days": days, "basis": basis, "cutoff": cutoff,
                                           "cutoff_text": f"{cutoff:%Y-%m-%d %H:%M} UTC"}
            on_disk = archive in archive_files
            if status == EXPIRED:  # a run stopped after its commit: finish deleting the original
                if on_disk:
                    plan["deleted"].append(archive)
                    plan["unfinished"] += 1
            elif status in WAITING_STATUSES:
                if on_disk:
                    plan["waiting"].append(archive)
            elif received >= plan["periods"][agency]["cutoff"]:
                plan["kept_recent"] += on_disk
                if batch_id is not None:
                    live.add(contract)
            elif batch_id is not None:
                plan["expired"].append({
                    "batch_id": batch_id, "file_id": file_id, "agency": agency, "contract": contract,
                    "file": name, "status": status, "received": f"{received:%Y-%m-%d %H:%M}",
                    "ledger_rows": row_count})
                if on_disk:
                    plan["deleted"].append(archive)
            else:  # never loaded (quarantined, duplicate): its files only
                if on_disk:
                    plan["deleted"].append(archive)
                # A quarantined delivery sits in quarantine/ as delivered, with its reason file.
                plan["deleted"] += sorted(str(q.relative_to(settings.data_dir)) for q in
                                          (settings.quarantine_dir / agency).glob(f"{file_id}__*") if q.is_file())
        per_batch = row_counts_by_batch(con, [e["batch_id"] for e in plan["expired"]])
    for e in plan["expired"]:
        e["rows"] = per_batch[e["batch_id"]]
        for table, n in e["rows"].items():
            plan["rows"][table] = plan["rows"].get(table, 0) + n
    plan["empty_extracts"] = sorted({e["contract"] for e in plan["expired"]} - live)
    plan["unaccounted"] = sorted(archive_files - known)
    for period in plan["periods"].values():
        period.pop("cutoff")
    return plan


def archive_retention(settings: Settings, keep_days: int | None = None, now: datetime | None = None,
                      dry_run: bool = False, *, who: str | None = None, reason: str | None = None) -> dict:
    """Apply retention (see the rules above); with ``dry_run`` only say what it would do.

    A real run first writes the steward audit entry (``who``, ``reason``, the days asked for and
    the counts of batches, rows and files that will go), so the CLI and the scheduled run are
    on the trail alike and nothing goes unless the entry is written; a dry run writes none.
    One transaction removes the expired batches' rows (``leadhub.core.redact.remove_batches``),
    marks their ledger entries 'expired' and rebuilds linkage, core tables and marts from
    what remains (``leadhub.pipeline.build``); only after it commits is the steward's
    crosswalk rebuilt (when there is one; it needs the key), the archived originals
    deleted and the snapshot published again. A run stopped in between is
    finished by the next one (expired entries' originals are deleted whatever their age).
    Returns ``plan_retention``'s dict with "dry_run" and, after a rebuild, "build" counts.
    """
    from leadhub import pipeline

    plan = plan_retention(settings, keep_days, now)
    plan["dry_run"] = dry_run
    if dry_run:
        return plan
    if not (who or "").strip() or not (reason or "").strip():
        raise LeadHubError("retention needs who runs it and why: both go to the steward audit log")
    from leadhub.core.audit import append_audit

    append_audit(settings, who=who, action="retention", reason=reason.strip(), days=keep_days,
                 batches=len(plan["expired"]), rows=sum(plan["rows"].values()), files=len(plan["deleted"]))
    if plan["expired"]:
        from leadhub.core.redact import remove_batches

        stamp = utcnow()

        def expire(con) -> None:
            remove_batches(con, [e["batch_id"] for e in plan["expired"]])
            for e in plan["expired"]:
                period = plan["periods"][e["agency"]]
                con.execute("UPDATE ops.file_ledger SET status = ?, reason = ?, updated_at = ? WHERE file_id = ?",
                            [EXPIRED, f"rows removed by retention at {stamp:%Y-%m-%d %H:%M} UTC: received "
                             f"{e['received']}, past {period['days']} days ({period['basis']})",
                             stamp, e["file_id"]])

        plan["build"] = pipeline.build(settings, publish=False, prepare=expire)
        from leadhub.core.redact import compact_warehouse

        compact_warehouse(settings.warehouse_path)  # the expired rows' bytes leave the file too
    from transforms.crosswalk import build_crosswalk, crosswalk_path

    if (plan["expired"] or plan["unfinished"]) and crosswalk_path(settings).exists():
        # The steward's crosswalk holds the agency ids of expired rows: rebuilt from what remains
        # (it replays only loaded, unexpired originals), before those originals go.
        from leadhub.core.keys import MasterKey

        plan["crosswalk"] = build_crosswalk(settings, MasterKey.load(settings.key_file))
    for relative in plan["deleted"]:
        (settings.data_dir / relative).unlink(missing_ok=True)
    if plan["expired"]:
        publish_snapshot(settings)
    return plan


def retention_summary(result: dict) -> str:
    """What retention removed (or would remove) and kept, and why: one line per agency's
    period, one per expired batch with its row counts per table, then a closing sentence."""
    dry = result["dry_run"]
    lines = [f"{agency}: retention {_plural(p['days'], 'day')} ({p['basis']}); past it: received before "
             f"{p['cutoff_text']}" for agency, p in sorted(result["periods"].items())]
    verb = "would expire" if dry else "expired"
    for e in result["expired"]:
        rows = ", ".join(f"{table} {n}" for table, n in e["rows"].items()) or "no rows left"
        lines.append(f"{verb} batch {e['batch_id']} ({e['contract']}, {e['file']}, {e['status']}, received "
                     f"{e['received']}): rows {rows}")
    for contract in result["empty_extracts"]:
        lines.append(f"{contract}: every delivery holding rows is past retention, so its current view "
                     f"{'would be' if dry else 'is'} empty until the agency delivers again")
    total = sum(result["rows"].values())
    delete, keep = ("would delete", "would keep") if dry else ("deleted", "kept")
    kept = [f"{result['kept_recent']} received within retention"]
    if result["waiting"]:
        kept.append(f"{_plural(len(result['waiting']), 'original')} still loading or held for a steward "
                    "(whatever their age)")
    if result["unaccounted"]:
        kept.append(f"{_plural(len(result['unaccounted']), 'file')} the ledger does not know "
                    "(listed above; a person decides)")
    rebuilt = (" and rebuild core, marts, the snapshot and the steward's crosswalk from what remains" if dry
               else "; core, marts and the snapshot were rebuilt from what remains") if result["expired"] else ""
    if "crosswalk" in result:
        rebuilt += ", and the steward's crosswalk"
    lines.append(f"{verb} {_plural(len(result['expired']), 'batch')} ({_plural(total, 'row')})"
                 f"{rebuilt}; {delete} {_plural(len(result['deleted']), 'file')} (archived originals, quarantined "
                 f"deliveries); "
                 f"{keep} {', '.join(kept[:-1]) + ' and ' if len(kept) > 1 else ''}{kept[-1]}")
    return "\n".join(lines)


def _plural(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{n} {noun if n == 1 else plural}"


# --- re-processing ledger entries ------------------------------------------------

def _require_ledger(settings: Settings) -> None:
    if not settings.warehouse_path.exists():
        raise LeadHubError(f"no warehouse at {settings.warehouse_path} yet, so no ledger entry to re-process")


def _ledger_entry(con, file_id: str) -> dict | None:
    row = con.execute("SELECT file_id, agency, extract, file_name, sha256, status, archive_path, received_at "
                      "FROM ops.file_ledger WHERE file_id = ?", [file_id]).fetchone()
    keys = ("file_id", "agency", "extract", "file_name", "sha256", "status", "archive_path", "received_at")
    return dict(zip(keys, row)) if row else None


def _sha256(path: Path) -> str:
    from connectors.inbox_files import file_sha256

    return file_sha256(path)[0]


def _restore(settings: Settings, key, entry: dict) -> dict:
    """Decrypt one entry's archive into its inbox: hidden '.part' name first, then an atomic rename."""
    from leadhub.core.archive import decrypt_to

    name, agency = entry["file_name"], entry["agency"]
    summary = {"file_id": entry["file_id"], "file": name, "agency": agency, "status_before": entry["status"]}
    if entry["status"] == EXPIRED:
        raise LeadHubError(f"ledger entry {entry['file_id']} ({name}) expired under retention: its rows and "
                           "its archived original were removed; only the agency can send it again")
    if not entry["archive_path"]:
        raise LeadHubError(f"ledger entry {entry['file_id']} ({name}) has no archived original: it was "
                           f"refused before archiving ({entry['status']}); ask the agency to send it again")
    archive = settings.data_dir / entry["archive_path"]
    if not archive.is_file():
        raise LeadHubError(f"ledger entry {entry['file_id']} ({name}): archive file {entry['archive_path']} "
                           "is gone (retention deletes the originals of deliveries past their period)")
    inbox = settings.inbox(agency)
    inbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = inbox / name
    if os.path.lexists(target):
        if not target.is_symlink() and target.is_file() and _sha256(target) == entry["sha256"]:
            return {**summary, "restored": "already in the inbox"}
        raise LeadHubError(f"{agency} inbox already holds a different {name}; it is a newer delivery and "
                           "is never overwritten — re-process after the intake has taken it")
    part = inbox / f".{name}.restore.part"  # hidden and '.part': the intake ignores it until the rename
    # The inbox is the agency's upload folder: whatever sits under the part name (a leftover, or a
    # symlink pointing elsewhere) is removed, never written through, and the plaintext is 0600.
    if os.path.lexists(part):
        part.unlink()
    fd = open_private(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
    try:
        with os.fdopen(fd, "wb") as out:
            decrypt_to(archive, out, key)
            out.flush()
            os.fsync(out.fileno())
        if _sha256(part) != entry["sha256"]:
            raise LeadHubError(f"ledger entry {entry['file_id']} ({name}): decrypted bytes do not match "
                               "the ledger's SHA-256; nothing was put in the inbox")
        try:
            os.link(part, target)  # unlike a rename, fails rather than replaces a delivery that just arrived
        except FileExistsError:
            raise LeadHubError(f"{agency} inbox received a new {name} while it was being restored; it is a "
                               "newer delivery and is never overwritten — re-process after the intake has "
                               "taken it") from None
    finally:
        part.unlink(missing_ok=True)
    note = ("the same bytes are loaded already, so the intake will record a duplicate"
            if entry["status"] in LOADED_STATUSES else "the intake will take it on the next feed run")
    return {**summary, "restored": note}


def restore_ledger_entry(settings: Settings, key, file_id: str, agency: str | None = None) -> dict:
    """Put the archived original of one ledger entry back into its inbox under its original name.

    ``agency``, when given, must be the entry's agency (a feed DAG only
    re-processes its own files). Never overwrites a file waiting in the inbox.
    """
    from leadhub.core.warehouse import connect

    _require_ledger(settings)
    with connect(settings.warehouse_path, read_only=True) as con:
        entry = _ledger_entry(con, file_id)
    if entry is None:
        raise LeadHubError(f"no ledger entry with file_id {file_id}")
    if agency and entry["agency"] != agency:
        raise LeadHubError(f"ledger entry {file_id} belongs to {entry['agency']}, not {agency}")
    return _restore(settings, key, entry)


def entries_to_backfill(settings: Settings, agency: str, start: date, end: date) -> list[dict]:
    """Archived entries of ``agency`` received from ``start`` to ``end`` (inclusive) worth re-processing.

    Left out: entries whose bytes are loaded now ('accepted' or 'superseded' —
    the intake would only record a duplicate), entries retention expired, and
    entries without an archive or whose archived original retention deleted.
    Of several entries with the same file name only the latest is taken: the
    inbox holds one file per name.
    """
    from leadhub.core.warehouse import connect

    if end < start:
        raise LeadHubError(f"back-fill period ends ({end}) before it starts ({start})")
    _require_ledger(settings)
    with connect(settings.warehouse_path, read_only=True) as con:
        ids = [r[0] for r in con.execute(
            "SELECT file_id FROM ops.file_ledger l WHERE agency = ? AND archive_path IS NOT NULL "
            "AND received_at >= ? AND received_at < ? "
            "AND status NOT IN ('duplicate', 'accepted', 'superseded', 'expired') "
            "AND NOT EXISTS (SELECT 1 FROM ops.file_ledger x WHERE x.agency = l.agency AND x.sha256 = l.sha256 "
            "  AND x.status IN ('accepted', 'superseded')) "
            "QUALIFY row_number() OVER (PARTITION BY file_name ORDER BY received_at DESC) = 1 "
            "ORDER BY received_at",
            [agency, datetime.combine(start, datetime.min.time()),
             datetime.combine(end + timedelta(days=1), datetime.min.time())]).fetchall()]
        entries = [_ledger_entry(con, i) for i in ids]
    return [e for e in entries if (settings.data_dir / e["archive_path"]).is_file()]


def restore_period(settings: Settings, key, agency: str, start: date, end: date) -> list[dict]:
    """Re-process every entry ``entries_to_backfill`` selects; see ``restore_ledger_entry``."""
    return [_restore(settings, key, entry) for entry in entries_to_backfill(settings, agency, start, end)]


# --- back-filling pull sources ----------------------------------------------------

def reset_pull_source(settings: Settings, source_name: str, start: str) -> dict:
    """Make the next pull of a source deliver again everything from ``start`` on.

    ``kind: sql``: the high-water mark is set just below ``start`` (an ISO date or
    time for a timestamp mark, a whole number for an integer mark), so rows whose
    mark is ``start`` or later are pulled again. It only ever moves back: moving
    it forward would skip rows. ``kind: sftp``: files whose remote modification
    time is ``start`` (an ISO date or time, UTC) or later are forgotten, so they
    are fetched again. Either way the intake records re-sent identical files as
    duplicates; only rows or files that changed are loaded.
    """
    from connectors.sources import PullError, load_sources, load_state, save_state

    sources = load_sources()
    if source_name not in sources:
        raise PullError(f"no pull source named {source_name}")
    source = sources[source_name]
    state = load_state(settings, source_name)
    if source.kind == "sql":
        from connectors.sources.sql import SqlSource

        mark_type = SqlSource.from_source(source).mark_type
        if mark_type == "integer":
            try:
                new_mark: int | str = int(start) - 1
            except ValueError:
                raise PullError(f"source {source_name}: an integer mark needs a whole number, not {start!r}") from None
            older = state.get("mark") is None or new_mark <= int(state["mark"])
        else:
            try:
                moment = datetime.fromisoformat(start)
            except ValueError:
                raise PullError(f"source {source_name}: a timestamp mark needs an ISO date or time, not {start!r}") from None
            stored = datetime.fromisoformat(state["mark"]) if state.get("mark") is not None else None
            if stored is not None:
                moment = _naive_like(moment, stored)  # the source's column decides: with or without zone
            new_moment = moment - timedelta(microseconds=1)
            new_mark = new_moment.isoformat()
            older = stored is None or new_moment <= stored
        if not older:
            raise PullError(f"source {source_name}: the mark is at {state.get('mark')}; a back-fill only "
                            f"moves it back, and {start} is later")
        previous = state.get("mark")
        save_state(settings, source_name, {**state, "kind": "sql", "mark": new_mark, "mark_type": mark_type,
                                           "reset_from": previous})
        return {"source": source_name, "kind": "sql", "previous_mark": previous, "mark": new_mark}
    moment = datetime.fromisoformat(start)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    since = moment.timestamp()
    fetched = state.get("fetched", {})
    forgotten = sorted(name for name, seen in fetched.items() if (seen.get("mtime") or 0) >= since)
    save_state(settings, source_name, {**state, "kind": "sftp",
                                       "fetched": {n: s for n, s in fetched.items() if n not in forgotten}})
    return {"source": source_name, "kind": "sftp", "forgotten": forgotten}


def _naive_like(value: datetime, like: datetime) -> datetime:
    """``value`` with or without a time zone, as ``like`` is; times without a zone are UTC."""
    if (value.tzinfo is None) == (like.tzinfo is None):
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(tzinfo=None)


# --- snapshot publication ----------------------------------------------------------

def publish_snapshot(settings: Settings) -> dict[str, int]:
    """Publish the analysts' snapshot again from the warehouse as it stands.

    ``warehouse_build`` already publishes after every build; the daily run
    repairs a snapshot that is missing or stale because a publication failed
    after its build committed.
    """
    from transforms.publish import publish

    return publish(settings)
