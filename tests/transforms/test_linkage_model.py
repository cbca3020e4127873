"""Splink on keyed encodings: what reaches its tables, how models are trained, stored, used and explained."""

import json
import os
import re
import stat
import xml.etree.ElementTree as ET

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadhub.pipeline import ingest_agency
from synthetic import generate
from leadhub.cli import main
from leadhub.core.warehouse import connect
from transforms import linkage_model, linkage_store
from leadhub.core.audit import verify_audit
from transforms.encodings import Encoder, encode_frame, fields_of, load_settings, read_mapping
from transforms.link import _hand_over_keys, link_people
from transforms.linkage_model import Encoded

SETTINGS = load_settings()
MAPPING = {"id": "id", "fields": {"first_name": "first", "middle_name": "middle", "last_name": "last",
                                  "dob": "dob", "ssn": "ssn"}}


def encode(frame: pd.DataFrame, key: bytes = b"k" * 32) -> Encoded:
    _, fields = read_mapping(MAPPING)
    return Encoded(encode_frame(frame.astype("string"), fields, Encoder(key, SETTINGS)), len(frame))


def people(n: int, seed: int) -> pd.DataFrame:
    """n synthetic people with names drawn from small made-up lists (enough repeats for training)."""
    rng = np.random.default_rng(seed)
    first = ["Anna", "Boris", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
             "Katya", "Lorenz", "Mira", "Nils", "Olga", "Pavel", "Quinta", "Rasmus", "Selma", "Tobias"]
    last = [a + b for a in ("Ber", "Kal", "Mor", "Vel", "Zan", "Tor", "Lin", "Ost", "Rav", "Sud")
            for b in ("gmann", "ovic", "anski", "etti", "ström", "ado", "ier", "quist", "elli", "oni")]
    dob = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 20000, n), unit="D")
    return pd.DataFrame({
        "id": [f"P{i}" for i in range(n)],
        "first": rng.choice(first, n), "middle": rng.choice(["A", "B", "Carl", "Dora", ""], n),
        "last": rng.choice(last, n), "dob": dob.strftime("%Y-%m-%d"),
        "ssn": [f"{rng.integers(100, 600)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}" for _ in range(n)]})


def damaged(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same people, ids renamed, with one typo in a third of the surnames and a tenth of SSNs blank."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out["id"] = out["id"].str.replace("P", "Q")
    typo = rng.random(len(out)) < 0.33
    out.loc[typo, "last"] = out.loc[typo, "last"].str.slice(0, -1)
    out.loc[rng.random(len(out)) < 0.1, "ssn"] = ""
    return out


def test_splink_tables_hold_keyed_encodings_and_no_clear_text():
    # Enough people for every training step to run (EM on names is skipped below about 500) and
    # for every made-up name to occur.
    left = people(600, 1)
    right = damaged(left, 2)
    con = linkage_model.scratch()
    specs = fields_of(SETTINGS)
    linkage_model.load_table(con, linkage_model.LEFT, encode(left), specs)
    linkage_model.load_table(con, linkage_model.RIGHT, encode(right), specs)
    model = linkage_model.train(con, linkage_model.model_for(list(encode(left.head(1)).fields), SETTINGS,
                                                             "link_only"), SETTINGS, two_inputs=True)
    linkage_model.predict(con, model, 0.0, two_inputs=True)
    tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    assert any(t.startswith("__splink__") for t in tables)  # Splink's own tables are there to scan
    # No column could hold text or a number spelled in digits except Splink's own bookkeeping.
    text_columns = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE data_type IN ('VARCHAR', 'UBIGINT', 'HUGEINT') "
        "OR data_type LIKE '%[]' AND data_type <> 'BLOB[]'").fetchall()
    assert {c for _, c, _ in text_columns} <= {"source_dataset", "source_dataset_l", "source_dataset_r",
                                                "match_key", "join_key_l", "join_key_r"}, text_columns
    dump = "\n".join(repr(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    dump += json.dumps(model)
    con.close()
    for value in set(left["last"]) | set(left["first"]):
        assert value.upper() not in dump.upper()


def test_a_model_trained_on_the_data_finds_the_damaged_pairs_and_no_strangers():
    left = people(1500, 3)
    right = damaged(left, 4)
    pairs, model = linkage_model.match(encode(left), encode(right), SETTINGS)
    found = set(zip(pairs["left"], pairs["right"]))
    true = {(i, i) for i in range(len(left))}
    # Every record is its own twin with at most a one-letter surname typo and maybe a blank SSN:
    # all 1,500 true pairs carry name + date evidence; strangers share at most names or a birth date.
    assert len(found & true) >= 0.99 * len(true)
    assert len(found - true) <= 0.01 * len(true)
    assert model["probability_two_random_records_match"] != SETTINGS["training"]["prior_match_probability"]
    dob = next(c for c in model["comparisons"] if c["output_column_name"] == "dob")
    exact = next(lv for lv in dob["comparison_levels"] if lv.get("label_for_charts") == "exact")
    assert exact["m_probability"] > 0.9  # the damage never touched birth dates


def test_names_alone_never_link_but_a_date_on_one_side_weighs_as_missing():
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "first": ["Wilhelmina", "Wilhelmina", "Wilhelmina", "Bo"],
                          "middle": ["Ottilie", "Ottilie", "Ottilie", ""], "last": ["Quackenbush"] * 3 + ["Li"],
                          "dob": ["", "", "1970-05-06", ""], "ssn": ["", "", "", ""]})
    pairs, _ = linkage_model.match(encode(frame), None, SETTINGS, threshold=-1000)
    found = set(zip(pairs["left"], pairs["right"]))
    # a-b: names only, neither has a date or identifier -> never a pair, whatever the threshold.
    assert (0, 1) not in found
    # a-c: the date is missing on one side only: it weighs 0, names decide (a rare, full match).
    assert (0, 2) in found and (1, 2) in found


