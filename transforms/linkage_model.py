"""Splink 5 as the scoring and training engine, on keyed encodings only.

What Splink sees is a table per input on a *scratch* DuckDB connection (never
the warehouse or the snapshot: Splink leaves ``__splink__*`` tables, term
frequencies among them, in its connection), built from ``Encoded`` word rows:

* names and text: the keyed Bloom filter as a ``BIT`` column (``<f>_bf``), its
  popcount (``<f>_n``) and a digest of the filter as an exact token
  (``<f>_tok``: equal filters mean equal values; term frequencies work on it);
* dates and digit identifiers: the token of the whole value (``<f>_tok``), the
  keyed deletion-neighbourhood tokens as a ``BLOB[]`` (``<f>_del``) and, for
  dates, the day/month-swapped token (``<f>_swap``);
* exact fields (sex, state): the token.

Tokens are 8-byte BLOBs, never decimal numbers (whose digit runs would
contain dates and SSNs by chance). Missing values are NULL. Comparison levels are DuckDB SQL over those columns
(Dice on the filters, ``list_has_any`` on deletion tokens), so clear text never
reaches Splink. The model — comparison levels with their m and u, the prior and
the blocking rules — is Splink's own JSON settings dict; ``model_for`` builds
it from ``linkage_settings.json`` with its documented priors, ``train``
estimates it from the data (prior from strict exact rules, u by random
sampling, m by EM over two or more blocking rules).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import shutil
import tempfile

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from leadhub.core.warehouse import build_memory_limit
from transforms.encodings import fields_of, load_settings

log = logging.getLogger(__name__)

DATE_DIGITS = 8  # YYYYMMDD: a date row is [whole, 8 deletions, day/month swap]
NAME_FIELDS = ("first_name", "last_name")
# Splink's own tables and our inputs live on the scratch connection only.
LEFT, RIGHT = "lh_records_l", "lh_records_r"


class Encoded:  # re-exported by transforms.link; defined here so this module stays below it
    """Encoded records of one file or table: field -> (n, width) uint64 word rows."""

    def __init__(self, fields: dict[str, np.ndarray], n: int):
        self.fields, self.n = fields, n


# -- input tables --------------------------------------------------------------------------------

def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads word rows into well-distributed 64-bit digests."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def filter_digest(rows: np.ndarray) -> np.ndarray:
    """One uint64 per filter, equal exactly when the filters are (a keyed filter's exact token)."""
    key = np.zeros(len(rows), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in range(rows.shape[1]):
            key = _mix(key ^ rows[:, w] ^ np.uint64(w + 1))
    key[key == 0] = 1
    return key


def _masked(values: np.ndarray, present: np.ndarray) -> pa.Array:
    return pa.array(values, mask=~present)


def _tokens(values: np.ndarray, present: np.ndarray) -> pa.Array:
    """64-bit tokens as 8-byte binary: a token printed as a decimal number would hold runs of
    digits in which a birth date or an SSN turns up by chance (the reason encodings are base64)."""
    data = pa.py_buffer(np.ascontiguousarray(values, dtype="<u8"))  # the array's memory, not a copy of it
    validity = pa.array(np.asarray(present, dtype=bool)).buffers()[1]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(8), len(values), [validity, data])


def _token_list(rows: np.ndarray, present: np.ndarray) -> pa.Array:
    nz = rows != 0
    offsets = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype(np.int32)
    flat = rows[nz]
    values = _tokens(flat, np.ones(len(flat), dtype=bool))
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~present))


def _filter_columns(cols: dict, f: str, rows: np.ndarray) -> None:
    present = rows.any(axis=1)
    # Bytes of little-endian words: the bit order only has to be the same on both sides.
    data = pa.py_buffer(np.ascontiguousarray(rows, dtype="<u8"))
    validity = pa.array(present).buffers()[1]
    cols[f"{f}_bf"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(rows.shape[1] * 8), len(rows),
                                                           [validity, data])
    cols[f"{f}_n"] = _masked(np.bitwise_count(rows).sum(axis=1, dtype=np.int32), present)
    cols[f"{f}_tok"] = _tokens(filter_digest(rows), present)


