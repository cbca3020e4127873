"""Sealing and expungement orders: remove an agency's records from every store the hub keeps.

``seal`` takes an order (reference, agency, the agency's record ids and/or person ids) and,
all or nothing: checks every id names rows the hub holds and every archived original can be
rewritten (csv, tsv, jsonl or xlsx: ``leadhub.core.redact.rewrite_original``), then writes the
new archive files beside the old ones; with a ``started`` audit entry written, in one warehouse
transaction deletes the rows from staging, remembers the order as keyed tokens
(``ops.sealed_records``, see leadhub/core/sealed.py), notes the redacted row counts in the
ledger and rebuilds linkage, ``core.*`` (``record_history`` included) and the marts; then
swaps the rewritten archive files in, republishes the snapshot, and rebuilds the report and
the crosswalk when they exist, and writes the ``done`` entry. The ids exist only while the
command runs; ``verify`` takes them again and scans every store for them and for the person
tokens they yield. Intake drops and redacts re-deliveries itself (``leadhub.core.sealed``).

A record id names the first primary-key column of the agency's extracts (an arrest or
referral number); a person id is the agency's person number. Unsealing is a new delivery.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import duckdb

from leadhub.core.archive import MAGIC as ARCHIVE_MAGIC, decrypt_to
from leadhub.core.audit import append_audit, required_reason, started_and_done
from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.errors import LeadHubError
from leadhub.core.files import atomic_write_bytes, replace_durably, transaction
from leadhub.core.keys import MasterKey
from leadhub.core.readers import XLSX_MAX_UNCOMPRESSED
from leadhub.core.redact import (REDACTABLE_FORMATS, compact_warehouse, encrypt_bytes, person_column, record_column,
                                 remove_records, renumber_rows, rewrite_original)
from leadhub.core.sealed import (PERSON, RECORD, earlier_seal_keys, quoting_columns, seal_token, sealed_tokens,
                                 token_function)
from leadhub.core.settings import Settings
from leadhub.core.warehouse import TOKEN_COLUMNS, connect, staging_key, utcnow

ORDER_COLUMNS = ("record_id", "person_id")


@dataclass(frozen=True)
class SealOrder:
    reference: str
    agency: str
    records: tuple[str, ...] = ()
    persons: tuple[str, ...] = ()


def read_order_file(path: Path, reference: str, agency: str) -> SealOrder:
    """An order file: CSV with a header naming ``record_id`` and/or ``person_id``, one id a row."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, strict=True))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LeadHubError(f"{path.name}: rule 'order_file' failed: cannot be read as UTF-8 CSV "
                           f"({type(e).__name__})") from None
    while rows and not rows[-1]:
        rows.pop()  # blank lines at the end, as an editor leaves them (one inside is still refused)
    if not rows:
        raise LeadHubError(f"{path.name}: rule 'order_file' failed: empty file")
    header = [h.strip().lstrip("\ufeff") for h in rows[0]]
    if not header or any(h not in ORDER_COLUMNS for h in header) or len(set(header)) != len(header):
        raise LeadHubError(f"{path.name}: row 1: rule 'order_header' failed: the header must name "
                           f"{' and/or '.join(ORDER_COLUMNS)}")
    records, persons = [], []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise LeadHubError(f"{path.name}: row {n}: rule 'ragged_row' failed: {len(row)} fields "
                               f"where the header has {len(header)}")
        cells = dict(zip(header, (c.strip() for c in row)))
        if not any(cells.values()):
            raise LeadHubError(f"{path.name}: row {n}: rule 'not_null' failed: no id on the row")
        if cells.get("record_id"):
            records.append(cells["record_id"])
        if cells.get("person_id"):
            persons.append(cells["person_id"])
    return SealOrder(reference, agency, tuple(records), tuple(persons))


def _person_token(key: MasterKey, agency: str, person_id: str) -> str:
    from transforms.pseudonymize import Pseudonymizer
    return Pseudonymizer(key).person_id_token(agency, person_id)


def _agency_contracts(order: SealOrder) -> list[Contract]:
    if not order.reference or not order.reference.strip():
        raise LeadHubError("the order needs a reference (--order)")
    found = [c for c in load_contracts().values() if c.agency == order.agency]
    if not found:
        raise LeadHubError(f"order {order.reference}: unknown agency {order.agency!r} (no contract names it)")
    if not order.records and not order.persons:
        raise LeadHubError(f"order {order.reference}: names no record and no person")
    return found


