"""Disclosure helpers: published file names, texts quoting them, and the snapshot's pseudonyms."""

from leadhub.core.keys import MasterKey
from transforms.disclosure import (WITHHELD_NAME, column_disclosure, file_name_function,
                                   file_text_function, pseudonym_function)


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


def test_published_columns_take_their_contract_level():
    assert column_disclosure("core", "booking", "booking_ts", "TIMESTAMP").precision == "year"
    assert column_disclosure("core", "booking", "booking_date", "DATE").precision == "year"
    assert column_disclosure("core", "case_charge", "arrest_id", "VARCHAR").treatment == "pseudonym"
    assert column_disclosure("marts", "cohort", "index_date", "DATE").precision == "year"
    assert column_disclosure("marts", "referrals_monthly", "month", "DATE", person_level=False).precision == "exact"
    assert column_disclosure("core", "booking", "jail_days", "BIGINT").treatment == "keep"
    assert column_disclosure("ops", "file_ledger", "archive_path", "VARCHAR").treatment == "withhold"