def arrow_table(enc: Encoded, specs: dict[str, dict]) -> pa.Table:
    """The Splink input columns of ``enc`` (filters as binary, cast to BIT in DuckDB)."""
    cols = {"unique_id": pa.array(np.arange(enc.n, dtype=np.int64))}
    for f, rows in enc.fields.items():
        kind = specs[f]["kind"]
        present = rows.any(axis=1)
        if kind in ("name", "text") and specs[f].get("initial"):
            _filter_columns(cols, f, rows[:, :-1])  # full name (none when only an initial was recorded)
            cols[f"{f}_init"] = _tokens(rows[:, -1], rows[:, -1] != 0)
        elif kind in ("name", "text"):
            _filter_columns(cols, f, rows)
        elif kind in ("digits", "date"):
            cols[f"{f}_tok"] = _tokens(rows[:, 0], present)
            last = 1 + DATE_DIGITS if kind == "date" else rows.shape[1]
            cols[f"{f}_del"] = _token_list(rows[:, :last], present)
            if kind == "date":
                cols[f"{f}_swap"] = _tokens(rows[:, -1], rows[:, -1] != 0)
        elif kind == "tokens":
            cols[f"{f}_tok"] = _tokens(rows[:, 0], present)
            cols[f"{f}_set"] = _token_list(rows, present)
        else:
            cols[f"{f}_tok"] = _tokens(rows[:, 0], present)
    return pa.table(cols)


def load_table(con: duckdb.DuckDBPyConnection, name: str, enc: Encoded, specs: dict[str, dict],
               rare_names_max: int | None = None) -> None:
    """Create ``name`` on the scratch connection from encoded rows.

    With both names, ``names_rare_tok`` is the given-name token of a record whose given and
    surname together appear at most ``rare_names_max`` times in this input (else NULL; default:
    the settings file's ``blocking_guard.rare_names_max``): the key of the ``names_rare``
    blocking rule, whose blocks cannot grow with the county.
    """
    if rare_names_max is None:
        rare_names_max = load_settings()["blocking_guard"]["rare_names_max"]
    table = arrow_table(enc, specs)
    select = ", ".join(f'CAST("{c}" AS BIT) AS "{c}"' if c.endswith("_bf") else f'"{c}"'
                       for c in table.column_names)
    if {"first_name_tok", "last_name_tok"} <= set(table.column_names):
        select += (f", CASE WHEN count(*) OVER (PARTITION BY first_name_tok, last_name_tok) <= {int(rare_names_max)} "
                   "AND last_name_tok IS NOT NULL THEN first_name_tok END AS names_rare_tok")
    con.register("lh_arrow_input", table)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {select} FROM lh_arrow_input ORDER BY unique_id")
    finally:
        con.unregister("lh_arrow_input")


# -- the model definition ------------------------------------------------------------------------

def _dice(a: str, b: str, t: float, left: str = "{}_l", right: str = "{}_r") -> str:
    """Dice of filter ``a`` on the left and ``b`` on the right at least ``t``; ``left``/``right``
    name a column as comparisons (``first_name_bf_l``) or blocking rules (``l.first_name_bf``) do."""
    la, lb, na, nb = left.format(f"{a}_bf"), right.format(f"{b}_bf"), left.format(f"{a}_n"), right.format(f"{b}_n")
    return f"2 * bit_count({la} & {lb}) >= {t} * ({na} + {nb})"


def _level(sql: str, label: str, prior: list[float] | None, **extra) -> dict:
    level = {"sql_condition": sql, "label_for_charts": label, **extra}
    if prior is not None:
        level["m_probability"], level["u_probability"] = prior
    return level


