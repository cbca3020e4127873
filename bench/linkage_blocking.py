"""Candidate pairs per blocking rule on the synthetic county's person records, at several sizes.

    .venv/bin/python bench/linkage_blocking.py                          # 20,000 / 100,000 / 200,000 people
    .venv/bin/python bench/linkage_blocking.py --people 20000 --sample 1

For each size the synthetic county is generated into a scratch folder; every extract that names
people gives its distinct identity rows (agency person id with the names, birth date and SSN as
written), encoded under a fresh random key exactly as intake encodes them (``encode_frame``), plus
the sex token, which the warehouse does not encode but ``leadhub link`` files often carry. Each
blocking rule of ``transforms/linkage_settings.json`` that these fields allow (and any given with
``--rule``) is counted alone with Splink's ``count_comparisons_from_blocking_rules`` (dedupe over all agencies'
rows together, as the build links them: the pairs Splink scores), and as the build logs it (records
per blocking key: the join's pairs before a rule's filters); the last lines count all the rules on
the hub's fields together with Splink, the pairs a build scores (``--sample`` below 1 estimates from that share of rows on each side, Splink's
``record_sample_proportion``). With ``--quality`` (and ``--compare RULES.json``) each rule set is
checked against the generator's true persons: how many true pairs its rules block together, which
true pairs only one rule finds, and the pairwise precision and recall of the hub's scoring.
A rule whose count grows with the square of the people (x25 from 20,000 to 100,000) is quadratic;
a near-linear one grows about x5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadhub.core.contracts import load_contracts  # noqa: E402
from transforms.encodings import Encoder, encode_frame, fields_of, load_settings  # noqa: E402
from transforms.link import HUB_FIELDS  # noqa: E402
from transforms.linkage_model import Encoded, _blocking_rule, load_table, rule_sql, scratch  # noqa: E402

ROLES = ("first_name", "last_name", "dob", "ssn")


def identity_rows(inbox: Path, answers: Path, encoder: Encoder) -> tuple[Encoded, np.ndarray]:
    """Distinct identity rows of every extract naming people, encoded (hub fields and sex), and
    the true person of each (from the generator's answers, for the quality check only)."""
    truth = pd.read_csv(answers / "records.csv", dtype={"row_number": int})
    truth = truth.set_index(["contract", "row_number"])["true_person_id"]
    parts, persons = [], []
    for c in load_contracts().values():
        cols = {col.identifier: col for col in c.identifier_columns}
        if not ({"ssn"} & set(cols) or {"last_name", "first_name", "dob"} <= set(cols)):
            continue
        files = sorted((inbox / c.agency).glob(c.file_pattern))
        frame = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False, sep=c.format.delimiter,
                                       quotechar=c.format.quotechar, encoding=c.format.encoding)
                           for f in files])
        mapping = {}
        for role in ROLES:
            if role in cols:
                col = cols[role]
                mapping[role] = {"columns": [col.name], "format": col.formats[0] if col.formats else None}
        keep = [cols["agency_person_id"].name] + [m["columns"][0] for m in mapping.values()]
        if "sex" in c.column_names:
            mapping["sex"] = {"columns": ["sex"]}
            keep.append("sex")
        frame = frame.reset_index(drop=True)
        frame = frame[keep].drop_duplicates()
        persons.append(truth.loc[c.name].reindex(frame.index + 1).to_numpy())
        parts.append((encode_frame(frame, mapping, encoder), len(frame)))
    fields = set(HUB_FIELDS) | {"sex"}
    width = {f: next(enc[f].shape[1] for enc, _ in parts if f in enc) for f in fields}
    out = {f: np.vstack([enc[f] if f in enc else np.zeros((n, width[f]), np.uint64) for enc, n in parts])
           for f in fields}
    return Encoded(out, sum(n for _, n in parts)), np.concatenate(persons)


def count(con, rules: list[list[str]], fields: set[str], sample: float) -> list[tuple[str, int, int]]:
    """Per rule alone: (rule, pairs Splink scores — after a rule's filters, each pair once —, pairs
    the build's log counts — records per blocking key, i.e. the join's work before filters)."""
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    from transforms.linkage_model import candidate_pairs

    df = DuckDBAPI(con).register("lh_records_l", table_name="people")
    logged = {rule: n for rule, n, _ in candidate_pairs(con, rules, fields, two_inputs=False)}
    out = []
    for rule in rules:
        sql = rule_sql(rule, fields)
        if sql is None:
            continue
        [rec] = count_comparisons_from_blocking_rules(
            df, blocking_rules=_blocking_rule(*sql), link_type="dedupe_only", record_sample_proportion=sample)
        out.append((", ".join(rule), int(rec["marginal_comparison_count"]), logged[", ".join(rule)]))
    return out


