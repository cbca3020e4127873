"""The linkage benchmark's own arithmetic: scoring, one-to-one selection and data preparation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from linkage_data import mmddyyyy_to_yyyymmdd, write_pair  # noqa: E402
from linkage_score import score, true_pair_count  # noqa: E402


def test_score_counts_pairs_against_every_record_pair_of_an_entity():
    left = {"a1": "X", "a2": "Y", "a3": "Z", "a4": "W"}
    right = {"b1": "X", "b2": "Y", "b3": "Y", "b4": "V"}
    # True pairs: X (1x1) + Y (1x2) = 3; Z, W, V have no partner.
    assert true_pair_count(left, right) == 3
    # Predicted: (a1,b1) right, (a2,b3) right, (a3,b4) wrong -> tp 2 of 3 predicted, 2 of 3 true.
    s = score([("a1", "b1"), ("a2", "b3"), ("a3", "b4")], left, right)
    assert (s["tp"], s["predicted"], s["true"]) == (2, 3, 3)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)  # 2PR/(P+R) with P = R = 2/3


def test_score_of_no_prediction_is_zero_not_an_error():
    s = score([], {"a": "X"}, {"b": "X"})
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)


def test_score_counts_a_repeated_pair_once():
    s = score([("a", "b"), ("a", "b")], {"a": "X"}, {"b": "X"})
    assert (s["tp"], s["predicted"], s["f1"]) == (1, 1, 1.0)


def test_dates_are_rearranged_as_text_so_typos_survive():
    dates = pd.Series(["05/06/1994", "13/45/2001", "05061994", "", None, "1994-05-06"])
    # Month 13 and day 45 are impossible but kept (a linker decides); unknown shapes stay as they are.
    assert mmddyyyy_to_yyyymmdd(dates).tolist()[:4] == ["19940506", "20011345", "19940506", ""]
    assert pd.isna(mmddyyyy_to_yyyymmdd(dates)[4])
    assert mmddyyyy_to_yyyymmdd(dates)[5] == "1994-05-06"


def test_written_pair_maps_only_shared_informative_columns_and_hides_the_truth(tmp_path):
    left = pd.DataFrame({"entity": ["1", "2", "3"], "first_name": ["Ann", "Bo", "Cy"],
                         "dob": ["19900101", "19910101", "19920101"], "city": ["Anytown"] * 3,
                         "ssn": ["1", "2", "3"]})
    right = pd.DataFrame({"entity": ["2", "3"], "first_name": ["Bo", "Cy"], "dob": ["19910101", "19920101"],
                          "city": ["Anytown", "Anytown"]})
    write_pair(tmp_path, "t", left, right, seed=1)
    mapping = json.loads((tmp_path / "t" / "mapping.json").read_text())
    # ssn: left only; city: one value everywhere -> neither is mapped.
    assert mapping == {"id": "rec_id", "fields": {"first_name": "first_name",
                                                  "dob": {"column": "dob", "format": "%Y%m%d"}}}
    written = pd.read_csv(tmp_path / "t" / "left.csv", dtype=str)
    assert list(written.columns) == ["rec_id", "first_name", "dob"]
    truth = pd.read_csv(tmp_path / "t" / "left_truth.csv", dtype=str)
    joined = written.merge(truth, on="rec_id")
    assert sorted(zip(joined["entity"], joined["first_name"])) == [("1", "Ann"), ("2", "Bo"), ("3", "Cy")]


def test_splink_baseline_keeps_each_record_in_its_best_pair_only():
    from splink_runner import one_to_one

    pred = pd.DataFrame({"left_id": ["a", "a", "b", "c"], "right_id": ["x", "y", "x", "z"],
                         "score": [0.9, 0.8, 0.95, 0.6]})
    # Best first: (b,x) 0.95 takes x; (a,x) 0.9 loses x; (a,y) 0.8 is a's best free; (c,z) 0.6 stays.
    kept = sorted(zip(*one_to_one(pred)[["left_id", "right_id"]].to_numpy().T))
    assert kept == [("a", "y"), ("b", "x"), ("c", "z")]


def test_splink_baseline_blocks_and_trains_by_role_not_by_data_set():
    from splink_runner import rules

    predict, deterministic, em = rules({"first_name", "last_name", "dob", "ssn"})
    sql = lambda rs: [r.get_blocking_rule("duckdb").blocking_rule_sql for r in rs]  # noqa: E731
    assert len(predict) == 4 and len(em) == 2
    assert any("dob" in s and "first_name" in s for s in sql(deterministic))
    assert any("ssn" in s for s in sql(deterministic))
    # Names and an address only: the match prior falls back to names + street number.
    _, deterministic, em = rules({"first_name", "last_name", "street_number", "address"})
    assert sql(deterministic) and all("street_number" in s for s in sql(deterministic))
    assert len(em) == 2


def test_scale_copies_are_new_people_consistent_across_both_files():
    import numpy as np

    from linkage_scale import _copy

    day = pd.Timestamp
    census = pd.DataFrame({
        "simulant_id": ["s1", "s2", "s3"], "household_id": ["h1", "h1", "h2"], "guardian_1": [None, "s1", None],
        "guardian_2": [None, None, None], "first_name": ["Ann", "Bob", "Cy"], "last_name": ["Lee", "Lee", "Ng"],
        "middle_initial": ["M", "J", "Q"], "street_name": ["Oak", "Oak", "Elm"],
        "date_of_birth": [day("1990-01-01"), day("2015-06-01"), day("1970-03-03")],
        "copy_date_of_birth": [day("2015-06-01"), day("1990-01-01"), pd.NaT]})
    ssa = pd.DataFrame({
        "simulant_id": ["s1", "s3", "s4"], "first_name": ["Ann", "Cy", "Dee"], "last_name": ["Lee", "Ng", "Ox"],
        "middle_name": ["Mary", "Quinn", "Rae"], "ssn": ["111-11-1111", "222-22-2222", "333-33-3333"],
        "copy_ssn": [None, None, "111-11-1111"], "event_type": ["creation"] * 3,
        "date_of_birth": [day("1990-01-01"), day("1970-03-03"), day("1950-01-01")],
        "event_date": [day("1990-01-01"), day("1970-03-03"), day("1950-01-01")],
        "copy_date_of_birth": [pd.NaT] * 3})
    c0, s0 = _copy(census, ssa, 0, np.random.default_rng(0))
    pd.testing.assert_frame_equal(c0, census)  # copy 0 is the sample itself
    c, s = _copy(census, ssa, 1, np.random.default_rng(0))
    assert c["simulant_id"].tolist() == ["1cs1", "1cs2", "1cs3"] and c["guardian_1"].tolist()[1] == "1cs1"
    both = c.merge(s, on="simulant_id", suffixes=("_c", "_s"))
    assert len(both) == 2  # s1 and s3 are in both files, under the same new id
    # The same person keeps one name, one birth date and matching initials in both files.
    assert (both["first_name_c"] == both["first_name_s"]).all() and (both["last_name_c"] == both["last_name_s"]).all()
    assert (both["date_of_birth_c"] == both["date_of_birth_s"]).all()
    assert (both["middle_initial"] == both["middle_name"].str[:1]).all()
    # A household keeps its surname and its age gap (one shift per household).
    assert c["last_name"][0] == c["last_name"][1]
    assert c["date_of_birth"][1] - c["date_of_birth"][0] == day("2015-06-01") - day("1990-01-01")
    # New SSNs, the borrowed one following its owner's.
    assert not set(s["ssn"]) & set(ssa["ssn"]) and s["copy_ssn"][2] == s["ssn"][0]