def comparison(field: str, fs: dict, fields: set[str]) -> dict:
    """One Splink comparison over the encoded columns of ``field``, with its prior m/u."""
    kind, priors = fs["kind"], fs.get("priors", {})
    p = priors.get
    if kind in ("name", "text"):
        null = f"{field}_init" if fs.get("initial") else f"{field}_bf"
        levels = [_level(f"{null}_l IS NULL OR {null}_r IS NULL", "missing", None, is_null_level=True)]
        exact = _level(f"{field}_tok_l = {field}_tok_r", "exact", p("exact"))
        if fs.get("term_frequency"):
            exact.update(tf_adjustment_column=f"{field}_tok", tf_adjustment_weight=1.0)
        levels.append(exact)
        other = {"first_name": "last_name", "last_name": "first_name"}.get(field)
        if other in fields and "swapped" in priors:
            # Too rare to train: fixed m and u (documented priors in linkage_settings.json).
            # One crosswise name spelled the same, the other close: the cheap token test goes
            # first, so the Dice coefficients are computed only for the few pairs passing it.
            t = fs["dice"]["high"]
            swapped = (f"({field}_tok_l = {other}_tok_r AND {_dice(other, field, t)}) OR "
                       f"({other}_tok_l = {field}_tok_r AND {_dice(field, other, t)})")
            levels.append(_level(swapped,
                                 "names swapped", p("swapped"), fix_m_probability=True,
                                 fix_u_probability=True))
        dice = sorted(fs.get("dice", {}).items(), key=lambda kv: -kv[1])
        for name, t in dice[:1]:
            levels.append(_level(_dice(field, field, t), f"Dice >= {t}", p(name)))
        canon = f"{field}_canon"
        if canon in fields and "nickname" in priors:
            levels.append(_level(f"list_has_any({canon}_set_l, {canon}_set_r)", "nickname or formal name",
                                 p("nickname")))
        if fs.get("initial"):
            levels.append(_level(f"{field}_init_l = {field}_init_r AND ({field}_bf_l IS NULL OR {field}_bf_r IS NULL)",
                                 "initial agrees", p("initial")))
        for name, t in dice[1:]:
            levels.append(_level(_dice(field, field, t), f"Dice >= {t}", p(name)))
    elif kind in ("digits", "date"):
        levels = [_level(f"{field}_tok_l IS NULL OR {field}_tok_r IS NULL", "missing", None, is_null_level=True),
                  _level(f"{field}_tok_l = {field}_tok_r", "exact", p("exact")),
                  _level(f"list_has_any({field}_del_l, {field}_del_r)", "one edit", p("near"))]
        if kind == "date":
            levels.append(_level(f"{field}_swap_l = {field}_swap_r", "day/month swapped", p("swap")))
    else:
        levels = [_level(f"{field}_tok_l IS NULL OR {field}_tok_r IS NULL", "missing", None, is_null_level=True),
                  _level(f"{field}_tok_l = {field}_tok_r", "exact", p("exact"))]
    levels.append(_level("ELSE", "else", p("else")))
    return {"output_column_name": field, "comparison_description": f"{field} ({kind}, keyed encoding)",
            "comparison_levels": levels}


# Blocking rule field suffixes -> the input column they compare (see rule_sql).
RULE_SUFFIXES = {"swap": "swap", "edit": "del", "any": "set"}
NEAR_DICE = 0.45  # the lowest Dice level of the name comparisons: below it a name is "else"


def _near(field: str, fields: set[str]) -> str:
    """A name missing on a side, or alike enough to reach a Dice level (a ``_near`` filter)."""
    near = [f"l.{field}_bf IS NULL", f"r.{field}_bf IS NULL", _dice(field, field, NEAR_DICE, "l.{}", "r.{}")]
    if field == "first_name" and "first_name_canon" in fields:
        near.append("list_has_any(l.first_name_canon_set, r.first_name_canon_set)")
    return " OR ".join(near)


