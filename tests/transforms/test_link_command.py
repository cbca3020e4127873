"""`leadhub link`: two CSV files (or one) in, record-id pairs with scores out."""

import csv
import json

from leadhub.cli import main

LEFT = """id,given,family,born,ssn,town
L1,Katherine,Oyelaran,1984-07-12,212-55-1234,Springfield
L2,Marcus,Delacroix-Finch,1990-01-30,,Shelbyville
L3,Priya,Raman,1979-11-02,301-22-9876,Ogdenville
L4,Tomasz,Wrobel,1966-03-15,,Springfield
"""
# The same people with the usual damage, plus one stranger who shares a birth date and has a
# similar given name (a birth date alone opens no block: see the settings' blocking).
RIGHT = """id,given,family,born,ssn,town
R1,Kathryn,Oyelaran,1984-12-07,212-55-1234,Springfeld
R2,Marcus,Delacroix Finch,1990-01-30,,Shelbyville
R3,Priya,Ramen,1979-11-02,301-22-9867,Ogdenville
R4,Tomas,Wróbel,1966-03-15,,Springfield
R5,Katharina,Achterberg,1984-07-12,,Capital City
"""
MAPPING = {"id": "id", "fields": {"first_name": "given", "last_name": "family", "dob": "born",
                                  "ssn": "ssn", "city": "town"}}


def run(tmp_path, left, right, *extra):
    (tmp_path / "left.csv").write_text(left)
    args = ["link", "--left", str(tmp_path / "left.csv"), "--columns", str(tmp_path / "map.json"),
            "--out", str(tmp_path / "pairs.csv"), *extra]
    if right is not None:
        (tmp_path / "right.csv").write_text(right)
        args += ["--right", str(tmp_path / "right.csv")]
    (tmp_path / "map.json").write_text(json.dumps(MAPPING))
    assert main(args) == 0
    with open(tmp_path / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_links_two_files_despite_typos_and_outputs_only_ids_and_scores(tmp_path, settings):
    pairs = run(tmp_path, LEFT, RIGHT)
    assert {(p["left_id"], p["right_id"]) for p in pairs} == {("L1", "R1"), ("L2", "R2"), ("L3", "R3"),
                                                              ("L4", "R4")}
    assert set(pairs[0]) == {"left_id", "right_id", "score"}
    assert all(float(p["score"]) > 0 for p in pairs)
    text = (tmp_path / "pairs.csv").read_text()
    for raw in ("Katherine", "Oyelaran", "1984", "212", "Springfield"):
        assert raw not in text


def test_deduplicates_one_file(tmp_path, settings):
    pairs = run(tmp_path, LEFT + RIGHT.split("\n", 1)[1], None)
    assert {(p["left_id"], p["right_id"]) for p in pairs} == {("L1", "R1"), ("L2", "R2"), ("L3", "R3"),
                                                              ("L4", "R4")}


def test_the_installation_key_gives_the_same_pairs(tmp_path, settings):
    assert len(run(tmp_path, LEFT, RIGHT, "--installation-key")) == 4


def test_a_mapping_naming_a_missing_column_is_refused_with_a_reason(tmp_path, settings, capsys):
    (tmp_path / "left.csv").write_text(LEFT)
    (tmp_path / "map.json").write_text(json.dumps({"id": "id", "fields": {"first_name": "nope"}}))
    code = main(["link", "--left", str(tmp_path / "left.csv"), "--columns", str(tmp_path / "map.json"),
                 "--out", str(tmp_path / "pairs.csv")])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_threshold_decides_which_candidate_pairs_are_written(tmp_path, settings):
    stranger = ("L1", "R5")  # same birth date, a similar given name: a candidate, not a match
    assert stranger not in {(p["left_id"], p["right_id"]) for p in run(tmp_path, LEFT, RIGHT)}
    low = run(tmp_path, LEFT, RIGHT, "--threshold", "-100")
    assert stranger in {(p["left_id"], p["right_id"]) for p in low}
    assert not run(tmp_path, LEFT, RIGHT, "--threshold", "500")


def test_record_ids_that_look_like_formulas_are_escaped_in_the_output(tmp_path, settings):
    pairs = run(tmp_path, LEFT.replace("L1,", "=HYPERLINK(1),", 1), RIGHT)
    assert ("'=HYPERLINK(1)", "R1") in {(p["left_id"], p["right_id"]) for p in pairs}


def test_middle_names_and_initials_tell_twins_apart(tmp_path, settings):
    """Twins share surname and birth date; only the middle name (or its initial) separates them."""
    global MAPPING
    left = "id,given,middle,family,born\nT1,Alex,Jordan,Mbeki,2001-09-09\nT2,Sam,Jordan,Kowalczyk,1985-02-14\n"
    right = "id,given,middle,family,born\nU1,Alex,R,Mbeki,2001-09-09\nU2,Alex,J,Mbeki,2001-09-09\n"
    saved = MAPPING
    MAPPING = {"id": "id", "fields": {"first_name": "given", "middle_name": "middle", "last_name": "family",
                                      "dob": "born"}}
    try:
        pairs = run(tmp_path, left, right, "--one-to-one")
    finally:
        MAPPING = saved
    # U2 (initial J agrees with Jordan) outweighs U1 (initial R disagrees): one-to-one keeps T1-U2.
    # Without the middle name the two would tie and the tie goes to U1, the smaller id.
    assert {(p["left_id"], p["right_id"]) for p in pairs} == {("T1", "U2")}


def test_an_unknown_mapping_field_is_refused_naming_the_known_ones(tmp_path, settings, capsys):
    (tmp_path / "left.csv").write_text(LEFT)
    (tmp_path / "map.json").write_text(json.dumps({"id": "id", "fields": {"middle_initial": "given"}}))
    code = main(["link", "--left", str(tmp_path / "left.csv"), "--columns", str(tmp_path / "map.json"),
                 "--out", str(tmp_path / "pairs.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "middle_initial" in err
    assert "middle_name" in err and "first_name" in err and len(err.strip().splitlines()) == 1