def _targets(con, contracts: list[Contract], order: SealOrder, person_tokens: list[str],
             sealed_before: set[str] = frozenset()) -> dict:
    """{contract name: (staging keys, [(batch id, row number)])} of the records the order names,
    every version of them in every batch; refuses an id that names no row the hub holds, unless
    an order sealed it before (``sealed_before``: the ids and person tokens already sealed), so
    that an order cut short after its commit can be run again to finish the files."""
    person = TOKEN_COLUMNS["agency_person_id"]
    hits: dict[str, tuple[list[tuple], list[tuple[str, int]]]] = {}
    seen_records, seen_persons = set(), set()
    for c in contracts:
        conditions, params = [], []
        column = record_column(c)
        if column and order.records:
            conditions.append(f'"{column}"::VARCHAR IN (SELECT unnest(?::VARCHAR[]))')
            params.append(list(order.records))
        has_person = person_column(c) is not None
        if has_person and person_tokens:
            conditions.append(f"{person} IN (SELECT unnest(?::VARCHAR[]))")
            params.append(person_tokens)
        if not conditions:
            continue
        key = [f'"{k}"' for k in staging_key(c)]
        same = " AND ".join(f"s.{k}::VARCHAR = m.{k}::VARCHAR" for k in key)
        record_sql = f's."{column}"::VARCHAR' if column else "NULL"
        person_sql = f"s.{person}" if has_person else "NULL"
        # Every version of every record a row names, with its ids (the WHERE runs once).
        found = con.execute(
            f"WITH m AS (SELECT DISTINCT {', '.join(key)} FROM staging.{c.name} WHERE {' OR '.join(conditions)}) "
            f"SELECT s._batch_id, s._row_number, {record_sql}, {person_sql}, {', '.join(f's.{k}' for k in key)} "
            f"FROM staging.{c.name} s WHERE EXISTS (SELECT 1 FROM m WHERE {same})", params).fetchall()
        if not found:
            continue
        seen_records |= {r[2] for r in found}
        seen_persons |= {r[3] for r in found}
        keys = list(dict.fromkeys(tuple(r[4:]) for r in found))
        hits[c.name] = (keys, [(r[0], r[1]) for r in found])
    for i, rid in enumerate(order.records, start=1):
        if rid not in seen_records and rid not in sealed_before:
            raise LeadHubError(f"order {order.reference}: record #{i} of the order: no {order.agency} "
                               "record has this id; nothing was sealed")
    for i, tok in enumerate(person_tokens, start=1):
        if tok not in seen_persons and tok not in sealed_before:
            raise LeadHubError(f"order {order.reference}: person #{i} of the order: no {order.agency} "
                               "record has this person id; nothing was sealed")
    return hits


def _decrypt(path: Path, key: MasterKey) -> bytes:
    buf = io.BytesIO()
    decrypt_to(path, buf, key)
    return buf.getvalue()


@dataclass(frozen=True)
class _Rewrite:
    file_id: str
    contract: str
    original: Path        # the archived original or the quarantined file
    target: Path          # its rewrite, swapped in once the warehouse has committed
    cut: tuple[int, ...]  # the row numbers removed
    archived: bool
    blanked: int = 0      # cells of another agency's file that quoted a sealed record's id


def _quoting(order: SealOrder, ids: set[str]) -> dict[str, str]:
    """{contract: column} of other agencies' extracts quoting the order's record ids (a jail
    booking's arrest number; ``leadhub.core.sealed.quoting_columns``). Refuses a column that may
    not be empty, since blanking it would make the original unreadable."""
    contracts = load_contracts()
    quoting = {}
    for c in contracts.values() if ids else ():
        for name in quoting_columns(c, order.agency, contracts):
            if not c.column(name).nullable:
                raise LeadHubError(f"order {order.reference}: {c.name}.{name} quotes {order.agency} "
                                   "record ids and may not be empty, so it cannot be blanked; nothing was sealed")
            quoting[c.name] = name
    return quoting