def test_scoring_in_parts_gives_the_same_pairs_and_weights(monkeypatch):
    enc = encode(pd.concat([people(150, seed=5), damaged(people(150, seed=5), seed=6)], ignore_index=True))
    whole, _ = linkage_model.match(enc, None, SETTINGS, model=linkage_store.default_model())
    predict, chunks = linkage_model.predict, []
    monkeypatch.setattr(linkage_model, "predict", lambda *a: chunks.append(a[-1]) or predict(*a))
    monkeypatch.setattr(linkage_model, "CHUNK_PAIRS_PER_RECORD", 6)
    parts, _ = linkage_model.match(enc, None, SETTINGS, model=linkage_store.default_model())
    assert chunks[0] > 1 and len(whole) >= 150
    key = ["left", "right"]
    assert parts.sort_values(key).reset_index(drop=True).equals(whole.sort_values(key).reset_index(drop=True))


def test_default_model_summary_and_chart(tmp_path):
    model = linkage_store.default_model()
    s = linkage_store.model_summary(model)
    assert s["version"].startswith("20261201T000000Z-") and s["threshold"] == SETTINGS["threshold"]
    dob = next(c for c in s["comparisons"] if c["field"] == "dob")
    exact = next(lv for lv in dob["levels"] if lv["label"] == "exact")
    assert exact["weight"] == pytest.approx(np.log2(0.9 / 0.0001))  # 13.14 bits, from the documented prior
    swapped = next(lv for c in s["comparisons"] for lv in c["levels"] if lv["label"] == "names swapped")
    assert swapped["fixed"]
    svg = linkage_store.match_weight_chart_svg(model)
    root = ET.fromstring(svg)  # well-formed, self-contained
    assert root.tag.endswith("svg") and "href" not in svg and "<script" not in svg
    assert s["version"] in svg and "names swapped" in svg
    compared = ET.fromstring(linkage_store.match_weight_chart_svg(model, previous=model))
    ticks = [e for e in compared.iter() if e.tag.endswith("line") and e.get("stroke-width") == "2"]
    assert len(ticks) == sum(len(c["levels"]) for c in s["comparisons"])  # one per level of the old model


def test_the_shipped_default_model_is_the_documented_priors():
    """Regenerating it from linkage_settings.json gives the committed file: no data went into it."""
    from transforms.linkage_model import model_for

    shipped = linkage_store.default_model()
    fresh = linkage_store.stamp(model_for(list(linkage_store.WAREHOUSE_FIELDS), SETTINGS, "dedupe_only"),
                                shipped["leadhub"]["trained_on"], SETTINGS,
                                trained_at=pd.Timestamp("2026-12-01", tz="UTC").to_pydatetime())
    assert fresh == shipped


