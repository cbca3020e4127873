"""Linkage on pseudonyms, loaded through the real intake into a real DuckDB file."""

import os

import duckdb

from connectors.inbox import ingest_agency
from leadhub.warehouse import connect
from transforms.link import link_people

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
