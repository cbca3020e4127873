"""Linkage on pseudonyms, loaded through the real intake into a real DuckDB file."""

import os
import re

import duckdb

from leadhub.pipeline import ingest_agency
from leadhub.core.warehouse import connect
import numpy as np

from leadhub.core.contracts import load_contracts
from transforms.encodings import load_settings
from transforms.link import encoded_from_frame, identities, identity_rows, link_people

REF_HEADER = ("referral_id,person_id,last_name,first_name,dob,ssn,sex,race,ethnicity,referral_date,"
              "referral_type,offense_category,precinct,officer_id\n")
BOOK_HEADER = ("booking_id,charge_seq,inmate_id,last_name,first_name,dob,ssn,address,sex,race,booking_ts,"
               "release_ts,arrest_id,offense_code,severity\n")
CLIENT_HEADER = "client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"


def drop(settings, agency, name, text):
    inbox = settings.inbox(agency)
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(text)
    os.utime(inbox / name, (1, 1))


def load(settings, master_key, police, jail, clients=""):
    drop(settings, "police", "police_referrals_20240101.csv", REF_HEADER + police)
    drop(settings, "jail", "jail_bookings_20240101.csv", BOOK_HEADER + jail)
    if clients:
        drop(settings, "treatment", "treatment_clients_20240101.csv", CLIENT_HEADER + clients)
    for agency in ("police", "jail", "treatment"):
        for o in ingest_agency(settings, agency, master_key):
            assert o["status"] == "accepted", o


def keys(settings):
    with connect(settings.warehouse_path) as con:
        link_people(con)
        return dict(((a, t), k) for a, t, k in con.execute(
            "SELECT agency, person_token, person_key FROM core.person_link").fetchall())


def row(agency_id, last, first, dob, ssn, n):
    return (f"R{n},{agency_id},{last},{first},{dob},{ssn},M,WHITE,NON_HISPANIC,2022-03-0{n},"
            "social_contact,drug,NORTH,O1\n")


def booking(inmate, last, first, dob, ssn, n):
    return (f"B{n},1,{inmate},{last},{first},{dob},{ssn},,M,WHITE,03/0{n}/2022 10:00,03/0{n}/2022 18:00,"
            ",DRG01,felony\n")


def test_nickname_and_hyphen_variants_link_across_agencies(settings, master_key):
    load(settings, master_key,
         row("P1", "Garcia-Lopez", "William", "1980-02-03", "", 1) + row("P2", "Quill", "Ada", "1975-01-01", "", 2),
         booking("J9", "GARCIA LOPEZ", "Bill", "02/03/1980", "", 1) + booking("J8", "Nobody", "Else", "01/01/1990", "", 2))
    k = keys(settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        persons = con.execute("SELECT count(DISTINCT person_key) FROM core.person_link").fetchone()[0]
    assert persons == 3  # William/Bill joined; Ada and the other booking stay alone
    assert len(set(k.values())) == 3


def test_same_name_and_birth_date_with_different_ssns_are_not_chained(settings, master_key):
    # Two people named alike, born the same day; a third record without SSN must not join them.
    load(settings, master_key,
         row("P1", "Smith", "John", "1980-02-03", "123-45-6780", 1) + row("P2", "Smith", "John", "1980-02-03",
                                                                         "223-45-6780", 2),
         booking("J1", "Smith", "John", "02/03/1980", "", 1))
    assert len(set(keys(settings).values())) == 3


def test_person_keys_are_stable_when_new_records_join(settings, master_key):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1), booking("J1", "Other", "Person",
                                                                                          "01/01/1990", "", 1))
    before = keys(settings)
    drop(settings, "jail", "jail_bookings_20240102.csv",
         BOOK_HEADER + booking("J7", "Quill", "Ada", "01/01/1975", "", 2))
    assert ingest_agency(settings, "jail", master_key)[0]["status"] == "accepted"
    after = keys(settings)
    assert all(after[node] == key for node, key in before.items())
    assert len(set(after.values())) == 2


def test_treatment_clients_without_active_consent_are_held_out(settings, master_key):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1) + row("P2", "Okafor", "Ben",
                                                                                       "1970-05-05", "", 2),
         booking("J1", "Other", "Person", "01/01/1990", "", 1),
         clients="C1,Quill,Ada,1975-01-01,,,,F,active,2022-01-01\nC2,Okafor,Ben,1970-05-05,,,,M,revoked,2022-01-01\n")
    k = keys(settings)
    assert sum(a == "treatment" for a, _ in k) == 1  # only the consenting client takes part


def test_a_typing_error_or_swapped_day_and_month_still_links(settings, master_key):
    load(settings, master_key,
         row("P1", "Okonkwo", "Chidi", "1981-04-07", "", 1) + row("P2", "Quill", "Ada", "1975-01-02", "", 2),
         booking("J1", "Okonkow", "Chidi", "04/07/1981", "", 1) + booking("J2", "Quill", "Ada", "02/01/1975", "", 2)
         + booking("J3", "Quill", "Bea", "03/03/1990", "", 3))
    k = keys(settings)
    police = {key for (a, _), key in k.items() if a == "police"}
    jail = {key for (a, _), key in k.items() if a == "jail"}
    assert len(set(k.values())) == 3  # Chidi (surname typo) and Ada (day/month swapped) joined; Bea apart
    assert len(police & jail) == 2