def test_previous_keys_go_to_the_cluster_holding_most_former_members():
    # Agency ids sorted, as the clustering numbers them: b, c, a, d; a cluster's root is its smallest.
    nodes = pd.DataFrame({"agency": ["jail", "jail", "police", "treatment"], "person_token": ["b", "c", "a", "d"]})
    b, c, a, d = range(4)
    # The old person split: {a, b} keeps pk_old (2 former members), {c} and the new {d} get new keys.
    keys = _hand_over_keys(nodes, np.array([b, c, b, d]), pd.Series(["pk_old", "pk_old", "pk_old", None]), {"pk_old"})
    assert keys[a] == keys[b] == "pk_old"
    assert keys[c] != "pk_old" and keys[d] != "pk_old" and keys[c] != keys[d]
    # A cluster holding two former keys keeps the smaller one; the other key is not reused.
    keys = _hand_over_keys(nodes, np.array([b, c, b, b]), pd.Series(["pk_a", None, "pk_b", None]), {"pk_a", "pk_b"})
    assert keys[a] == keys[b] == keys[d] == "pk_a"
    assert keys[c] not in ("pk_a", "pk_b")


def _county(settings, master_key, people_n=700, seed=11):
    generate(settings.inbox_dir, settings.answers_dir, people=people_n, seed=seed)
    names = set()
    for f in settings.inbox_dir.rglob("*.csv"):
        os.utime(f, (1, 1))
        frame = pd.read_csv(f, dtype=str)
        for col in ("last_name", "first_name"):
            names |= set(frame[col].dropna().str.upper()) if col in frame else set()
    for agency in ("police", "jail", "prosecutor", "treatment"):
        assert all(o["status"] == "accepted" for o in ingest_agency(settings, agency, master_key))
    return names


