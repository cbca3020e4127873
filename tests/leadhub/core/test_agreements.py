"""Agreements as code: the shipped files parse, bad files are refused naming file and key,
and an agency without an agreement in force is an error naming the agency."""

from datetime import date

import pytest

from leadhub.core.agreements import AgreementError, agreement_for, load_agreements, permitted
from leadhub.core.contracts import agencies

GOOD = """reference: DSA-7
agency: police
effective: 2024-01-01
end: 2024-12-31
purposes: [evaluation, operations]
retention_days: 365
small_cell_threshold: 10
"""


def write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text)
    return folder


def test_every_contracted_agency_ships_an_agreement_in_force_today():
    shipped = load_agreements()
    assert sorted(shipped) == agencies()
    for agency in shipped:
        assert agreement_for(agency, date.today()).agency == agency


def test_dates_are_inclusive_and_outside_them_the_error_names_agency_and_reference(tmp_path):
    write(tmp_path, "police", GOOD)
    assert agreement_for("police", date(2024, 1, 1), tmp_path).reference == "DSA-7"
    assert agreement_for("police", date(2024, 12, 31), tmp_path).reference == "DSA-7"
    for day in (date(2023, 12, 31), date(2025, 1, 1)):
        with pytest.raises(AgreementError) as err:
            agreement_for("police", day, tmp_path)
        assert "agency police" in str(err.value) and "DSA-7" in str(err.value)
        assert "not in force" in str(err.value)


def test_missing_agreement_names_the_agency(tmp_path):
    write(tmp_path, "police", GOOD)
    with pytest.raises(AgreementError, match="agency jail has no data-sharing agreement"):
        agreement_for("jail", date(2024, 6, 1), tmp_path)


def test_unknown_key_is_refused_naming_file_and_key(tmp_path):
    write(tmp_path, "police", GOOD + "retention_years: 3\n")
    with pytest.raises(AgreementError, match=r"^agreement police.yaml: retention_years: unknown key"):
        load_agreements(tmp_path)


@pytest.mark.parametrize("change, message", [
    (("purposes: [evaluation, operations]", "purposes: [marketing]"), "purposes"),
    (("end: 2024-12-31", "end: 2023-12-31"), "end is before effective"),
    (("small_cell_threshold: 10", "small_cell_threshold: 0"), "small_cell_threshold"),
    (("agency: police", "agency: jail"), "agency must be police"),
])
def test_bad_values_are_refused_with_one_line(tmp_path, change, message):
    write(tmp_path, "police", GOOD.replace(*change))
    with pytest.raises(AgreementError, match=message) as err:
        load_agreements(tmp_path)
    assert "\n" not in str(err.value)


def test_permitted_keeps_agencies_whose_agreement_allows_the_purpose(tmp_path):
    write(tmp_path, "police", GOOD)
    write(tmp_path, "jail", GOOD.replace("police", "jail").replace("evaluation, ", ""))
    # jail's agreement allows operations only: it is left out of evaluation, kept for operations.
    assert sorted(permitted(["police", "jail"], "evaluation", date(2024, 6, 1), tmp_path)) == ["police"]
    assert sorted(permitted(["police", "jail"], "operations", date(2024, 6, 1), tmp_path)) == ["jail", "police"]
    with pytest.raises(AgreementError, match="agency jail"):
        permitted(["jail"], "operations", date(2025, 6, 1), tmp_path)