def rule_sql(rule: list[str], fields: set[str]) -> tuple[str, list[str]] | None:
    """A blocking rule of the settings as Splink SQL (and arrays to explode), or None if a field is absent.

    ``<field>`` — same token; ``dob_swap`` — same day/month-swapped date;
    ``<field>_edit`` — a shared deletion token (one edit apart, exploded);
    ``<field>_any`` — a shared member of a token set (``first_name_canon_any``: the same
    given name or formal name of a nickname, exploded);
    ``names_swapped`` — given name equals the other's surname and vice versa;
    ``names_rare`` — the same given and surname, where that name is rare in each input
    (``names_rare_tok``, see ``load_table``: blocks of at most ``rare_names_max`` per side).

    Filters, which narrow the pairs of the rule's other (key) fields without a key of their own:
    ``<name>_near`` — the name missing on a side, or at least ``NEAR_DICE`` alike (Dice on the
    filters), or for the given name a nickname of the other's; ``names_near`` — either name near;
    ``<field>_missing`` — missing on a side.
    """
    parts, explode = [], []
    for name in rule:
        if name == "names_swapped":
            if not set(NAME_FIELDS) <= fields:
                return None
            parts += ["l.first_name_tok = r.last_name_tok", "l.last_name_tok = r.first_name_tok"]
        elif name == "names_rare":
            if not set(NAME_FIELDS) <= fields:
                return None
            parts += ["l.names_rare_tok = r.names_rare_tok", "l.last_name_tok = r.last_name_tok"]
        elif name == "names_near":
            if not set(NAME_FIELDS) <= fields:
                return None
            parts.append("(" + " OR ".join(_near(f, fields) for f in NAME_FIELDS) + ")")
        elif name.endswith("_near"):
            base = name[:-len("_near")]
            if base not in fields:
                return None
            parts.append(f"({_near(base, fields)})")
        elif name.endswith("_missing"):
            base = name[:-len("_missing")]
            if base not in fields:
                return None
            parts.append(f"(l.{base}_tok IS NULL OR r.{base}_tok IS NULL)")
        elif name.endswith(("_swap", "_edit", "_any")):
            base, suffix = name.rsplit("_", 1)
            if base not in fields:
                return None
            col = f"{base}_{RULE_SUFFIXES[suffix]}"
            parts.append(f"l.{col} = r.{col}")
            if suffix != "swap":
                explode.append(col)
        else:
            if name not in fields:
                return None
            parts.append(f"l.{name}_tok = r.{name}_tok")
    return " AND ".join(parts), explode


def _rule_keys(rule: list[str], fields: set[str]) -> tuple[list[str], list[str], list[str]] | None:
    """(left key columns, right key columns, list columns to unnest) of a rule, as ``rule_sql``."""
    if rule_sql(rule, fields) is None:
        return None
    left, right, explode = [], [], []
    for name in rule:
        if name.endswith(("_near", "_missing")):
            continue  # a filter: the join's pairs are those of the other fields
        if name == "names_swapped":
            left += ["first_name_tok", "last_name_tok"]
            right += ["last_name_tok", "first_name_tok"]
        elif name == "names_rare":
            left += ["names_rare_tok", "last_name_tok"]
            right += ["names_rare_tok", "last_name_tok"]
        elif name.endswith(("_swap", "_edit", "_any")):
            base, suffix = name.rsplit("_", 1)
            col = f"{base}_{RULE_SUFFIXES[suffix]}"
            left.append(col)
            right.append(col)
            if suffix != "swap":
                explode.append(col)
        else:
            left.append(f"{name}_tok")
            right.append(f"{name}_tok")
    return left, right, explode


def _key_counts(con: duckdb.DuckDBPyConnection, table: str, cols: list[str], explode: list[str]) -> str:
    keys = ", ".join(f"unnest({c}) AS k{i}" if c in explode else f"{c} AS k{i}" for i, c in enumerate(cols))
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    return (f"SELECT {', '.join(f'k{i}' for i in range(len(cols)))}, count(*) AS n "
            f"FROM (SELECT {keys} FROM {table} WHERE {present}) GROUP BY ALL")


def candidate_pairs(con: duckdb.DuckDBPyConnection, rules: list[list[str]], fields: set[str],
                    two_inputs: bool) -> list[tuple[str, int, int]]:
    """(rule, candidate pairs, largest block) per blocking rule on the loaded inputs: counts of
    records per blocking key, so it costs a group-by, not the pairs. Pairs are counted per rule
    before Splink removes those an earlier rule found; a pair sharing two deletion tokens counts
    twice. What a steward watches: a rule whose pairs grow with the square of the records."""
    out = []
    for rule in rules:
        keys = _rule_keys(rule, fields)
        if keys is None:
            continue
        left, right, explode = keys
        on = " AND ".join(f"a.k{i} = b.k{i}" for i in range(len(left)))
        a = _key_counts(con, LEFT, left, explode)
        b = _key_counts(con, RIGHT if two_inputs else LEFT, right, explode)
        if two_inputs:
            pairs = f"sum(a.n * b.n)"
        elif left == right:
            pairs = "sum(a.n * (a.n - 1) / 2)"
        else:  # crosswise (swapped names): each pair is met from both sides
            pairs = "sum(a.n * b.n) / 2"
        sql = (f"SELECT coalesce({pairs}, 0), coalesce(max(a.n), 0) FROM ({a}) a" if not two_inputs and left == right
               else f"SELECT coalesce({pairs}, 0), coalesce(max(greatest(a.n, b.n)), 0) FROM ({a}) a JOIN ({b}) b ON {on}")
        [(n_pairs, largest)] = con.execute(sql).fetchall()
        out.append((", ".join(rule), int(n_pairs), int(largest)))
    return out


