"""Person linkage on keyed encodings only: Splink scoring, guarded clustering, stable keys.

The matcher never sees a name, a birth date or an SSN. It receives, per field,
the word rows of ``transforms.encodings``; ``transforms.linkage_model`` hands
them to Splink 5 as keyed columns (Bloom filters as BIT, deletion tokens as
lists) on a scratch DuckDB connection:

1. Blocking — candidate pairs agree exactly on at least one blocking rule of
   ``linkage_settings.json`` (same birth date with a name near; same rare given
   and surname; same SSN; one-edit birth date with the same surname or given
   name and the other name near; swapped names; ...), each chosen so its pairs
   grow about linearly with the county; every run logs each rule's pairs.
2. Scoring — Splink's comparison levels (Dice on filters, shared deletion
   tokens, exact tokens) with m and u from the model: trained on the data
   (``leadhub linkage train``, or on the fly for ``leadhub link``) or the
   shipped default. The match weight includes the prior; names alone, without
   any date or identifier on both sides, never link.
3. Clustering (warehouse only) — pairs above the threshold are merged best
   first; a merge is refused when the two clusters hold conflicting SSNs, or
   two ids of one agency with conflicting birth dates. That guard is what
   stops a third record from chaining two different people together.

Person keys are stable: a cluster keeps the key its members had in the previous
build, and two clusters that both already carry keys are never merged (a key,
once handed to analysts, never changes meaning). A new cluster gets a key
derived from its smallest member token. Treatment clients take part only with
an active 42 CFR Part 2 consent, so a revoked consent drops the link at the
next build.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.exports import write_frame
from leadhub.core.errors import LeadHubError
from leadhub.core.warehouse import ENCODING_COLUMNS, TOKEN_COLUMNS, staging_columns, table_exists, utcnow
from transforms import linkage_model
from transforms.encodings import field_width, from_binary, from_text, load_settings
from transforms.linkage_model import Encoded
from transforms.linkage_store import default_model, version_of

log = logging.getLogger(__name__)

PERSON = TOKEN_COLUMNS["agency_person_id"]
DATE_DIGITS = linkage_model.DATE_DIGITS

__all__ = ["Encoded", "match_pairs", "one_to_one", "token_levels", "cluster_records", "link_people", "link_files"]


def token_levels(a: np.ndarray, b: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(missing, exact, near) for aligned rows of digit/date/exact tokens (the chain guard's test)."""
    missing = (a[:, 0] == 0) | (b[:, 0] == 0)
    exact = (a[:, 0] == b[:, 0]) & ~missing
    if kind == "exact":
        return missing, exact, np.zeros_like(exact)
    n = DATE_DIGITS if kind == "date" else a.shape[1] - 1
    da, db = a[:, 1:1 + n], b[:, 1:1 + n]
    nz = (da != 0) & (db != 0)
    near = ((da == db) & nz).any(axis=1)                                   # one substitution
    near |= ((da[:, 1:] == db[:, :-1]) & nz[:, 1:] & nz[:, :-1]).any(axis=1)  # adjacent transposition
    near |= (da == b[:, :1]).any(axis=1) | (db == a[:, :1]).any(axis=1)     # one insertion/deletion
    if kind == "date":
        near |= a[:, -1] == b[:, -1]                                       # day and month swapped
    return missing, exact, near & ~missing


def match_pairs(left: Encoded, right: Encoded | None, settings: dict | None = None,
                threshold: float | None = None, model: dict | None = None) -> pd.DataFrame:
    """Record-index pairs whose match weight reaches the threshold, with their weights.

    Without ``model`` one is trained on these records (or the priors are used
    when they are too few); ``match_model`` returns it as well.
    """
    return match_model(left, right, settings, threshold, model)[0]


def match_model(left: Encoded, right: Encoded | None, settings: dict | None = None,
                threshold: float | None = None, model: dict | None = None) -> tuple[pd.DataFrame, dict]:
    settings = settings or load_settings()
    pairs, model = linkage_model.match(left, right, settings, model, threshold)
    return pairs[["left", "right", "weight"]].reset_index(drop=True), model


def one_to_one(pairs: pd.DataFrame) -> pd.DataFrame:
    """Best-first assignment: each record in at most one pair (for linking two deduplicated files)."""
    pairs = pairs.sort_values(["weight", "left", "right"], ascending=[False, True, True], kind="stable")
    seen_l, seen_r, keep = set(), set(), []
    for idx, l, r in zip(pairs.index, pairs["left"].to_numpy(), pairs["right"].to_numpy()):
        if l not in seen_l and r not in seen_r:
            seen_l.add(l)
            seen_r.add(r)
            keep.append(idx)
    return pairs.loc[keep].sort_values(["left", "right"]).reset_index(drop=True)