def test_train_stores_a_private_versioned_model_that_builds_use_and_record(settings, master_key, capsys):
    _county(settings, master_key)
    with connect(settings.warehouse_path) as con:
        first = link_people(con)
    assert first["model"] == linkage_store.version_of(linkage_store.default_model())

    assert main(["linkage", "train", "--reason", "yearly re-estimate"]) == 0
    out = capsys.readouterr().out
    folder = linkage_store.models_dir(settings.data_dir)
    version = (folder / "current").read_text().strip()
    assert f"model {version} (was {first['model']})" in out
    assert "dob" in out and "weight new" in out
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in (folder / f"{version}.json", folder / f"{version}.svg", folder / "current"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    trained = linkage_store.current_model(settings.data_dir)
    assert trained["leadhub"]["trained_on"]["records"] > 1000
    # No run of 8 digits (a birth date, the start of an SSN) anywhere but in the version's timestamp.
    text = (folder / f"{version}.json").read_text().replace(version, "")
    assert not re.search(r"\d{8}", text)

    from leadhub.pipeline import build as build_warehouse
    files = sorted(folder.iterdir())
    counts = build_warehouse(settings, publish=False)
    assert counts["link.model"] == version
    assert sorted(folder.iterdir()) == files  # a build scores with the current model, it never trains
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        used = [v for (v,) in con.execute("SELECT model_version FROM ops.linkage_runs ORDER BY linked_at").fetchall()]
    assert used == [first["model"], version]


def test_explain_is_audited_and_shows_weights_without_clear_text(settings, master_key, capsys, audit_entries):
    names = _county(settings, master_key, people_n=400, seed=4)
    with connect(settings.warehouse_path) as con:
        link_people(con)
        key, n = con.execute("SELECT person_key, count(*) AS n FROM core.person_link GROUP BY 1 "
                             "ORDER BY n DESC, 1 LIMIT 1").fetchone()
    assert n >= 2
    assert main(["linkage", "explain", key]) == 2  # no reason: refused, nothing shown
    assert main(["linkage", "explain", key, "--reason", "correction request 7", "--who", "steward1"]) == 0
    out = capsys.readouterr().out
    assert "dob: exact" in out and "prior" in out and "match weight" in out
    entries = audit_entries()
    assert entries[-1]["action"] == "linkage explain" and entries[-1]["person_key"] == key
    assert entries[-1]["who"] == "steward1" and verify_audit(settings) == len(entries)
    words = set(out.upper().replace(":", " ").split())
    assert len(names) > 100 and not words & {n for n in names if len(n) > 3}

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        (a1, t1), (a2, t2) = con.execute("SELECT agency, person_token FROM core.person_link WHERE person_key = ? "
                                         "ORDER BY agency, person_token LIMIT 2", [key]).fetchall()
    assert main(["linkage", "explain", f"{a1}:{t1},{a2}:{t2}", "--reason", "same request"]) == 0
    out = capsys.readouterr().out
    # Only the pair asked about: an agency id recorded two ways has one identity row per way,
    # so there may be more than one row pair, but every one joins these two ids.
    assert out.count("match weight") >= 1
    assert out.count("match weight") == out.count(f"  ~ {a2}:{t2}") + out.count(f"  ~ {a1}:{t1}"), out
    assert main(["linkage", "explain", f"{a1}:{t1},{a2}:nosuchtoken", "--reason", "typo"]) == 2
    assert verify_audit(settings) == len(entries) + 2  # every attempt is on the record, refused or not
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:  # Splink ran elsewhere
        assert not con.execute("SELECT table_name FROM information_schema.tables "
                               "WHERE table_name LIKE '%splink%'").fetchall()


def test_nothing_to_compare_gives_no_pairs_and_an_empty_person_link(settings, master_key):
    one = encode(people(1, 5))
    assert linkage_model.match(one, None, SETTINGS)[0].empty
    assert linkage_model.match(one, Encoded({f: v[:0] for f, v in one.fields.items()}, 0), SETTINGS)[0].empty
    with connect(settings.warehouse_path) as con:
        assert link_people(con)["persons"] == 0
        assert con.execute("SELECT count(*) FROM core.person_link").fetchall() == [(0,)]


def test_candidate_pairs_per_rule_equal_splinks_count_and_a_quadratic_rule_is_logged(caplog):
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    frame = people(400, 3)
    frame.loc[::7, "dob"] = ""                     # missing values open no block
    enc = encode(frame)
    specs = fields_of(SETTINGS)
    con = linkage_model.scratch()
    linkage_model.load_table(con, linkage_model.LEFT, enc, specs)
    fields = set(enc.fields)
    rules = [["dob"], ["first_name", "last_name"], ["last_name"], ["names_swapped"]]
    counts = linkage_model.candidate_pairs(con, rules, fields, two_inputs=False)
    df = DuckDBAPI(con).register(linkage_model.LEFT, table_name="people")
    for rule, (name, n_pairs, largest) in zip(rules, counts):
        sql, _ = linkage_model.rule_sql(rule, fields)
        [splink] = count_comparisons_from_blocking_rules(df, blocking_rules=sql, link_type="dedupe_only",
                                                         record_sample_proportion=1.0)
        assert (name, n_pairs) == (", ".join(rule), splink["marginal_comparison_count"])
        assert (largest >= 2) == (n_pairs > 0)
    assert counts[2][1] > 400 > counts[1][1]   # 100 surnames: about 2 pairs per record
    with caplog.at_level("INFO", logger="transforms.linkage_model"):
        linkage_model.log_candidate_pairs(con, dict(SETTINGS, blocking=rules, blocking_guard={"max_pairs_per_record": 1}),
                                          fields, False, 400)
    con.close()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "[last_name]" in warned[0]
    assert not re.search(r"\d{6,}", caplog.text.replace(str(counts[2][1]), ""))  # counts only, no tokens


def test_names_rare_blocks_only_names_held_by_few_records_and_near_filters_narrow_a_rule():
    frame = people(300, 4)
    frame.loc[:59, ["first", "last"]] = ["Anna", "Bergmann"]       # one common full name: 60 records
    frame.loc[100:103, ["first", "last", "dob"]] = [["Greta", "Kalovic", "1901-05-06"], ["Pavel", "Zanoni", "1901-05-06"],
                                                    ["Clara", "Morelli", "1901-07-08"], ["Clara", "Moretti", "1901-08-07"]]
    enc = encode(frame)
    con = linkage_model.scratch()
    linkage_model.load_table(con, linkage_model.LEFT, enc, fields_of(SETTINGS), rare_names_max=20)
    fields = set(enc.fields)
    [(_, rare, largest)] = linkage_model.candidate_pairs(con, [["names_rare"]], fields, two_inputs=False)
    [(_, full, _)] = linkage_model.candidate_pairs(con, [["first_name", "last_name"]], fields, two_inputs=False)
    assert full >= 60 * 59 // 2 and largest <= 20 and 0 < rare < full - 60 * 59 // 2 + 1
    sql, _ = linkage_model.rule_sql(["dob_swap", "names_near"], fields)
    near = con.execute(f"SELECT l.unique_id, r.unique_id FROM {linkage_model.LEFT} l JOIN {linkage_model.LEFT} r "
                       f"ON l.unique_id < r.unique_id AND {sql} WHERE l.unique_id BETWEEN 100 AND 103").fetchall()
    con.close()
    assert near == [(102, 103)]   # same date (swapped) and a surname one letter off; not two strangers
    assert linkage_model.rule_sql(["names_rare"], {"first_name"}) is None