def log_candidate_pairs(con: duckdb.DuckDBPyConnection, settings: dict, fields: set[str],
                        two_inputs: bool, records: int) -> list[tuple[str, int, int]]:
    """Log each blocking rule's candidate pairs (counts only); warn about a rule above
    ``blocking_guard.max_pairs_per_record`` pairs per record, which grows with the square of
    the records and will not scale to a larger county."""
    counts = candidate_pairs(con, settings["blocking"], fields, two_inputs)
    limit = settings.get("blocking_guard", {}).get("max_pairs_per_record")
    for rule, n_pairs, largest in counts:
        log.info("blocking rule [%s]: %d candidate pairs, largest block %d records", rule, n_pairs, largest)
        if limit is not None and n_pairs > limit * max(records, 1):
            log.warning("blocking rule [%s] gives %.1f candidate pairs per record (more than %s): it grows "
                        "with the square of the records; see docs/linkage.md, blocking",
                        rule, n_pairs / max(records, 1), limit)
    return counts


def _blocking_rule(sql: str, explode: list[str]) -> dict:
    rule = {"blocking_rule": sql, "sql_dialect": "duckdb"}
    if explode:
        rule["arrays_to_explode"] = explode
    return rule


def blocking_rules(fields: set[str], settings: dict) -> list[dict]:
    """The settings' blocking rules that these fields allow, as Splink rules."""
    rules = (rule_sql(rule, fields) for rule in settings["blocking"])
    return [_blocking_rule(sql, explode) for sql, explode in filter(None, rules)]


def model_for(fields: list[str], settings: dict, link_type: str) -> dict:
    """Splink settings for these fields, from the documented priors (before any training).

    Every field of the settings present in the data gets a comparison; an
    encoding without one of its own (``first_name_canon``) is a level of another.
    """
    specs = fields_of(settings)
    present = set(fields)
    return {
        "link_type": link_type,
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": settings["training"]["prior_match_probability"],
        "blocking_rules_to_generate_predictions": blocking_rules(present, settings),
        "comparisons": [comparison(f, specs[f], present) for f in settings["fields"] if f in present],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "additional_columns_to_retain": [],
        "sql_dialect": "duckdb",
        "linker_uid": "leadhub",
    }


def model_fields(model: dict) -> list[str]:
    return [c["output_column_name"] for c in model["comparisons"]]


# -- running Splink ------------------------------------------------------------------------------

def _linker(con: duckdb.DuckDBPyConnection, model: dict, two_inputs: bool):
    from splink import DuckDBAPI, Linker

    db = DuckDBAPI(con)
    tables = [db.register(LEFT, table_name="a")]
    if two_inputs:
        tables.append(db.register(RIGHT, table_name="b"))
    splink_settings = {k: v for k, v in model.items() if k != "leadhub"}  # the hub's own entry
    # Splink narrates every training step; the hub reports outcomes (counts, versions) itself.
    return Linker(tables if two_inputs else tables[0], splink_settings, log_level=logging.ERROR)