def _prepare_rewrites(settings, key, con, contracts, hits, order: SealOrder, quoting: dict[str, str],
                      quoted: set[str], committed: bool = False) -> list[_Rewrite]:
    """Rewrite, beside the old one, every archived original and quarantined file of the agency
    that holds a sealed row, and of the agencies quoting a sealed record id (that cell blanked).
    Refuses (before anything changed, naming the file and rule) a file holding the order's ids
    that cannot be rewritten row by row. ``committed``: the order's tokens are stored already, so
    a rewrite left beside its original by a run cut short after its commit is swapped in as it is
    (the staging rows were renumbered for it then)."""
    every = load_contracts()
    contracts = [*contracts, *(every[n] for n in quoting)]
    by_extract = {(c.agency, c.extract): c for c in contracts}
    staged: dict[str, set[int]] = defaultdict(set)
    for name, (_, rows) in hits.items():
        files = dict(con.execute("SELECT batch_id, file_id FROM ops.batches WHERE batch_id IN "
                                 "(SELECT unnest(?::VARCHAR[]))", [sorted({b for b, _ in rows})]).fetchall())
        for b, n in rows:
            staged[files[b]].add(n)
    agencies = sorted({c.agency for c in contracts})
    ledger = con.execute("SELECT file_id, agency, extract, archive_path FROM ops.file_ledger WHERE agency IN "
                         "(SELECT unnest(?::VARCHAR[]))", [agencies]).fetchall()
    places = [(f, by_extract.get((g, x)), settings.data_dir / a, True) for f, g, x, a in ledger if a]
    extracts = {f: by_extract.get((g, x)) for f, g, x, _ in ledger}
    for agency in agencies:
        qdir = settings.quarantine_dir / agency
        for path in sorted(qdir.iterdir()) if qdir.exists() else ():
            file_id = path.name.split("__", 1)[0]
            if path.is_file() and "__" in path.name and not path.name.endswith((".reason.json", ".sealed")):
                places.append((file_id, extracts.get(file_id), path, False))
    needles = _pattern([*order.records, *order.persons, *quoted])
    records, persons = set(order.records), set(order.persons)
    prepared: list[_Rewrite] = []
    try:
        for file_id, contract, path, archived in places:
            if not path.exists():
                continue
            target = path.with_name(path.name + ".sealed")
            if committed and target.exists() and contract is not None:
                prepared.append(_Rewrite(file_id, contract.name, path, target, (), archived))
                continue
            plain = _decrypt(path, key) if archived else path.read_bytes()
            if not staged.get(file_id) and not needles.search(searchable(plain)):
                continue
            where = f"{'archived original' if archived else 'quarantined file'} {file_id}"
            if contract is not None and contract.agency != order.agency and contract.name not in quoting:
                continue
            if contract is None or contract.format.type not in REDACTABLE_FORMATS:
                raise LeadHubError(f"{where}: rule 'redaction' failed: holds an id the order names and "
                                   "cannot be rewritten row by row; nothing was sealed")
            try:
                own = contract.agency == order.agency
                new, cut, blanked = rewrite_original(
                    plain, contract, staged.get(file_id, set()) if own else set(), records if own else set(),
                    persons if own else set(), None if own else {quoting[contract.name]: quoted})
            except ValueError:
                raise LeadHubError(f"{where}: rule 'redaction' failed: cannot be parsed as "
                                   f"{contract.format.type}; nothing was sealed") from None
            if not set(staged.get(file_id, ())) <= set(cut):
                raise LeadHubError(f"{where}: rule 'redaction' failed: its rows do not match the "
                                   "warehouse's; nothing was sealed")
            if not cut and not blanked:
                continue
            if archived:
                encrypt_bytes(new, target, key)  # the plaintext never touches a disk
            else:
                atomic_write_bytes(target, new)
            prepared.append(_Rewrite(file_id, contract.name, path, target, cut, archived, blanked))
    except BaseException:
        for r in prepared:
            r.target.unlink(missing_ok=True)
        raise
    return prepared


