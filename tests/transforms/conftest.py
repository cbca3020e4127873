"""A hand-fillable warehouse for transform tests.

Rows go straight into staging with an ops.batches row per delivery, exactly
as intake leaves them, so the current.* views pick them up; person_link rows
stand in for the linkage step. Tokens and keys contain a hyphen so that tests
can search report files for them without base64 image data matching by chance.

The second half sets up a real hub (intake, linkage, models, publication) on
synthetic extracts once per session, for tests that need the whole pipeline;
tests change private copies of it (clone_hub).
"""

from __future__ import annotations

import csv
import itertools
import os
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from leadhub.core.contracts import load_contracts
from leadhub.core.keys import create_key_file
from leadhub.core.settings import Settings
from leadhub.core.warehouse import migrate, staging_columns
from transforms.model import run_models


def token(agency: str, person: str) -> str:
    return f"tok-{agency}-{person}"


def key(person: str) -> str:
    return f"pk-{person}"


class Warehouse:
    """Collects rows per extract; ``run()`` delivers them as one batch each and runs the models."""

    def __init__(self, path: Path):
        self.path = path
        self.con = duckdb.connect(str(path))
        migrate(self.con)
        self.contracts = load_contracts()
        self.pending: dict[str, list[dict]] = {}
        self.links: set[tuple[str, str, str]] = set()
        self.ids = itertools.count(1)
        self.batches = itertools.count(1)
        self.received = datetime(2024, 1, 10, 6, 0)

    # -- low level
    def add(self, contract: str, **row) -> dict:
        self.pending.setdefault(contract, []).append(row)
        return row

    def link(self, agency: str, person: str) -> None:
        self.links.add((agency, token(agency, person), key(person)))

    def deliver(self) -> None:
        for contract, rows in self.pending.items():
            n = next(self.batches)
            batch_id = f"batch-{n:04d}"
            received = self.received + timedelta(hours=n)
            self.con.execute("INSERT INTO ops.batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [batch_id, contract, f"file-{n}", "0" * 64, received,
                              received + timedelta(minutes=5), len(rows), "key-1"])
            columns = [c for c, _ in staging_columns(self.contracts[contract])]
            values = {c: [row.get(c) for row in rows] for c in columns[:-3]}
            values.update(key_id=["key-1"] * len(rows), _batch_id=[batch_id] * len(rows),
                          _row_number=list(range(1, len(rows) + 1)))
            # One set-based insert (row-by-row executemany is slow in DuckDB).
            incoming = pa.table(values)
            quoted = ", ".join(f'"{c}"' for c in columns)
            self.con.register("incoming_rows", incoming)
            self.con.execute(f"INSERT INTO staging.{contract} ({quoted}) SELECT {quoted} FROM incoming_rows")
            self.con.unregister("incoming_rows")
        self.pending.clear()
        self.con.execute("CREATE TABLE IF NOT EXISTS core.person_link "
                         "(agency VARCHAR, person_token VARCHAR, person_key VARCHAR)")
        self.con.execute("DELETE FROM core.person_link")
        if self.links:
            agency, person_token, person_key = map(list, zip(*sorted(self.links)))
            self.con.register("incoming_links", pa.table({
                "agency": agency, "person_token": person_token, "person_key": person_key}))
            self.con.execute("INSERT INTO core.person_link SELECT * FROM incoming_links")
            self.con.unregister("incoming_links")

    def run(self) -> dict[str, int]:
        self.deliver()
        return run_models(self.con)

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def close(self) -> None:
        self.con.close()

    # -- one call per event, linked like the linkage step would link it
    def referral(self, person: str, on: date, referral_type: str = "arrest_diversion",
                 precinct: str = "NORTH", age: int = 30, sex: str = "M", race: str = "WHITE",
                 link: bool = True) -> str:
        rid = f"R{next(self.ids):05d}"
        self.add("police_referrals", referral_id=rid, person_token=token("police", person),
                 referral_date=on, referral_type=referral_type, offense_category="drug",
                 precinct=precinct, officer_id="B-17", age_at_event=age, sex=sex, race=race,
                 ethnicity="NON_HISPANIC")
        if link:
            self.link("police", person)
        return rid

    def arrest(self, person: str, on: date, charges=(("DRG01", "felony"),),
               precinct: str = "NORTH", age: int = 30, sex: str = "M", race: str = "WHITE") -> str:
        aid = f"A{next(self.ids):05d}"
        for seq, (code, severity) in enumerate(charges, start=1):
            self.add("police_arrests", arrest_id=aid, charge_seq=seq,
                     person_token=token("police", person), sex=sex, race=race,
                     ethnicity="NON_HISPANIC", arrest_date=on, precinct=precinct,
                     offense_code=code, severity=severity, age_at_event=age)
        self.link("police", person)
        return aid

    def booking(self, person: str, booked: datetime, released: datetime | None,
                charges=(("DRG01", "felony"),), arrest_id: str | None = None) -> str:
        bid = f"J{next(self.ids):05d}"
        for seq, (code, severity) in enumerate(charges, start=1):
            self.add("jail_bookings", booking_id=bid, charge_seq=seq,
                     person_token=token("jail", person), sex="M", race="WHITE",
                     booking_ts=booked, release_ts=released, arrest_id=arrest_id,
                     offense_code=code, severity=severity, age_at_event=30)
        self.link("jail", person)
        return bid

    def case(self, person: str, referred: date, charges=(("DRG01", "felony"),),
             decision: str = "filed") -> str:
        cid = f"C{next(self.ids):05d}"
        for seq, (code, severity) in enumerate(charges, start=1):
            self.add("prosecutor_cases", case_id=cid, charge_seq=seq,
                     person_token=token("prosecutor", person), referral_date=referred,
                     offense_code=code, severity=severity, decision=decision, age_at_event=30)
        self.link("prosecutor", person)
        return cid

    def client(self, person: str, consent: str, link: bool | None = None) -> None:
        """A treatment client; linked only with active consent unless ``link`` says otherwise."""
        self.add("treatment_clients", person_token=token("treatment", person), sex="M",
                 consent_status=consent, consent_date=date(2022, 1, 1))
        if link is None:
            link = consent == "active"
        if link:
            self.link("treatment", person)

    def episode(self, person: str, intake: date) -> str:
        eid = f"E{next(self.ids):05d}"
        self.add("treatment_episodes", episode_id=eid, person_token=token("treatment", person),
                 intake_date=intake, referral_source="lead")
        return eid

    def contact(self, person: str, on: date, service_type: str = "case_management") -> str:
        sid = f"S{next(self.ids):05d}"
        self.add("treatment_contacts", contact_id=sid, person_token=token("treatment", person),
                 contact_date=on, service_type=service_type)
        return sid


