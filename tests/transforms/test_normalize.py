from datetime import date

from transforms import normalize


def test_surnames_ignore_case_accents_punctuation_hyphens_and_suffixes():
    assert normalize.surname("García-López") == normalize.surname("GARCIA LOPEZ") == "GARCIALOPEZ"
    assert normalize.surname("O'Brien Jr.") == normalize.surname("OBRIEN") == "OBRIEN"


def test_given_name_is_kept_as_written_and_nicknames_share_a_formal_form():
    # No nickname mapping in the given name itself: "Bill" may be William or Robert.
    assert normalize.given_name("Bill") == "BILL" and normalize.given_name("william") == "WILLIAM"
    # The nicknames dataset: BILL -> {ROBERT, WILL, WILLIAM, WILLIS}; the name itself comes first.
    bill, william = normalize.given_name_forms("Bill"), normalize.given_name_forms("William")
    assert bill[0] == "BILL" and william[0] == "WILLIAM"
    assert "WILLIAM" in set(bill) & set(william)
    assert "MARGARET" in set(normalize.given_name_forms("Peggy")) & set(normalize.given_name_forms("Margaret"))
    # The supplement (Spanish hypocoristics the English dataset lacks).
    assert "JOSE" in normalize.given_name_forms("Pepe")
    # No relation: nothing in common.
    assert not set(normalize.given_name_forms("Zebediah")) & set(william)
    assert normalize.given_name_forms("") == normalize.given_name_forms(None) == ()


def test_a_given_name_field_can_hold_a_middle_name_or_initial():
    assert (normalize.given_name("Mary Ann"), normalize.middle_in_given("Mary Ann")) == ("MARY", "ANN")
    assert (normalize.given_name("John Q."), normalize.middle_in_given("John Q.")) == ("JOHN", "Q")
    # A leading initial is not the given name: "J. Robert" goes by Robert.
    assert (normalize.given_name("J. Robert"), normalize.middle_in_given("J. Robert")) == ("ROBERT", "")
    # A double given name is also offered joined, as it is often written; "John Q" is not.
    assert "MARYANN" in normalize.given_name_forms("Mary Ann")
    assert "JOHNQ" not in normalize.given_name_forms("John Q")
    assert normalize.middle_name("nmn") == "" and normalize.middle_name("j.") == "J"


def test_placeholder_names_are_recognised_on_their_normalized_form():
    for text in ("Unknown", "UNK", "n/a", "Declined", "Refused", "First Name", "FNU", "Baby Girl",
                 "baby-boy", "Infant", "NULL", "None", "Test", "J", "j."):
        assert normalize.placeholder_name(text, "given"), text
    for text in ("Resident", "Unknown", "Last Name", "LNU", "Declined", "X"):
        assert normalize.placeholder_name(text, "surname"), text
    assert normalize.placeholder_name("NMN", "middle") and normalize.placeholder_name("NMI", "middle")
    # Real names stay names: DOE alone is a surname, a single letter is a middle initial,
    # NA is a Korean surname, "Last Name" is a placeholder only in a surname-or-any field.
    for text, role in (("Doe", "surname"), ("Smith", "surname"), ("J", "middle"), ("Na", "surname"),
                       ("Jo", "given"), ("Bill", "given"), ("", "given"), (None, "surname")):
        assert not normalize.placeholder_name(text, role), (text, role)


def test_john_and_jane_doe_are_placeholders_only_as_a_pair():
    assert normalize.placeholder_pair("John", "Doe") and normalize.placeholder_pair("JANE", "doe")
    assert not normalize.placeholder_pair("Richard", "Doe")
    assert not normalize.placeholder_pair("John", "Smith")
    assert not normalize.placeholder_pair("John", None)


def test_sentinel_birth_dates_are_placeholders():
    for d in (date(1900, 1, 1), date(1899, 12, 31), date(1, 1, 1), date(9999, 12, 31), date(1888, 5, 6)):
        assert normalize.placeholder_date(d), d
    # 1970-01-01 is a real birth date of real people (Unix time zero is not listed).
    for d in (date(1900, 1, 2), date(1970, 1, 1), date(1980, 2, 3), None):
        assert not normalize.placeholder_date(d), d


def test_impossible_and_sentinel_ssns_are_rejected():
    assert normalize.ssn("123-45-6780") == "123456780"
    for bad in ("000-12-3456", "666-12-3456", "912-34-5678", "111-11-1111", "123-00-4567",
                "123-45-0000", "12345", "", None, "000-00-0000", "999999999", "999-99-9999",
                "123-45-6789"):
        assert normalize.ssn(bad) is None, bad


def test_age_on_event_date():
    assert normalize.age_on(date(1990, 6, 15), date(2020, 6, 14)) == 29
    assert normalize.age_on(date(1990, 6, 15), date(2020, 6, 15)) == 30
    assert normalize.age_on(None, date(2020, 1, 1)) is None


def test_phone_and_sex_codes():
    assert normalize.phone("+1 (206) 555-0100") == "2065550100"
    assert normalize.phone("555-0100") is None
    assert normalize.sex("female") == "F" and normalize.sex("u") is None
