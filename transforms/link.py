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
from array import array
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
from transforms.linkage_model import Encoded, filter_digest
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
    """Union-find over agency ids (indices into the sorted ids) that refuses merges the chaining
    guard forbids.

    A cluster's root is its smallest member. Per root the guard needs the cluster's SSN state
    (0: none, ``v`` > 0: every SSN of the cluster is value ``v``, -1: several values) and its
    previous key (0: none, else an id); members are a ring (``next``) walked for the birth-date
    test. Arrays of 8-byte ints rather than a set and a dict per id: at a million people those
    were gigabytes. ``array`` rather than numpy: the merge loop reads single values, which
    ``array`` hands out as plain ints, much faster than numpy scalars.
    """

    def __init__(self, agency: np.ndarray, ssn: np.ndarray, old: np.ndarray,
                 dob: tuple[np.ndarray, np.ndarray, np.ndarray], settings: dict):
        n = len(agency)
        self.parent, self.next = _ints(np.arange(n)), _ints(np.arange(n))
        self.agency, self.ssn, self.old = _ints(agency), _ints(ssn), _ints(old)
        # Id i's birth dates: rows dob_words[dob_value[dob_start[i]:dob_start[i + 1]]].
        self.dob_start, self.dob_value, self.dob_words = _ints(dob[0]), dob[1], dob[2]
        self.guard = settings.get("chain_guard", {})
        self.refused = 0

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def members(self, root: int) -> list[int]:
        out, x = [root], self.next[root]
        while x != root:
            out.append(x)
            x = self.next[x]
        return out

    def _dob_conflict(self, ra: int, rb: int) -> bool:
        """Two ids of one agency, one in each cluster, with birth dates neither equal nor near."""
        dated = [m for m in self.members(ra) if self.dob_start[m + 1] > self.dob_start[m]]
        if not dated:
            return False
        dated_b = [m for m in self.members(rb) if self.dob_start[m + 1] > self.dob_start[m]]
        i, j = [], []
        for u in dated:
            for v in dated_b:
                if self.agency[u] == self.agency[v]:  # different clusters: never the same id
                    rows_u = range(self.dob_start[u], self.dob_start[u + 1])
                    rows_v = range(self.dob_start[v], self.dob_start[v + 1])
                    i += [x for x in rows_u for _ in rows_v]
                    j += [y for _ in rows_u for y in rows_v]
        if not i:
            return False
        rows = self.dob_words[self.dob_value[i]], self.dob_words[self.dob_value[j]]
        missing, exact, near = token_levels(*rows, "date")
        return bool((~missing & ~exact & ~near).any())

    def join(self, a: int, b: int) -> None:
        """Merge without the guard: for agency ids the previous build already put together."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, gone = min(ra, rb), max(ra, rb)
            self.parent[gone] = keep
            self.next[keep], self.next[gone] = self.next[gone], self.next[keep]  # one ring of both
            s, t = self.ssn[keep], self.ssn[gone]
            self.ssn[keep] = s if t == 0 or t == s else t if s == 0 else -1
            # Previous keys never conflict here: ``join`` puts together ids of one key, and
            # ``union`` refuses two different keys, so a cluster carries at most one.
            self.old[keep] = self.old[keep] or self.old[gone]

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.old[ra] and self.old[rb] and self.old[ra] != self.old[rb]:
            self.refused += 1
            return False  # both already published under different keys: keys never change
        # Any two different SSNs conflict, even one digit apart: a wrong merge is worse than a split.
        sa, sb = self.ssn[ra], self.ssn[rb]
        if self.guard.get("ssn_conflict", True) and sa and sb and (sa != sb or sa < 0):
            self.refused += 1
            return False
        if self.guard.get("same_agency_dob_conflict", True) and self._dob_conflict(ra, rb):
            self.refused += 1
            return False
        self.join(ra, rb)
        return True


def _ints(values: np.ndarray) -> array:
    return array("q", np.ascontiguousarray(values, dtype=np.int64).tobytes())


def _previous_links(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    if not table_exists(con, "core", "person_link"):
        return pd.DataFrame({"agency": [], "person_token": [], "person_key": []}, dtype="str")
    return con.execute("SELECT agency, person_token, person_key FROM core.person_link").df()


def _agency_ids(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct (agency, person_token) of the rows, sorted, and each row's index among them."""
    agency_code, agencies = pd.factorize(rows["agency"], sort=True)
    token_code, tokens = pd.factorize(rows["person_token"], sort=True)
    width = max(len(tokens), 1)
    ids, id_of_row = np.unique(agency_code.astype(np.int64) * width + token_code, return_inverse=True)
    nodes = pd.DataFrame({"agency": agencies[ids // width], "person_token": tokens[ids % width]})
    return nodes, id_of_row.reshape(-1)


def _distinct_rows(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct word row, each row's index among them): equal exactly when the
    rows are. By a 64-bit digest, checked word by word; by the whole rows should two differ."""
    _, first, ids = np.unique(filter_digest(words), return_index=True, return_inverse=True)
    if not all((words[:, w] == words[first, w][ids]).all() for w in range(words.shape[1])):
        _, first, ids = np.unique(words, axis=0, return_index=True, return_inverse=True)
    return first, ids.reshape(-1)


def _values_of_ids(words: np.ndarray, id_of_row: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each id's distinct encodings, ids in order: (start per id and one past the end, which
    distinct value, the distinct values' word rows). Rows whose first word is 0 are missing."""
    present = np.flatnonzero(words[:, 0] != 0)
    first, value = _distinct_rows(words[present])
    width = max(len(first), 1)
    pairs = np.unique(id_of_row[present].astype(np.int64) * width + value)  # distinct (id, value), by id
    start = np.searchsorted(pairs // width, np.arange(n_ids + 1))
    return start, pairs % width, words[present[first]]


def _ssn_states(words: np.ndarray, id_of_row: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Per agency id: (the guard's SSN state, the ambiguity test's SSN), 0 when it has none.

    The guard compares whole SSN tokens: a value number when all of an id's SSNs are one value,
    else -1. The ambiguity test takes an id's SSN when it has exactly one encoding, else -1.
    """
    start, value, rows = _values_of_ids(words, id_of_row, n_ids)
    token = np.unique(rows[:, 0], return_inverse=True)[1].reshape(-1) + 1  # value number of each encoding
    count = np.diff(start)
    has = count > 0
    lo, hi = np.zeros(n_ids, np.int64), np.zeros(n_ids, np.int64)
    if has.any():
        lo[has] = np.minimum.reduceat(token[value], start[:-1][has])
        hi[has] = np.maximum.reduceat(token[value], start[:-1][has])
    guard = np.where(lo == hi, lo, -1)
    single = np.where(count == 1, lo, np.where(has, -1, 0))
    return guard, single


def _drop_ambiguous(pairs: pd.DataFrame, ssn_of_row: np.ndarray, margin: float) -> pd.DataFrame:
    """Drop every pair of a record whose near-best partners carry different SSNs.

    A record without an SSN that matches John Smith (SSN A) and John Smith
    (SSN B) about equally well cannot say which one it is; linking it to either
    is a coin toss, so it stays alone. ``ssn_of_row``: a number per SSN, 0 for
    none, -1 for several.
    """
    if pairs.empty:
        return pairs
    left, right, weight = pairs["left"].to_numpy(), pairs["right"].to_numpy(), pairs["weight"].to_numpy()
    both = pd.DataFrame({"me": np.concatenate([left, right]), "other": np.concatenate([right, left]),
                         "weight": np.concatenate([weight, weight])})
    both["ssn"] = ssn_of_row[both["other"].to_numpy()]
    best = both.groupby("me")["weight"].transform("max")
    near = both[(both["weight"] >= best - margin) & (both["ssn"] != 0)]
    ambiguous = near.groupby("me")["ssn"].nunique()
    ambiguous = ambiguous[ambiguous > 1].index.to_numpy()
    if not len(ambiguous):
        return pairs
    keep = ~(np.isin(left, ambiguous) | np.isin(right, ambiguous))
    return pairs[keep]


def _hand_over_keys(nodes: pd.DataFrame, root: np.ndarray, previous: pd.Series, used: set[str]) -> np.ndarray:
    """Person key per agency id (``nodes``, sorted), given each one's cluster root (its smallest
    member) and previous key (missing for a new id); ``used``: every key given before.

    A previous key stays with the cluster holding most of its former members
    (ties: the cluster with the smallest member); a cluster owning several
    keys keeps the smallest. A cluster without one gets ``pk_`` + a hash of its
    smallest member, never a key used before.
    """
    had = previous.notna().to_numpy()
    claims = pd.DataFrame({"key": previous[had].to_numpy(), "root": root[had]})
    claims = claims.groupby(["key", "root"]).size().reset_index(name="members")
    claims = claims.sort_values(["key", "members", "root"], ascending=[True, False, True]).drop_duplicates("key")
    owned = claims.groupby("root")["key"].min()
    roots = np.unique(root)
    key_of_root = owned.reindex(roots).to_numpy(dtype=object, copy=True)
    used = set(used)
    agency, token = nodes["agency"].to_numpy(), nodes["person_token"].to_numpy()
    for i in np.flatnonzero(pd.isna(key_of_root)):  # roots ascending: in order of smallest member
        seed = f"{agency[roots[i]]}|{token[roots[i]]}"
        key = "pk_" + hashlib.sha256(seed.encode()).hexdigest()[:20]
        n = 0
        while key in used:
            n += 1
            key = "pk_" + hashlib.sha256(f"{seed}|{n}".encode()).hexdigest()[:20]
        used.add(key)
        key_of_root[i] = key
    return key_of_root[np.searchsorted(roots, root)]


def cluster_records(rows: pd.DataFrame, previous: dict, settings: dict,
                    model: dict | None = None, enc: Encoded | None = None) -> tuple[dict, dict]:
    """Identity rows -> {(agency, person_token): person_key}, plus counts for the build log.

    ``previous``: the previous build's {(agency, person_token): person_key}.
    ``model``: the linkage model to score with (default: the shipped default model).
    ``enc``: the rows' encodings when already decoded (``identities``); else read from ``rows``.
    """
    before = pd.DataFrame([(a, t, k) for (a, t), k in previous.items()],
                          columns=["agency", "person_token", "person_key"])
    links, stats = _cluster(rows, before, settings, model, enc)
    return dict(zip(zip(links["agency"], links["person_token"]), links["person_key"])), stats


def _cluster(rows: pd.DataFrame, previous: pd.DataFrame, settings: dict, model: dict | None,
             enc: Encoded | None) -> tuple[pd.DataFrame, dict]:
    """``cluster_records`` on frames: each agency id with its person key (agency, person_token,
    person_key; sorted), from the previous build's links as such a frame."""
    enc = enc if enc is not None else encoded_from_frame(rows, settings)
    nodes, node_of_row = _agency_ids(rows)
    n = len(nodes)
    ssn_guard, ssn_single = _ssn_states(enc.fields["ssn"], node_of_row, n)
    before = nodes.merge(previous, how="left", on=["agency", "person_token"])["person_key"]
    old = pd.factorize(before)[0] + 1  # 0: new agency id
    clusters = _Clusters(pd.factorize(nodes["agency"])[0], ssn_guard, old,
                         _values_of_ids(enc.fields["dob"], node_of_row, n), settings)
    # What the previous build linked stays linked (keys never change meaning), including rows
    # loaded before similarity encodings existed, which carry none.
    first_of_key: dict[int, int] = {}
    had = np.flatnonzero(old)
    for node, key in zip(_ints(had), _ints(old[had])):
        clusters.join(first_of_key.setdefault(key, node), node)

    pairs = match_pairs(enc, None, settings, model=model or default_model())
    pairs = _drop_ambiguous(pairs, ssn_single[node_of_row], settings.get("ambiguity_margin", 3.0))
    pairs = pairs.sort_values(["weight", "left", "right"], ascending=[False, True, True], kind="stable")
    merged = 0
    for a, b in zip(_ints(node_of_row[pairs["left"].to_numpy()]), _ints(node_of_row[pairs["right"].to_numpy()])):
        if a != b and clusters.find(a) != clusters.find(b) and clusters.union(a, b):
            merged += 1

    root = np.fromiter((clusters.find(node) for node in range(n)), dtype=np.int64, count=n)
    links = nodes.assign(person_key=_hand_over_keys(nodes, root, before, set(previous["person_key"])))
    return links, {"candidate_pairs_above_threshold": len(pairs), "merges": merged,
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
    link, stats = _cluster(rows, _previous_links(con), settings, model, enc)
    del rows, enc
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
