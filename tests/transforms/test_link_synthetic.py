"""Linkage quality on the synthetic county, through the real intake, against the answer file."""

import os
from collections import defaultdict

import duckdb
import pandas as pd

from leadhub.pipeline import ingest_agency
from synthetic import generate
from leadhub.core.warehouse import connect
from transforms.link import link_people

IDENTITY = {"police_arrests": "police", "police_referrals": "police", "jail_bookings": "jail",
            "prosecutor_cases": "prosecutor", "treatment_clients": "treatment"}


def test_synthetic_county_has_no_false_links_and_few_splits(settings, master_key):
    generate(settings.inbox_dir, settings.answers_dir, people=600, seed=5)
    for f in settings.inbox_dir.rglob("*.csv"):
        os.utime(f, (1, 1))
    for agency in ("police", "jail", "prosecutor", "treatment"):
        assert all(o["status"] == "accepted" for o in ingest_agency(settings, agency, master_key))
    with connect(settings.warehouse_path) as con:
        link_people(con)
    answers = pd.read_csv(settings.answers_dir / "records.csv", dtype={"row_number": int})
    truth = {(c, r): t for c, r, t in answers.itertuples(index=False)}
    persons_of_key, keys_of_person = defaultdict(set), defaultdict(set)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for contract, agency in IDENTITY.items():
            for r, key in con.execute(
                    f"SELECT s._row_number, l.person_key FROM current.{contract} s JOIN core.person_link l "
                    f"ON l.agency = '{agency}' AND l.person_token = s.person_token").fetchall():
                persons_of_key[key].add(truth[(contract, r)])
                keys_of_person[truth[(contract, r)]].add(key)
    assert len(keys_of_person) > 400
    assert not [k for k, p in persons_of_key.items() if len(p) > 1]          # no two people under one key
    assert sum(len(k) > 1 for k in keys_of_person.values()) <= len(keys_of_person) // 100
