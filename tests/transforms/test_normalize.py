from datetime import date

from transforms import normalize


def test_surnames_ignore_case_accents_punctuation_hyphens_and_suffixes():
    assert normalize.surname("García-López") == normalize.surname("GARCIA LOPEZ") == "GARCIALOPEZ"
    assert normalize.surname("O'Brien Jr.") == normalize.surname("OBRIEN") == "OBRIEN"


def test_nicknames_map_to_the_formal_given_name():
    assert normalize.given_name("Bill") == normalize.given_name("william") == "WILLIAM"
    assert normalize.given_name("Liz") == "ELIZABETH"
    assert normalize.given_name("Zebediah") == "ZEBEDIAH"


def test_impossible_ssns_are_rejected():
    assert normalize.ssn("123-45-6780") == "123456780"
    for bad in ("000-12-3456", "666-12-3456", "912-34-5678", "111-11-1111", "123-00-4567",
                "123-45-0000", "12345", "", None):
        assert normalize.ssn(bad) is None, bad


def test_age_on_event_date():
    assert normalize.age_on(date(1990, 6, 15), date(2020, 6, 14)) == 29
    assert normalize.age_on(date(1990, 6, 15), date(2020, 6, 15)) == 30
    assert normalize.age_on(None, date(2020, 1, 1)) is None


def test_phone_and_sex_codes():
    assert normalize.phone("+1 (206) 555-0100") == "2065550100"
    assert normalize.phone("555-0100") is None
    assert normalize.sex("female") == "F" and normalize.sex("u") is None
