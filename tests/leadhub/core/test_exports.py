"""Spreadsheet-bound CSV exports never carry a live formula."""

import csv
from decimal import Decimal

import pandas as pd
import pytest

from leadhub.core.exports import escape_cell, write_csv, write_frame


@pytest.mark.parametrize("value, written", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("-A1", "'-A1"),
    ("-2e3", "'-2e3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("-12", "-12"),          # a plain negative number: a spreadsheet reads it as that number only
    ("-0.5", "-0.5"),
    ("housing", "housing"),
    ("a=b", "a=b"),          # only the first character matters
    ("", ""),
    (None, ""),
    (float("nan"), ""),
    (-3, -3),
    (-2.5, -2.5),
    (Decimal("-1.25"), Decimal("-1.25")),
])
def test_escape_cell(value, written):
    assert escape_cell(value) == written


def test_write_csv_escapes_every_cell_and_keeps_delimiters_inside(tmp_path):
    path = tmp_path / "out.csv"
    n = write_csv(path, ["=month", "count"], [["=1+1", -4], ["a,b \"c\"", 12], ["@x", None]])
    assert n == 3
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["'=month", "count"], ["'=1+1", "-4"], ["a,b \"c\"", "12"], ["'@x", ""]]
    assert not (tmp_path / "out.csv.tmp").exists()


def test_write_frame(tmp_path):
    frame = pd.DataFrame({"door": ["=cmd", "social"], "referrals": [3, None]})
    path = tmp_path / "f.csv"
    assert write_frame(path, frame) == 2
    assert path.read_text().splitlines() == ["door,referrals", "'=cmd,3.0", "social,"]