def train(con: duckdb.DuckDBPyConnection, model: dict, settings: dict, two_inputs: bool) -> dict:
    """Estimate the prior, u and m of ``model`` on the tables loaded in ``con``; returns the new model."""
    t = settings["training"]
    fields = set(model_fields(model))
    rules = [rule_sql(r, fields) for r in t["prior_rules"]]
    strict = [sql for sql, explode in filter(None, rules) if not explode]
    if not strict:
        # No strict rule applies (e.g. names and addresses only): assume about one match per
        # record, i.e. one in (records of the larger input) random pairs.
        sizes = [n for (n,) in con.execute(
            f"SELECT count(*) FROM {LEFT}" + (f" UNION ALL SELECT count(*) FROM {RIGHT}" if two_inputs else "")
        ).fetchall()]
        model = dict(model, probability_two_random_records_match=min(1.0, 1 / max(max(sizes), 1)))
    linker = _linker(con, model, two_inputs)
    if strict:
        linker.training.estimate_probability_two_random_records_match(strict, recall=t["prior_recall"])
    linker.training.estimate_u_using_random_sampling(max_pairs=t["u_max_pairs"], seed=t["seed"])
    for rule in t["em_rules"]:
        sql = rule_sql(rule, fields)
        if sql is None or sql[1]:
            continue
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                sql[0], max_pairs=t.get("em_max_pairs"))
        except Exception as e:  # e.g. no pairs in this block: the levels keep their priors
            log.warning("EM on %s skipped: %s", sql[0], e)
    return floor_m(linker.misc.save_model_to_json(), t["min_m_probability"])


def floor_m(model: dict, floor: float) -> dict:
    """Raise every m below ``floor``: a level (almost) never seen among matches in one training
    sample can still happen to a true pair, and an m near 0 would make it an absolute veto
    (a weight of -100 bits and more) that no other evidence can outvote."""
    for c in model["comparisons"]:
        for level in c["comparison_levels"]:
            m = level.get("m_probability")
            if m is not None and m < floor and not level.get("is_null_level"):
                level["m_probability"] = floor
    return model


# Candidate pairs (as ``candidate_pairs`` counts them) per input record that Splink scores at
# once; more are scored in parts (``predict``). Per record, so the parts stay a fixed share of
# the build's memory and their number stays about the same as the county grows (each part reads
# all records again: at 100,000 and 200,000 people, three and four parts cut the peak of the
# linkage by a third for 6-16% more CPU).
CHUNK_PAIRS_PER_RECORD = 20


def predict(con: duckdb.DuckDBPyConnection, model: dict, threshold: float, two_inputs: bool,
            explain: bool = False, chunks: int = 1) -> pd.DataFrame:
    """Pairs at or above ``threshold`` (Splink match weight) as a frame: left, right, weight
    (and with ``explain`` per comparison ``gamma_<field>``, ``mw_<field>``, ``mw_tf_adj_<field>``).

    ``left``/``right`` are row positions in the first / second input (dedupe: left < right).
    ``chunks``: Splink blocks and scores the left records in that many parts, one after the
    other, each part's pairs fetched (only the columns used) and its table dropped before the
    next: the same pairs and weights, with a fraction of the candidate pairs in memory at once.
    """
    # Explaining needs Splink's per-comparison level (gamma_*) and match weight (mw_*) columns.
    model = dict(model, retain_intermediate_calculation_columns=explain, retain_matching_columns=explain)
    linker = _linker(con, model, two_inputs)
    fields = model_fields(model)
    cols = ["unique_id_l", "unique_id_r", "match_weight"]
    if two_inputs:
        cols.append("source_dataset_l")
    if explain:
        cols += [c for f in fields for c in (f"gamma_{f}", f"mw_{f}", f"mw_tf_adj_{f}")]
    parts = []
    for k in range(1, chunks + 1):
        result = linker.inference.predict_chunk(left_chunk=(k, chunks), right_chunk=(1, 1),
                                                threshold_match_weight=threshold)
        have = {c for c, *_ in con.execute(f"DESCRIBE {result.physical_name}").fetchall()}
        select = ", ".join(c for c in cols if c in have)
        parts.append(con.execute(f"SELECT {select} FROM {result.physical_name}").fetchdf())
        result.drop_table_from_database_and_remove_from_cache()
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    del parts
    left, right = frame["unique_id_l"].to_numpy(), frame["unique_id_r"].to_numpy()
    if two_inputs:
        flip = (frame["source_dataset_l"] != "a").to_numpy()
        left, right = np.where(flip, right, left), np.where(flip, left, right)
    out = pd.DataFrame({"left": left.astype(np.int64), "right": right.astype(np.int64),
                        "weight": frame["match_weight"].to_numpy(dtype=float)})
    for c in frame.columns:
        if c.startswith(("gamma_", "mw_")):
            out[c] = frame[c].to_numpy()
    return out