def test_one_person_registered_twice_by_one_agency_is_one_person(settings, master_key):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1),
         booking("J1", "Quill", "Ada", "01/01/1975", "", 1) + booking("J2", "Quil", "Ada", "01/01/1975", "", 2))
    assert len(set(keys(settings).values())) == 1


def test_two_ids_of_one_agency_with_different_birth_dates_are_not_chained(settings, master_key):
    # Two jail ids, same name, born years apart: a police record that fits both equally must not
    # put them together, whichever it joins.
    load(settings, master_key, row("P1", "Smith", "John", "1980-02-03", "", 1),
         booking("J1", "Smith", "John", "02/03/1980", "", 1) + booking("J2", "Smith", "John", "05/11/1966", "", 2))
    k = keys(settings)
    jail = {t: key for (a, t), key in k.items() if a == "jail"}
    assert len(set(jail.values())) == 2


def test_revoking_consent_removes_the_link_at_the_next_build(settings, master_key):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1),
         booking("J1", "Other", "Person", "01/01/1990", "", 1),
         clients="C1,Quill,Ada,1975-01-01,,,,F,active,2022-01-01\n")
    before = keys(settings)
    treatment = [key for (a, _), key in before.items() if a == "treatment"]
    police = [key for (a, _), key in before.items() if a == "police"]
    assert treatment == police  # linked while consent is active

    drop(settings, "treatment", "treatment_clients_20240108.csv",
         CLIENT_HEADER + "C1,Quill,Ada,1975-01-01,,,,F,revoked,2024-01-05\n")
    assert ingest_agency(settings, "treatment", master_key)[0]["status"] == "accepted"
    after = keys(settings)
    assert not [a for a, _ in after if a == "treatment"]
    assert [key for (a, _), key in after.items() if a == "police"] == police  # the rest is unchanged


def test_no_identifier_in_link_table_or_staging_encodings(settings, master_key):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "123-45-6780", 1),
         booking("J1", "Quill", "Ada", "01/01/1975", "123456780", 1))
    keys(settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        cells = [v for table in ("core.person_link", "staging.police_referrals", "staging.jail_bookings")
                 for r in con.execute(f"SELECT * FROM {table}").fetchall() for v in r if isinstance(v, str)]
        enc = con.execute("SELECT first_name_enc, last_name_enc, dob_enc, ssn_enc "
                          "FROM staging.police_referrals").fetchone()
    assert all(isinstance(e, str) and re.fullmatch("[A-Za-z0-9+/]+=*", e) for e in enc)
    encoded = set(enc) | {c for c in cells if re.fullmatch("[0-9a-f]{64}", c)}  # encodings and tokens
    readable = [c for c in cells if c not in encoded and not re.fullmatch("[A-Za-z0-9+/]{40,}=*", c)]
    for raw in ("Quill", "QUILL", "Ada", "1975", "123456780", "123-45-6780", "P1", "J1"):
        assert not [c for c in readable if raw in c], raw


def test_rows_loaded_before_encodings_existed_keep_their_links(settings, master_key):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1),
         booking("J1", "Quill", "Ada", "01/01/1975", "", 1) + booking("J2", "Other", "Person", "01/01/1990", "", 2))
    before = keys(settings)
    with connect(settings.warehouse_path) as con:  # as an upgraded warehouse: no encodings in old rows
        for table in ("police_referrals", "jail_bookings"):
            con.execute(f"UPDATE staging.{table} SET first_name_enc = NULL, last_name_enc = NULL, "
                        "dob_enc = NULL, ssn_enc = NULL")
    assert keys(settings) == before


def test_identities_decode_the_same_rows_as_the_text_frame(settings, master_key):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "123-45-6780", 1)
         + row("P2", "Doe", "John", "1900-01-01", "", 2),
         booking("J1", "Quill", "Ada", "01/01/1975", "", 1), clients="C1,Quill,Ada,1975-01-01,,,,F,active,2024-01-01\n")
    link = load_settings()
    with connect(settings.warehouse_path) as con:
        contracts = load_contracts()
        text = identity_rows(con, contracts)
        frame, enc = identities(con, contracts, link)
    old = encoded_from_frame(text, link)
    assert list(zip(frame["agency"], frame["person_token"])) == list(zip(text["agency"], text["person_token"]))
    assert enc.n == old.n == 4
    for f, rows in old.fields.items():
        assert enc.fields[f].dtype == rows.dtype and (enc.fields[f] == rows).all(), f
    assert not enc.fields["ssn"][list(frame["agency"]).index("jail")].any()  # missing stays missing