@pytest.fixture
def make_warehouse():
    """Open a Warehouse at a given path (e.g. settings.warehouse_path); closed after the test."""
    opened = []

    def make(path: Path) -> Warehouse:
        opened.append(Warehouse(path))
        return opened[-1]

    yield make
    for wh in opened:
        wh.close()


@pytest.fixture
def warehouse(make_warehouse, tmp_path):
    return make_warehouse(tmp_path / "lead.duckdb")


# ---------------------------------------------------------------- a real pipeline on synthetic data

DEMO_PEOPLE, DEMO_SEED = 600, 11
OLD_MTIME = 1_000_000_000          # files dropped long ago: intake does not wait for them to settle


def hub_settings(root: Path) -> Settings:
    return Settings(data_dir=root / "data", key_file=root / "key" / "master.key")


def hub_env(settings: Settings) -> dict[str, str]:
    """Environment for a `leadhub` subprocess working on ``settings``."""
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_HOME"}
    env.update(LEADHUB_DATA_DIR=str(settings.data_dir), LEADHUB_KEY_FILE=str(settings.key_file))
    return env


def drop(settings: Settings, files: list[Path]) -> None:
    """Put delivered files into their agency inboxes, as a clerk's completed upload."""
    for f in files:
        target = settings.inbox(f.parent.name) / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        os.utime(target, (OLD_MTIME, OLD_MTIME))


def ingest_all(settings: Settings) -> list[dict]:
    from leadhub.core.contracts import agencies
    from leadhub import pipeline

    return [o for agency in agencies() for o in pipeline.ingest(settings, agency)]


def clone_hub(template: Settings, root: Path) -> Settings:
    """A private copy of a hub (data directory and key) for a test to change."""
    settings = hub_settings(root)
    shutil.copytree(template.data_dir, settings.data_dir)
    settings.key_file.parent.mkdir(parents=True)
    shutil.copy2(template.key_file, settings.key_file)
    return settings


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory) -> Path:
    """Synthetic extracts of a small county, generated once: <root>/inbox/<agency>/*.csv."""
    from synthetic import generate

    root = tmp_path_factory.mktemp("demo_files")
    generate(root / "inbox", root / "answers", people=DEMO_PEOPLE, seed=DEMO_SEED)
    return root


@pytest.fixture(scope="session")
def demo_hub(tmp_path_factory, demo_files) -> Settings:
    """A hub that took the synthetic extracts in, built and published. Copy it with clone_hub."""
    from leadhub.pipeline import build as build_warehouse

    settings = hub_settings(tmp_path_factory.mktemp("demo_hub"))
    create_key_file(settings.key_file)
    settings.ensure_dirs()
    drop(settings, sorted((demo_files / "inbox").glob("*/*.csv")))
    outcomes = ingest_all(settings)
    assert {o["status"] for o in outcomes} == {"accepted"}, outcomes
    build_warehouse(settings)
    return settings


def extra_referrals(demo_files: Path, target_dir: Path, n: int = 12,
                    stamp: str = "20250131") -> Path:
    """A later police referrals delivery: n referrals copied from the first file with new ids."""
    source = next((demo_files / "inbox" / "police").glob("police_referrals_*.csv"))
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)[:n]
    target = target_dir / "police" / f"police_referrals_{stamp}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({**row, "referral_id": f"R9{stamp[-4:]}{i:03d}"})
    return target


class HubTools:
    """The helpers above, handed to tests as a fixture (test modules cannot import conftest)."""
    hub_settings = staticmethod(hub_settings)
    hub_env = staticmethod(hub_env)
    drop = staticmethod(drop)
    ingest_all = staticmethod(ingest_all)
    clone_hub = staticmethod(clone_hub)
    extra_referrals = staticmethod(extra_referrals)


@pytest.fixture(scope="session")
def tools() -> type[HubTools]:
    return HubTools