def evidence_guard(pairs: pd.DataFrame, left: Encoded, right: Encoded | None, settings: dict) -> pd.DataFrame:
    """Drop pairs of two records that carry no date or identifier at all: names alone never link.

    A birth date or SSN missing on one side only weighs as missing (0), and the
    match weight decides.
    """
    other = right if right is not None else left
    i, j = pairs["left"].to_numpy(), pairs["right"].to_numpy()
    # Per record first, then per pair: indexing the word rows by pair would copy them per pair.
    has_l, has_r = np.zeros(left.n, dtype=bool), np.zeros(other.n, dtype=bool)
    for f in settings["evidence_fields"]:
        if f in left.fields:
            has_l |= left.fields[f].any(axis=1)
        if f in other.fields:
            has_r |= other.fields[f].any(axis=1)
    return pairs[has_l[i] | has_r[j]]


def scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for Splink: its ``__splink__`` tables never touch the warehouse.

    Capped like a build (``build_memory_limit``); past the cap it spills to a private folder
    of its own (0700, removed when the process ends) rather than to DuckDB's default ``.tmp``
    in whatever the working directory is. A million people's candidate pairs outgrew the
    machine without the cap."""
    con = duckdb.connect(":memory:")
    con.execute("SET threads TO 2")
    con.execute(f"SET memory_limit = '{build_memory_limit()}'")
    con.execute("SET temp_directory = ?", [tempfile.mkdtemp(prefix="scratch-", dir=_spill_root())])
    return con


@functools.cache
def _spill_root() -> str:
    root = tempfile.mkdtemp(prefix="leadhub-spill-")  # 0700
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def enough_to_train(n_left: int, n_right: int | None, settings: dict) -> bool:
    need = settings["training"]["min_records"]
    return n_left >= need and (n_right is None or n_right >= need)


def match(left: Encoded, right: Encoded | None, settings: dict,
          model: dict | None = None, threshold: float | None = None,
          explain: bool = False) -> tuple[pd.DataFrame, dict]:
    """Score candidate pairs of two encoded inputs (or one, deduplicated); train first if no model.

    Without a model, the model is trained on these inputs when they are large
    enough, else the documented priors are used. Returns (pairs, model).
    """
    threshold = settings["threshold"] if threshold is None else threshold
    two = right is not None
    if (right.n == 0 or left.n == 0) if two else left.n < 2:
        return pd.DataFrame({"left": np.empty(0, np.int64), "right": np.empty(0, np.int64),
                             "weight": np.empty(0)}), model or {}
    specs = fields_of(settings)
    fields = [f for f in specs if f in left.fields and (not two or f in right.fields)]
    con = scratch()
    try:
        rare = settings.get("blocking_guard", {}).get("rare_names_max")
        load_table(con, LEFT, Encoded({f: left.fields[f] for f in fields}, left.n), specs, rare)
        if two:
            load_table(con, RIGHT, Encoded({f: right.fields[f] for f in fields}, right.n), specs, rare)
        if model is None:
            model = model_for(fields, settings, "link_only" if two else "dedupe_only")
            if enough_to_train(left.n, right.n if two else None, settings):
                model = train(con, model, settings, two)
        n = left.n + (right.n if two else 0)
        # Blocking belongs to the settings, not to the estimates: a model trained under earlier
        # settings scores the pairs the current rules find.
        scoring = dict(model, blocking_rules_to_generate_predictions=blocking_rules(set(model_fields(model)), settings))
        counts = log_candidate_pairs(con, settings, set(model_fields(model)), two, n)
        chunks = max(1, int(-(-sum(n_pairs for _, n_pairs, _ in counts) // (CHUNK_PAIRS_PER_RECORD * n))))
        pairs = predict(con, scoring if n >= settings["term_frequency_min_records"] else without_tf(scoring),
                        threshold, two, explain, chunks)
    finally:
        con.close()
    return evidence_guard(pairs, left, right, settings), model


def without_tf(model: dict) -> dict:
    """The model without term-frequency adjustment: among a few hundred records frequencies are noise."""
    model = json.loads(json.dumps(model))
    for c in model["comparisons"]:
        for level in c["comparison_levels"]:
            level.pop("tf_adjustment_column", None)
            level.pop("tf_adjustment_weight", None)
    return model