def together(con, rules: list[list[str]], fields: set[str], sample: float) -> int:
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    df = DuckDBAPI(con).register("lh_records_l", table_name=f"people_all_{len(rules)}_{abs(hash(str(rules)))}")
    sqls = [_blocking_rule(*s) for s in (rule_sql(r, fields) for r in rules) if s]
    recs = count_comparisons_from_blocking_rules(df, blocking_rules=sqls, link_type="dedupe_only",
                                                 record_sample_proportion=sample)
    return int(recs[-1]["cumulative_comparison_count"])


def _columns(enc: Encoded, specs: dict) -> dict[str, np.ndarray]:
    """Per input column of ``arrow_table``: token vectors (0 = missing) or token-set matrices."""
    from transforms.linkage_model import DATE_DIGITS, filter_digest

    cols = {}
    for f, rows in enc.fields.items():
        kind = specs[f]["kind"]
        if kind in ("name", "text"):
            words = rows[:, :-1] if specs[f].get("initial") else rows
            cols[f"{f}_tok"] = np.where(words.any(axis=1), filter_digest(words), 0)
        else:
            cols[f"{f}_tok"] = rows[:, 0]
        if kind in ("digits", "date"):
            cols[f"{f}_del"] = rows[:, :1 + DATE_DIGITS] if kind == "date" else rows
        if kind == "date":
            cols[f"{f}_swap"] = rows[:, -1]
        if kind == "tokens":
            cols[f"{f}_set"] = rows
    if {"first_name_tok", "last_name_tok"} <= set(cols):  # as load_table computes it
        names = pd.DataFrame({"f": cols["first_name_tok"], "l": cols["last_name_tok"]})
        rare = names.groupby(["f", "l"])["f"].transform("size") <= load_settings()["blocking_guard"]["rare_names_max"]
        cols["names_rare_tok"] = np.where(rare & (names["l"] != 0), names["f"], 0).astype(np.uint64)
    return cols


def covered(cols: dict, i: np.ndarray, j: np.ndarray, rule: list[str], fields: set[str]) -> np.ndarray:
    """Which pairs (i, j) the rule puts in one block (as Splink's join of ``rule_sql`` would)."""
    from transforms.linkage_model import _rule_keys

    keys = _rule_keys(rule, fields)
    if keys is None:
        return np.zeros(len(i), dtype=bool)
    hit = np.ones(len(i), dtype=bool)
    for a, b in zip(*keys[:2]):
        x, y = cols[a][i], cols[b][j]
        if x.ndim == 1:
            hit &= (x == y) & (x != 0)
        else:
            hit &= ((x[:, :, None] == y[:, None, :]) & (x[:, :, None] != 0)).any(axis=(1, 2))
    return hit


