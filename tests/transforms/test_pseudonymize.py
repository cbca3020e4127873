from datetime import date

from leadhub.core.contracts import load_contracts
from leadhub.core.warehouse import staging_columns
from transforms.pseudonymize import Pseudonymizer


def _police_referral_cols(**over):
    cols = {
        "referral_id": ["R1"], "person_id": ["P0001"], "last_name": ["García-López"],
        "first_name": ["Bill"], "dob": [date(1980, 2, 3)], "ssn": ["123-45-6780"], "sex": ["M"],
        "race": ["WHITE"], "ethnicity": ["HISPANIC"], "referral_date": [date(2022, 5, 1)],
        "referral_type": ["social_contact"], "offense_category": ["drug"], "precinct": ["NORTH"],
        "officer_id": ["O17"],
    }
    cols.update(over)
    return cols


def test_identifiers_are_replaced_by_tokens_and_age(master_key):
    contract = load_contracts()["police_referrals"]
    out = Pseudonymizer(master_key).columns(contract, _police_referral_cols())
    assert set(out) == {n for n, _ in staging_columns(contract)} - {"_batch_id", "_row_number"}
    for raw in ("last_name", "first_name", "dob", "ssn", "person_id"):
        assert raw not in out
    assert out["age_at_event"] == [42]
    assert all(len(out[t][0]) == 64 for t in ("person_token", "ssn_token", "name_dob_token"))
    assert out["key_id"] == [master_key.key_id]


def test_spelling_variants_get_the_same_name_dob_token(master_key):
    contract = load_contracts()["police_referrals"]
    p = Pseudonymizer(master_key)
    a = p.columns(contract, _police_referral_cols())
    b = p.columns(contract, _police_referral_cols(last_name=["GARCIA LOPEZ"], first_name=["bill."]))
    assert a["name_dob_token"] == b["name_dob_token"]
    # Nicknames are similarity evidence (first_name_canon_enc), not a rewrite of the exact token.
    c = p.columns(contract, _police_referral_cols(first_name=["William"]))
    assert a["name_dob_token"] != c["name_dob_token"]
    assert set(a["first_name_canon_enc"]) != {None} and set(a["middle_name_enc"]) == {None}


def test_agency_person_ids_are_scoped_by_agency(master_key):
    p = Pseudonymizer(master_key)
    assert p.person_id_token("police", "123") != p.person_id_token("jail", "123")


def test_tokens_depend_on_the_key(tmp_path, master_key):
    from leadhub.core.keys import MasterKey, create_key_file
    other = MasterKey.load(create_key_file(tmp_path / "other.key"))
    assert Pseudonymizer(master_key).token("ssn", "123456780") != Pseudonymizer(other).token("ssn", "123456780")