def seal(settings: Settings, key: MasterKey, order: SealOrder, reason: str, who: str,
         renew: bool = False) -> dict[str, int]:
    """Carry out a sealing or expungement order everywhere; returns counts (no identifiers).

    Audited as a pair (``leadhub.core.audit.started_and_done``): ``started`` before anything
    changes, ``done`` with the counts once every store is sealed, ``failed`` otherwise.
    A person order also remembers the person's record ids (as record tokens), which stay
    sealed across key rotations. ``renew`` enters an order again after ``rotate-key``, whose
    new key no longer yields the stored person tokens: ids that match nothing any more are
    accepted, and the order's tokens are stored under the current key.
    """
    from transforms.link import link_people
    from transforms.linkage_store import current_model
    from transforms.model import run_models
    from transforms.publish import publish

    reason = required_reason(reason, "seal")
    contracts = _agency_contracts(order)
    person_tokens = [_person_token(key, order.agency, p) for p in order.persons]
    model = current_model(settings.data_dir)
    record_tokens = [token_function(k, order.agency, RECORD)
                     for k in (key.subkey("seal"), *earlier_seal_keys(settings, key).values())]
    # The audit pair opens once the order is checked and its rewrites are ready, and closes
    # after the crosswalk and report are rebuilt (they need the warehouse connection closed).
    with ExitStack() as audited:
        with connect(settings.warehouse_path) as con:
            already = sealed_tokens(con, order.agency)
            sealed_before = ({r for r in order.records if any(t(r) in already for t in record_tokens)}
                             | {t for t in person_tokens if seal_token(key, order.agency, PERSON, t) in already})
            if renew:
                sealed_before = set(order.records) | set(person_tokens)
            hits = _targets(con, contracts, order, person_tokens, sealed_before)
            # The sealed records' ids, also those of a sealed person's records, as other agencies quote them.
            quoted = set(order.records) | {str(k[0]) for c in contracts if record_column(c) and c.name in hits
                                           for k in hits[c.name][0]}
            quoting = _quoting(order, quoted)
            now, order_token = utcnow(), seal_token(key, order.agency, "order", order.reference)
            tokens = ([record_tokens[0](r) for r in sorted(quoted)]
                      + [seal_token(key, order.agency, PERSON, t) for t in person_tokens])
            committed = not renew and set(tokens) <= already
            prepared = _prepare_rewrites(settings, key, con, contracts, hits, order, quoting, quoted, committed)
            rows = sum(len(r) for _, r in hits.values())
            removed: dict[str, int] = defaultdict(int)
            try:
                done = audited.enter_context(started_and_done(
                    settings, who=who, action="seal", reason=reason, order=order.reference, agency=order.agency,
                    records=len(order.records), persons=len(order.persons)))
                with transaction(con):
                    for c in contracts:
                        if c.name in hits:
                            for table, n in remove_records(con, c, hits[c.name][0]).items():
                                removed[table] += n
                    for name, column in quoting.items():  # other agencies' quotes of a sealed record id
                        (n,) = con.execute(f'UPDATE staging.{name} SET "{column}" = NULL WHERE "{column}"::VARCHAR '
                                           "IN (SELECT unnest(?::VARCHAR[]))", [sorted(quoted)]).fetchall()[0]
                        if n:
                            removed[f"blanked.staging.{name}.{column}"] += n
                    fresh = [[order_token, order.agency, t, now] for t in dict.fromkeys(tokens) if t not in already]
                    if fresh:
                        con.executemany("INSERT INTO ops.sealed_records VALUES (?, ?, ?, ?)", fresh)
                    for r in filter(lambda r: r.archived and r.cut, prepared):
                        con.execute("UPDATE ops.file_ledger SET redacted_rows = coalesce(redacted_rows, 0) + ?, "
                                    "updated_at = ? WHERE file_id = ?", [len(r.cut), now, r.file_id])
                        batches = [b for (b,) in con.execute("SELECT batch_id FROM ops.batches WHERE file_id = ?",
                                                             [r.file_id]).fetchall()]
                        renumber_rows(con, r.contract, batches, r.cut)
                    link_people(con, model=model)
                    run_models(con)
            except BaseException:
                # Before the commit a rewrite is never used (after it, running the same order again
                # swaps in the rewrites left beside their originals: ``committed``).
                for r in prepared:
                    r.target.unlink(missing_ok=True)
                raise
            for r in prepared:
                replace_durably(r.target, r.original)
            publish(settings, con)
        compact_warehouse(settings.warehouse_path)  # the deleted rows' bytes leave the file too
        _refresh_derived(settings, key)
        done.update(rows=rows, files=len(prepared), tokens=len(fresh))
    return {"rows": rows, "tokens": len(tokens),
            "files_rewritten": sum(r.archived for r in prepared),
            "quarantined_rewritten": sum(not r.archived for r in prepared),
            "cells_blanked_in_files": sum(r.blanked for r in prepared),
            **{f"removed.{t}": n for t, n in removed.items()}}