def coverage(enc: Encoded, persons: np.ndarray, variants: dict[str, list]) -> dict:
    """True pairs (identity rows of one person, hub fields) each variant's rules block together,
    and per rule how many true pairs no other rule of its variant finds (blocking keys only: a
    rule's ``_near``/``_missing`` filters are left out here; the scoring applies them)."""
    specs = fields_of(load_settings())
    cols = _columns(enc, specs)
    order = np.argsort(persons, kind="stable")
    p = persons[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    sizes = np.diff(np.r_[starts, len(p)])
    i, j = [], []
    for s, n in zip(starts[sizes > 1], sizes[sizes > 1]):
        a, b = np.triu_indices(n, 1)
        i.append(order[s + a])
        j.append(order[s + b])
    i, j = np.concatenate(i), np.concatenate(j)
    fields = set(HUB_FIELDS)
    out = {}
    for name, rules in variants.items():
        hits = {", ".join(r): covered(cols, i, j, r, fields) for r in rules}
        hits = {r: h for r, h in hits.items() if h.any() or _covers_possible(r, fields)}
        stack = np.array(list(hits.values()))
        anyhit = stack.any(axis=0)
        only = {r: int((h & (stack.sum(axis=0) == 1)).sum()) for r, h in hits.items()}
        out[name] = {"true_pairs": len(i), "blocked": int(anyhit.sum()), "only": only}
    return out


def _covers_possible(rule: str, fields: set[str]) -> bool:
    from transforms.linkage_model import rule_sql

    return rule_sql(rule.split(", "), fields) is not None


def quality(enc: Encoded, persons: np.ndarray, settings: dict) -> dict:
    """Pairwise precision and recall of the hub's scoring (trained on these rows, hub fields only)
    against the true persons, with the CPU seconds of matching."""
    from transforms.linkage_model import match

    hub = Encoded({f: enc.fields[f] for f in HUB_FIELDS}, enc.n)
    cpu = time.process_time()
    pairs, _ = match(hub, None, settings)
    cpu = time.process_time() - cpu
    same = persons[pairs["left"].to_numpy()] == persons[pairs["right"].to_numpy()]
    sizes = pd.Series(persons).value_counts().to_numpy()
    true = int((sizes * (sizes - 1) // 2).sum())
    p, r = same.mean() if len(same) else 0.0, same.sum() / true
    return {"pairs": len(pairs), "P": p, "R": r, "F1": 2 * p * r / (p + r), "cpu": cpu}


def run(people: int, seed: int, sample: float, extra: list[list[str]], variants: dict[str, list],
        scored: bool) -> dict:
    from synthetic import generate

    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="lh-blocking-") as tmp:
        generate(Path(tmp) / "inbox", Path(tmp) / "answers", people=people, seed=seed)
        enc, persons = identity_rows(Path(tmp) / "inbox", Path(tmp) / "answers", Encoder(os.urandom(32), settings))
    con = scratch()
    load_table(con, "lh_records_l", enc, fields_of(settings), settings.get("blocking_guard", {}).get("rare_names_max"))
    counts = {rule: (scored, logged) for rule, scored, logged in
              count(con, settings["blocking"] + extra, set(enc.fields), sample)}
    totals = {name: together(con, rules, set(HUB_FIELDS), sample) for name, rules in variants.items()}
    con.close()
    cover = coverage(enc, persons, variants) if scored else {}
    scores = ({name: quality(enc, persons, dict(settings, blocking=rules)) for name, rules in variants.items()}
              if scored else {})
    return {"rows": enc.n, "counts": counts, "totals": totals, "scores": scores, "cover": cover}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", default="20000,100000,200000")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sample", type=float, default=None,
                    help="share of rows per side (default 1 up to 100,000 people, 0.25 above)")
    ap.add_argument("--rule", action="append", default=[], help="an extra rule, fields comma-separated")
    ap.add_argument("--compare", type=Path, help="a JSON list of blocking rules to compare with the settings'")
    ap.add_argument("--quality", action="store_true", help="also score the rules against the true persons")
    args = ap.parse_args()
    extra = [r.split(",") for r in args.rule]
    variants = {"settings": load_settings()["blocking"]}
    if args.compare:
        variants["compared"] = json.loads(args.compare.read_text())
    sizes = [int(p) for p in args.people.split(",")]
    results = {}
    for people in sizes:
        sample = args.sample if args.sample is not None else (1.0 if people <= 100_000 else 0.25)
        results[people] = run(people, args.seed, sample, extra, variants, args.quality)
        print(f"{people:,} people: {results[people]['rows']:,} identity rows (sample {sample})", flush=True)
        for name, c in results[people]["cover"].items():
            print(f"  {name}: {c['blocked']:,} of {c['true_pairs']:,} true pairs blocked; found by one rule only: "
                  + ", ".join(f"[{r}] {n:,}" for r, n in c["only"].items()), flush=True)
        for name, q in results[people]["scores"].items():
            print(f"  {name}: {q['pairs']:,} pairs above the threshold, pairwise P {q['P']:.4f} "
                  f"R {q['R']:.4f} F1 {q['F1']:.4f}, matching {q['cpu']:.1f} CPU s", flush=True)
    head = f"{'rule':44}" + "".join(f"{p:>16,}" for p in sizes)
    print(head + "\n" + "-" * len(head))
    for rule in results[sizes[0]]["counts"]:
        print(f"{rule:44}" + "".join(f"{results[p]['counts'].get(rule, (0, 0))[0]:>16,}" for p in sizes))
    print("\nas the build logs them (join pairs before filters, per shared token):")
    for rule in results[sizes[0]]["counts"]:
        print(f"{rule:44}" + "".join(f"{results[p]['counts'].get(rule, (0, 0))[1]:>16,}" for p in sizes))
    for name in variants:
        print(f"{'all ' + name + ' rules, hub fields':44}"
              + "".join(f"{results[p]['totals'].get(name, 0):>16,}" for p in sizes))


if __name__ == "__main__":
    main()
