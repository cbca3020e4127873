"""Disclosure levels of contract columns: declared, defaulted, and refused when inconsistent."""

import pytest

from leadhub.core.contracts import CONTRACTS_DIR, ContractError, load_contracts

RECORD_NUMBERS = {"booking_id", "arrest_id", "referral_id", "case_id", "contact_id", "episode_id",
                  "officer_id"}


def test_every_shipped_contract_declares_record_numbers_officers_and_dates():
    for contract in load_contracts().values():
        text = contract.source.read_text()
        for column in contract.columns:
            line = next(ln for ln in text.splitlines() if f"{{name: {column.name}," in ln)
            if column.name in RECORD_NUMBERS or column.is_date and not column.identifier:
                assert "disclosure: quasi_identifier" in line, (contract.name, column.name)
            if column.is_date and not column.identifier:
                assert "date_precision: year" in line, (contract.name, column.name)
            if column.identifier:
                assert column.disclosure == "identifier"


def _contacts(tmp_path, old: str, new: str):
    text = (CONTRACTS_DIR / "treatment" / "contacts.yaml").read_text()
    assert old in text
    folder = tmp_path / "treatment"
    folder.mkdir(parents=True)
    (folder / "contacts.yaml").write_text(text.replace(old, new))
    return load_contracts(tmp_path)["treatment_contacts"]


def test_a_contract_without_disclosure_keys_gets_safe_defaults(tmp_path):
    contract = _contacts(tmp_path, "disclosure: quasi_identifier, ", "")
    # contact_id: a text primary key (record number); contact_date: a date (to the year unless declared);
    # client_id: an identifier by its role; service_type: plain.
    assert [(c.name, c.disclosure, c.date_precision) for c in contract.columns] == [
        ("contact_id", "quasi_identifier", None),
        ("client_id", "identifier", None),
        ("contact_date", "quasi_identifier", "year"),  # date_precision is still declared
        ("service_type", "plain", None)]
    contract = _contacts(tmp_path / "b", "disclosure: quasi_identifier, date_precision: year, ", "")
    assert contract.column("contact_date").date_precision == "year"


@pytest.mark.parametrize("old, new, message", [
    ("{name: service_type,", "{name: service_type, disclosure: secret,", "has disclosure 'secret'"),
    ("{name: service_type,", "{name: service_type, disclosure: identifier,", "identifier role"),
    ("identifier: agency_person_id,", "identifier: agency_person_id, disclosure: plain,", "identifier role"),
    ("date_precision: year", "date_precision: hour", "date_precision"),
    ("{name: service_type,", "{name: service_type, date_precision: day,", "date_precision"),
])
def test_inconsistent_disclosure_is_refused(tmp_path, old, new, message):
    with pytest.raises(ContractError, match=message):
        _contacts(tmp_path, old, new)