# -- the warehouse: who is who across agencies ---------------------------------------------------

HUB_FIELDS = tuple(ENCODING_COLUMNS)
IDENTITY_BATCH_ROWS = 1 << 16  # Arrow batch of identity rows: a few tens of MB


def _identity_sql(contracts: dict[str, Contract], decode: bool) -> str | None:
    """Every agency id that carries identifiers, with its encodings (``decode``: as bytes)."""
    parts = []
    enc_cols = [ENCODING_COLUMNS[f] for f in HUB_FIELDS]
    for c in contracts.values():
        roles = {col.identifier for col in c.identifier_columns}
        if not ({"ssn"} & roles or {"last_name", "first_name", "dob"} <= roles):
            continue  # person id only (e.g. episodes): linked through the extract that names them
        cols = {name for name, _ in staging_columns(c)}
        select = ", ".join(e if e in cols else f"NULL AS {e}" for e in enc_cols)
        consent = "WHERE consent_status = 'active'" if c.part2 and "consent_status" in c.column_names else ""
        parts.append(f"SELECT DISTINCT '{c.agency}' AS agency, {PERSON} AS person_token, {select} "
                     f"FROM current.{c.name} {consent}")
    if not parts:
        return None
    if not decode:
        return " UNION ".join(parts) + " ORDER BY agency, person_token"
    # TRY: a malformed value becomes NULL, i.e. missing, as in ``from_text``.
    decoded = ", ".join(f"TRY(from_base64({e})) AS {e}" for e in enc_cols)
    return (f"SELECT agency, person_token, {decoded} FROM ({' UNION '.join(parts)}) "
            "ORDER BY agency, person_token")


def identity_rows(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract]) -> pd.DataFrame:
    sql = _identity_sql(contracts, decode=False)
    if sql is None:
        return pd.DataFrame(columns=["agency", "person_token", *[ENCODING_COLUMNS[f] for f in HUB_FIELDS]])
    return con.execute(sql).df()


def identities(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract],
               settings: dict) -> tuple[pd.DataFrame, Encoded]:
    """``identity_rows`` as (agency ids, their encodings), the same rows in the same order.

    At a million people the encodings are gigabytes: DuckDB decodes the base64 and hands
    them over as Arrow batches, read straight into word arrays, so neither a Python string
    per value nor the whole text table is ever held (``identity_rows`` + ``encoded_from_frame``
    held both and several copies of each column while decoding).
    """
    sql = _identity_sql(contracts, decode=True)
    if sql is None:
        return pd.DataFrame(columns=["agency", "person_token"]), encoded_from_frame(pd.DataFrame(), settings)
    ids: dict[str, list] = {"agency": [], "person_token": []}
    parts: dict[str, list] = {f: [] for f in HUB_FIELDS}
    for batch in con.sql(sql).to_arrow_reader(IDENTITY_BATCH_ROWS):
        for col in ids:
            ids[col].append(batch.column(col))
        for f in HUB_FIELDS:
            parts[f].append(from_binary(batch.column(ENCODING_COLUMNS[f]), field_width(settings, f)))
    fields = {}
    for f in HUB_FIELDS:  # one field's batches and its whole array at a time
        chunks = parts.pop(f)
        fields[f] = np.concatenate(chunks) if chunks else np.zeros((0, field_width(settings, f)), np.uint64)
        del chunks
    frame = pd.DataFrame({col: np.concatenate([c.to_numpy(zero_copy_only=False) for c in chunks])
                          if chunks else np.empty(0, dtype=object) for col, chunks in ids.items()})
    return frame, Encoded(fields, len(frame))


def encoded_from_frame(frame: pd.DataFrame, settings: dict) -> Encoded:
    fields = {}
    for f in HUB_FIELDS:
        col = ENCODING_COLUMNS[f]
        fields[f] = from_text(frame[col].tolist() if col in frame else [None] * len(frame),
                             field_width(settings, f))
    return Encoded(fields, len(frame))