def _refresh_derived(settings: Settings, key: MasterKey) -> None:
    """Rebuild the report, the Justice Counts files and the crosswalk, where they exist, from the
    sealed stores: the counts waiting to be sent must not include sealed records either."""
    from transforms.crosswalk import build_crosswalk, crosswalk_path
    from transforms.justice_counts import steward_folder, write_justice_counts

    if settings.reports_dir.exists() and any(settings.reports_dir.iterdir()):
        from transforms.report import write_report  # only where a report was written before

        write_report(settings)
    if steward_folder(settings).exists():
        with connect(settings.warehouse_path, read_only=True) as con:
            write_justice_counts(con, steward_folder(settings), utcnow().date())
    if crosswalk_path(settings).exists():
        build_crosswalk(settings, key)


# --- verify -----------------------------------------------------------------------------------

def _scan_duckdb(con: duckdb.DuckDBPyConnection, needles: list[str]) -> dict[str, int]:
    """{schema.table.column: rows} holding any needle as a whole word (``A1`` in ``A1|2``, not in
    ``A10``), over every column of every table."""
    found = {}
    alternatives = "|".join(re.escape(n) for n in needles)
    regex = rf"(^|[^A-Za-z0-9_-])({alternatives})($|[^A-Za-z0-9_-])"
    columns = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                          "WHERE database_name = current_database() AND NOT internal").fetchall()
    views = {(s, t) for s, t in con.execute("SELECT schema_name, view_name FROM duckdb_views() "
                                            "WHERE database_name = current_database()").fetchall()}
    for schema, table, column in columns:
        if (schema, table) in views:
            continue
        (n,) = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" '
                           f'WHERE regexp_matches("{column}"::VARCHAR, ?)', [regex]).fetchone()
        if n:
            found[f"{schema}.{table}.{column}"] = n
    return found


def searchable(data: bytes) -> bytes:
    """The bytes to scan for ids: a zip (an .xlsx workbook) unpacked, since its cells are
    compressed; any other file as it is. A zip too large to unpack is scanned as it is."""
    if not data.startswith(b"PK\x03\x04"):
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > XLSX_MAX_UNCOMPRESSED:
                return data
            return b"\n".join(z.read(i) for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return data


def _pattern(needles: list[str]) -> re.Pattern:
    alternatives = "|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])".encode())


def verify(settings: Settings, key: MasterKey, order: SealOrder, who: str) -> dict[str, int]:
    """Scan every store for the order's ids and person tokens; {store/place: hits}, empty when sealed.

    The warehouse and the published snapshot are searched table by table, column by column;
    every other file under the data directory byte by byte: archived originals (of every
    agency) and the crosswalk decrypted in memory, the rest (quarantine, reports, inboxes,
    Data Docs, state) as they are. A file that cannot be decrypted is a finding too: it was
    not proven clean. Findings name places and counts, never the ids.
    """
    from transforms.crosswalk import crosswalk_path, crosswalk_plaintext
    from transforms.publish import snapshot_path

    _agency_contracts(order)
    # The scan decrypts every archived original: a steward action like any decryption.
    append_audit(settings, who=who, action="seal-verify", reason=f"verify order {order.reference}",
                 order=order.reference, agency=order.agency)
    person_tokens = [_person_token(key, order.agency, p) for p in order.persons]
    needles = [*order.records, *order.persons, *person_tokens]
    pattern = _pattern(needles)
    findings: dict[str, int] = defaultdict(int)
    with connect(settings.warehouse_path) as con:
        for place, n in _scan_duckdb(con, needles).items():
            findings[f"warehouse:{place}"] += n
    snapshot, crosswalk = snapshot_path(settings), crosswalk_path(settings)
    if snapshot.exists():
        with duckdb.connect(str(snapshot), read_only=True) as snap:
            for place, n in _scan_duckdb(snap, needles).items():
                findings[f"snapshot:{place}"] += n
    skip = {settings.warehouse_path, settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal"),
            snapshot}
    for path in sorted(settings.data_dir.rglob("*")):
        if path in skip or not path.is_file():
            continue
        place = str(path.relative_to(settings.data_dir))
        try:
            if path == crosswalk:
                data, place = crosswalk_plaintext(settings, key), "crosswalk"
            else:
                with open(path, "rb") as f:
                    archived = f.read(len(ARCHIVE_MAGIC)) == ARCHIVE_MAGIC
                data = _decrypt(path, key) if archived else path.read_bytes()
                place = f"{'archive' if archived else 'file'}:{place}"
        except LeadHubError:
            findings[f"unreadable:{place}"] += 1
            continue
        if n := len(pattern.findall(searchable(data))):
            findings[place] += n
    return dict(findings)
