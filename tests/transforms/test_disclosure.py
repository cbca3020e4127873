"""Disclosure helpers: published file names, texts quoting them, and the snapshot's pseudonyms."""

from leadhub.core.keys import MasterKey
import duckdb

from transforms.disclosure import (PSEUDONYM_TABLE, WITHHELD_NAME, Disclosure, column_disclosure,
                                   file_name_function, file_text_function, published_query,
                                   pseudonym_function, pseudonym_table)


def test_file_names_keep_only_a_date_stamp():
    shown = file_name_function()
    assert shown("jail_bookings_20241231.csv") == "jail_bookings_20241231.csv"
    assert shown("jail_bookings_20240101_20240131.csv") == "jail_bookings_20240101_20240131.csv"
    assert shown("police_arrests_2024-12.csv") == "police_arrests_2024-12.csv"
    # A record number, a person, or a number that is no valid date: the pattern only.
    assert shown("police_arrests_A104233.csv") == "police_arrests_*.csv"
    assert shown("treatment_clients_SMITH_JOHN.csv") == "treatment_clients_*.csv"
    assert shown("jail_bookings_10023456.csv") == "jail_bookings_*.csv"      # year 1002
    assert shown("jail_bookings_20241399.csv") == "jail_bookings_*.csv"      # month 13
    assert shown("unexpected_name.txt") == WITHHELD_NAME
    assert shown(None) is None


def test_texts_quote_file_names_as_published_also_when_escaped():
    shown = file_name_function()
    names = ["police_arrests_A104233.csv", "police_arrests_20241231.csv", "bad\nname_B77.csv"]
    text = file_text_function(names, shown)
    assert text("police_arrests_A104233.csv, row 4: rule 'x' failed") == \
        "police_arrests_*.csv, row 4: rule 'x' failed"
    assert text("identical to police_arrests_20241231.csv") == "identical to police_arrests_20241231.csv"
    assert text("bad\\x0aname_B77.csv: rule 'file name' failed") == f"{WITHHELD_NAME}: rule 'file name' failed"
    assert text(None) is None


def test_snapshot_pseudonyms_are_keyed_stable_and_unlike_warehouse_tokens(master_key):
    from transforms.pseudonymize import Pseudonymizer

    pseudonym = pseudonym_function(master_key.subkey("publication"))
    assert pseudonym("A104233") == pseudonym("A104233") != pseudonym("A104234")
    assert len(pseudonym("A104233")) == 24 and pseudonym(None) is None
    other = pseudonym_function(MasterKey(b"\x01" * 32).subkey("publication"))
    assert other("A104233") != pseudonym("A104233")
    token = Pseudonymizer(master_key).token("apid:police", "A104233")
    assert not token.startswith(pseudonym("A104233"))


def test_set_based_pseudonyms_equal_the_per_value_function(master_key):
    key = master_key.subkey("publication")
    values = ["A104233", "A104234", "", "0", "ÄRZT-7|1", "x" * 500, "12 34"]
    table = pseudonym_table(key, values)
    pseudonym = pseudonym_function(key)
    assert table.column("lh_value").to_pylist() == values
    assert table.column("lh_pseudonym").to_pylist() == [pseudonym(v) for v in values]


def test_published_query_joins_pseudonyms_keeps_row_order_and_nulls(master_key):
    key = master_key.subkey("publication")
    pseudonym = pseudonym_function(key)
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (3, 'C9', 7), (1, NULL, 8), (2, 'A1', 7), "
                "(5, 'C9', NULL), (4, 'B2', 9)) v(n, arrest_id, officer)")
    con.register("input", pseudonym_table(key, ["A1", "B2", "C9", "7", "8", "9"]))
    con.execute(f"CREATE TEMP TABLE {PSEUDONYM_TABLE} AS SELECT * FROM input")
    keep, pseudo = Disclosure("plain"), Disclosure("quasi_identifier", "pseudonym")
    query = published_query("t", {"n": ("INTEGER", keep), "arrest_id": ("VARCHAR", pseudo),
                                  "officer": ("INTEGER", pseudo)}, " WHERE n < 5")
    rows = con.execute(query).fetchall()
    assert rows == [(3, pseudonym("C9"), pseudonym("7")), (1, None, pseudonym("8")),
                    (2, pseudonym("A1"), pseudonym("7")), (4, pseudonym("B2"), pseudonym("9"))]


def test_published_columns_take_their_contract_level():
    assert column_disclosure("core", "booking", "booking_ts", "TIMESTAMP").precision == "year"
    assert column_disclosure("core", "booking", "booking_date", "DATE").precision == "year"
    assert column_disclosure("core", "case_charge", "arrest_id", "VARCHAR").treatment == "pseudonym"
    assert column_disclosure("marts", "cohort", "index_date", "DATE").precision == "year"
    assert column_disclosure("marts", "referrals_monthly", "month", "DATE", person_level=False).precision == "exact"
    assert column_disclosure("core", "booking", "jail_days", "BIGINT").treatment == "keep"
    assert column_disclosure("ops", "file_ledger", "archive_path", "VARCHAR").treatment == "withhold"