class _Clusters:
    """Union-find over agency ids that refuses merges the chaining guard forbids."""

    def __init__(self, nodes: list[tuple], ssn: dict, dob: dict, previous: dict, settings: dict):
        self.parent = {n: n for n in nodes}
        self.ssn = {n: set(ssn.get(n, ())) for n in nodes}                  # root -> {ssn rows}
        self.dob = {n: {(n[0], n[1]): set(dob.get(n, ()))} for n in nodes}  # root -> {(agency, id): {dob rows}}
        self.old = {n: ({previous[n]} if n in previous else set()) for n in nodes}
        self.guard = settings.get("chain_guard", {})
        self.refused = 0

    def find(self, x):
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    @staticmethod
    def _conflict(rows_a: set, rows_b: set, kind: str) -> bool:
        if not rows_a or not rows_b:
            return False
        a = np.array([r for r in rows_a for _ in rows_b], dtype=np.uint64)
        b = np.array([r for _ in rows_a for r in rows_b], dtype=np.uint64)
        missing, exact, near = token_levels(a, b, kind)
        return bool((~missing & ~exact & ~near).any())

    def join(self, a, b) -> None:
        """Merge without the guard: for agency ids the previous build already put together."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, gone = min(ra, rb), max(ra, rb)
            self.parent[gone] = keep
            self.ssn[keep] |= self.ssn.pop(gone)
            self.dob[keep].update(self.dob.pop(gone))
            self.old[keep] |= self.old.pop(gone)

    def union(self, a, b) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.old[ra] and self.old[rb] and self.old[ra] != self.old[rb]:
            self.refused += 1
            return False  # both already published under different keys: keys never change
        # Any two different SSNs conflict, even one digit apart: a wrong merge is worse than a split.
        if self.guard.get("ssn_conflict", True) and self._conflict(self.ssn[ra], self.ssn[rb], "exact"):
            self.refused += 1
            return False
        if self.guard.get("same_agency_dob_conflict", True):
            for (agency, pid), dobs in self.dob[ra].items():
                for (agency2, pid2), dobs2 in self.dob[rb].items():
                    if agency == agency2 and pid != pid2 and self._conflict(dobs, dobs2, "date"):
                        self.refused += 1
                        return False
        self.join(ra, rb)
        return True


def _previous_links(con: duckdb.DuckDBPyConnection) -> dict:
    if not table_exists(con, "core", "person_link"):
        return {}
    return {(a, t): k for a, t, k in con.execute(
        "SELECT agency, person_token, person_key FROM core.person_link").fetchall()}


def _drop_ambiguous(pairs: pd.DataFrame, nodes_of_row: list, ssn: dict, margin: float) -> pd.DataFrame:
    """Drop every pair of a record whose near-best partners carry different SSNs.

    A record without an SSN that matches John Smith (SSN A) and John Smith
    (SSN B) about equally well cannot say which one it is; linking it to either
    is a coin toss, so it stays alone.
    """
    if pairs.empty:
        return pairs
    both = pd.concat([pairs.rename(columns={"left": "me", "right": "other"}),
                      pairs.rename(columns={"right": "me", "left": "other"})], ignore_index=True)
    both["ssn"] = [next(iter(ssn[nodes_of_row[o]]))[0] if len(ssn.get(nodes_of_row[o], ())) == 1 else
                   (-1 if ssn.get(nodes_of_row[o]) else 0) for o in both["other"].to_numpy()]
    best = both.groupby("me")["weight"].transform("max")
    near = both[(both["weight"] >= best - margin) & (both["ssn"] != 0)]
    ambiguous = near.groupby("me")["ssn"].nunique()
    ambiguous = set(ambiguous[ambiguous > 1].index)
    if not ambiguous:
        return pairs
    keep = ~(pairs["left"].isin(ambiguous) | pairs["right"].isin(ambiguous))
    return pairs[keep]


def _hand_over_keys(members: dict[tuple, list], previous: dict) -> dict[tuple, str]:
    """Person key per cluster root, in one pass over the agency ids (linear in persons).

    A previous key stays with the cluster holding most of its former members
    (ties: the cluster with the smallest member); a cluster owning several
    keys keeps the smallest. A cluster without one gets ``pk_`` + a hash of its
    smallest member, never a key used before.
    """
    owner: dict[str, tuple] = {}  # key -> (-former members, smallest member, root): the best claim
    for root, group in members.items():
        for k, count in Counter(previous[n] for n in group if n in previous).items():
            claim = (-count, group[0], root)
            if k not in owner or claim < owner[k]:
                owner[k] = claim
    owned: dict[tuple, str] = {}
    for k, (_, _, root) in owner.items():
        if root not in owned or k < owned[root]:
            owned[root] = k
    used = set(previous.values())
    key_of_root = {}
    for root, group in sorted(members.items(), key=lambda kv: kv[1][0]):
        if root in owned:
            key_of_root[root] = owned[root]
            continue
        seed = "|".join(group[0])
        key = "pk_" + hashlib.sha256(seed.encode()).hexdigest()[:20]
        n = 0
        while key in used:
            n += 1
            key = "pk_" + hashlib.sha256(f"{seed}|{n}".encode()).hexdigest()[:20]
        used.add(key)
        key_of_root[root] = key
    return key_of_root


def cluster_records(rows: pd.DataFrame, previous: dict, settings: dict,
                    model: dict | None = None, enc: Encoded | None = None) -> tuple[dict, dict]:
    """Identity rows -> {(agency, person_token): person_key}, plus counts for the build log.

    ``model``: the linkage model to score with (default: the shipped default model).
    ``enc``: the rows' encodings when already decoded (``identities``); else read from ``rows``.
    """
    enc = enc if enc is not None else encoded_from_frame(rows, settings)
    nodes_of_row = list(zip(rows["agency"], rows["person_token"]))
    nodes = sorted(set(nodes_of_row))
    ssn, dob = defaultdict(set), defaultdict(set)
    for r, node in enumerate(nodes_of_row):
        if enc.fields["ssn"][r, 0]:
            ssn[node].add(tuple(int(x) for x in enc.fields["ssn"][r]))
        if enc.fields["dob"][r, 0]:
            dob[node].add(tuple(int(x) for x in enc.fields["dob"][r]))
    clusters = _Clusters(nodes, ssn, dob, previous, settings)
    # What the previous build linked stays linked (keys never change meaning), including rows
    # loaded before similarity encodings existed, which carry none.
    first_of_key: dict[str, tuple] = {}
    for node in nodes:
        if node in previous:
            clusters.join(first_of_key.setdefault(previous[node], node), node)

    pairs = match_pairs(enc, None, settings, model=model or default_model())
    pairs = _drop_ambiguous(pairs, nodes_of_row, ssn, settings.get("ambiguity_margin", 3.0))
    pairs = pairs.sort_values(["weight", "left", "right"], ascending=[False, True, True], kind="stable")
    merged = 0
    for i, j in zip(pairs["left"].to_numpy(), pairs["right"].to_numpy()):
        a, b = nodes_of_row[i], nodes_of_row[j]
        if a != b and clusters.find(a) != clusters.find(b) and clusters.union(a, b):
            merged += 1

    members: dict[tuple, list] = defaultdict(list)
    for node in nodes:  # nodes are sorted, so each group's first member is its smallest
        members[clusters.find(node)].append(node)
    key_of_root = _hand_over_keys(members, previous)
    keys = {node: key_of_root[root] for root, group in members.items() for node in group}
    return keys, {"candidate_pairs_above_threshold": len(pairs), "merges": merged,
                  "merges_refused": clusters.refused}


def _require_one_key(con: duckdb.DuckDBPyConnection) -> None:
    """Tokens of two keys never match: linking across them would silently split every person."""
    key_ids = sorted(k for (k,) in con.execute("SELECT DISTINCT key_id FROM ops.batches").fetchall())
    if len(key_ids) > 1:
        raise LeadHubError(f"staging holds batches pseudonymized under {len(key_ids)} keys "
                           f"({', '.join(key_ids)}): a delivery was taken under another key than the "
                           "rest (e.g. during a key rotation); run 'leadhub rotate-key' again with the "
                           "old and the new key file, then build")


def link_people(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract] | None = None,
                settings: dict | None = None, model: dict | None = None) -> dict[str, int | str]:
    """Rebuild core.person_link(agency, person_token, person_key) inside the caller's transaction.

    Scores with ``model`` (the data directory's current model, passed by the
    build; the shipped default when None) and never trains. The model version
    is returned and recorded in ``ops.linkage_runs`` with the counts.
    """
    contracts = contracts or load_contracts()
    settings = settings or load_settings()
    model = model or default_model()
    _require_one_key(con)
    rows, enc = identities(con, contracts, settings)
    keys, stats = cluster_records(rows, _previous_links(con), settings, model, enc)
    del rows, enc
    link = pd.DataFrame([(a, t, k) for (a, t), k in keys.items()], columns=["agency", "person_token", "person_key"])
    con.execute("CREATE OR REPLACE TABLE core.person_link (agency VARCHAR NOT NULL, "
                "person_token VARCHAR NOT NULL, person_key VARCHAR NOT NULL, PRIMARY KEY (agency, person_token))")
    con.register("new_links", link)
    con.execute("INSERT INTO core.person_link SELECT agency, person_token, person_key FROM new_links "
                "ORDER BY person_key, agency, person_token")
    con.unregister("new_links")
    counts = {"agency_ids": len(link), "persons": int(link["person_key"].nunique()) if len(link) else 0,
              "merges_refused": stats["merges_refused"]}
    _record_run(con, version_of(model), settings.get("version"), counts)
    log.info("linkage model %s, settings %s: %s", version_of(model), settings.get("version"), stats)
    return {**counts, "model": version_of(model)}


def _record_run(con: duckdb.DuckDBPyConnection, model_version: str, settings_version: str | None,
                counts: dict) -> None:
    """Which model linked the warehouse, in the build's transaction.

    A row is added when the model, the settings or the outcome differ from the
    last row, so rebuilding unchanged data changes no table (builds are
    idempotent) while every change of model stays on record with its date.
    """
    con.execute("CREATE TABLE IF NOT EXISTS ops.linkage_runs (linked_at TIMESTAMP NOT NULL, "
                "model_version VARCHAR NOT NULL, settings_version VARCHAR, agency_ids BIGINT NOT NULL, "
                "persons BIGINT NOT NULL, merges_refused BIGINT NOT NULL)")
    state = (model_version, settings_version, counts["agency_ids"], counts["persons"], counts["merges_refused"])
    last = con.execute("SELECT model_version, settings_version, agency_ids, persons, merges_refused "
                       "FROM ops.linkage_runs ORDER BY linked_at DESC LIMIT 1").fetchall()
    if last and tuple(last[0]) == state:
        return
    con.execute("INSERT INTO ops.linkage_runs VALUES (?, ?, ?, ?, ?, ?)", [utcnow(), *state])


def last_linkage_run(con: duckdb.DuckDBPyConnection) -> tuple[str, datetime] | None:
    """(model version, linked at) of the last row of ops.linkage_runs; None before any build recorded one."""
    if not table_exists(con, "ops", "linkage_runs"):
        return None
    row = con.execute("SELECT model_version, linked_at FROM ops.linkage_runs "
                      "ORDER BY linked_at DESC LIMIT 1").fetchall()
    return (row[0][0], row[0][1]) if row else None


# -- any two files (the ``leadhub link`` command) ------------------------------------------------

def link_files(left_csv, right_csv, mapping: dict, out_csv, similarity_key: bytes,
               threshold: float | None = None, best_only: bool = False, delimiter: str = ",",
               settings: dict | None = None) -> dict[str, int]:
    """Link two CSV files (or deduplicate one) and write record-id pairs with their scores.

    Clear text lives only inside ``_encode_file``: each file is read, its mapped
    columns are encoded with ``similarity_key`` and the frame is dropped before
    matching starts, so the matcher sees keyed encodings and nothing else.
    """
    from transforms.encodings import Encoder, read_mapping

    settings = settings or load_settings()
    id_col, fields = read_mapping(mapping)
    if not fields:
        raise ValueError("the column mapping names no fields to compare")
    encoder = Encoder(similarity_key, settings)
    left_ids, left = _encode_file(left_csv, id_col, fields, encoder, delimiter)
    right_ids, right = (None, None) if right_csv is None else _encode_file(right_csv, id_col, fields,
                                                                           encoder, delimiter)
    pairs = match_pairs(left, right, settings, threshold)
    if best_only:
        pairs = one_to_one(pairs) if right is not None else pairs
    result = pd.DataFrame({
        "left_id": left_ids[pairs["left"].to_numpy()],
        "right_id": (right_ids if right is not None else left_ids)[pairs["right"].to_numpy()],
        "score": pairs["weight"].round(3).to_numpy(),
    }).sort_values(["score", "left_id", "right_id"], ascending=[False, True, True])
    write_frame(out_csv, result)  # record ids come from the caller's files: escape formula cells
    return {"left_records": left.n, "right_records": right.n if right is not None else 0,
            "pairs": len(result)}


def _encode_file(path, id_col, fields, encoder, delimiter) -> tuple[np.ndarray, Encoded]:
    from transforms.encodings import encode_frame

    frame = pd.read_csv(path, dtype="string", sep=delimiter, keep_default_na=False)
    if id_col is not None and id_col not in frame.columns:
        raise ValueError(f"id column {id_col!r} is not in {path}")
    ids = (frame[id_col].to_numpy(dtype=object) if id_col is not None
           else np.arange(1, len(frame) + 1))
    encoded = Encoded(encode_frame(frame, fields, encoder), len(frame))
    del frame
    return ids, encoded
