"""SQL pull connector against a real PostgreSQL holding a jail-management-like schema.

Every test gets its own database with persons, bookings and booking_charges
joined in a view, read by a SELECT-only role; the pulled files then go through
the real intake into a real warehouse, and the warehouse is compared with the
source rows by key.
"""

from __future__ import annotations

import itertools
import json
import logging
from datetime import datetime, timedelta

import duckdb
import pytest
import yaml
from sqlalchemy import create_engine, text

from leadhub.core.contracts import load_contracts
from leadhub.pipeline import ingest_agency
from leadhub.core.readers import read_chunks
from connectors.sources import PullError, state_path
from connectors.sources import sql as pull_sql
from connectors.sources.run import pull_sources
from leadhub import cli

URL_ENV = "LEADHUB_TEST_JMS_URL"
PG_READER, PG_READER_PASSWORD = "jms_reader", "reader-test-password"
SCHEMA = """
CREATE SCHEMA jms;
CREATE TABLE jms.persons (
    person_no text PRIMARY KEY, surname text NOT NULL, given_name text NOT NULL, birth_date date NOT NULL,
    ssn text, street_address text, sex text, race text);
CREATE TABLE jms.bookings (
    booking_no text PRIMARY KEY, person_no text NOT NULL REFERENCES jms.persons,
    booked_at timestamp NOT NULL, released_at timestamp, arrest_no text);
CREATE TABLE jms.booking_charges (
    booking_no text NOT NULL REFERENCES jms.bookings, seq integer NOT NULL, offense_code text NOT NULL,
    level text NOT NULL, updated_at timestamp(6) NOT NULL,
    row_version bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (booking_no, seq));
CREATE VIEW jms.booking_extract AS
SELECT b.booking_no, c.seq, p.person_no, p.surname, p.given_name, p.birth_date, p.ssn, p.street_address,
       p.sex, p.race, b.booked_at, b.released_at, b.arrest_no, c.offense_code, c.level,
       c.updated_at, c.row_version
FROM jms.booking_charges c JOIN jms.bookings b USING (booking_no) JOIN jms.persons p USING (person_no);
"""
MAPPING = {"booking_id": "booking_no", "charge_seq": "seq", "inmate_id": "person_no", "last_name": "surname",
           "first_name": "given_name", "dob": "birth_date", "address": "street_address",
           "booking_ts": "booked_at", "release_ts": "released_at", "arrest_id": "arrest_no",
           "severity": "level"}
SURNAMES = ["Quillfeather", "Marrowdale", "Oyelaran", "Vantongeren", "Szczepanik", "Achterberg"]
GIVEN = ["Ondine", "Barnaby", "Temperance", "Ignatius", "Rosalind", "Casimir"]
T0 = datetime(2024, 3, 1, 8, 0, 0)
_db_numbers = itertools.count(1)


class Jms:
    """One test database: helpers to add synthetic bookings and to read the source back."""

    def __init__(self, admin_engine, reader_url: str):
        self.admin, self.reader_url = admin_engine, reader_url
        self.next_booking = 1

    def add_bookings(self, n: int, charges: int = 2, updated_at=None, step=timedelta(minutes=1)) -> list[tuple]:
        """Add n bookings with `charges` charges each; every charge row gets its own updated_at
        (consecutive steps) unless one shared `updated_at` is given. Returns the new keys."""
        keys = []
        with self.admin.begin() as con:
            for _ in range(n):
                i = self.next_booking
                self.next_booking += 1
                person, booking = f"J{i:06d}", f"B{i:06d}"
                con.execute(text("INSERT INTO jms.persons VALUES (:p, :s, :g, :dob, :ssn, :addr, :sex, :race)"),
                            dict(p=person, s=SURNAMES[i % 6], g=GIVEN[i % 6],
                                 dob=datetime(1970 + i % 30, 1 + i % 12, 1 + i % 28),
                                 ssn=f"555-01-{i:04d}" if i % 3 else None, addr=f"{i} Larkspur Lane",
                                 sex="MFX"[i % 3], race=["WHITE", "BLACK", "ASIAN"][i % 3]))
                booked = T0 + timedelta(hours=i)
                con.execute(text("INSERT INTO jms.bookings VALUES (:b, :p, :t, :r, :a)"),
                            dict(b=booking, p=person, t=booked, r=booked + timedelta(days=2) if i % 2 else None,
                                 a=f"A{i:06d}" if i % 4 else None))
                for seq in range(1, charges + 1):
                    con.execute(text("INSERT INTO jms.booking_charges "
                                     "(booking_no, seq, offense_code, level, updated_at) "
                                     "VALUES (:b, :s, :o, :l, :u)"),
                                dict(b=booking, s=seq, o=["DRG01", "DRG02"][seq % 2],
                                     l=["felony", "misdemeanor"][seq % 2], u=updated_at or self.clock()))
                    keys.append((booking, seq))
        return keys

    _tick = 0

    def clock(self) -> datetime:
        """A strictly growing updated_at for rows that do not share one."""
        Jms._tick += 1
        return T0 + timedelta(days=30, seconds=Jms._tick)

    def max_mark(self) -> datetime:
        with self.admin.connect() as con:
            return con.execute(text("SELECT max(updated_at) FROM jms.booking_extract")).scalar()

    def source_keys(self) -> list[tuple]:
        with self.admin.connect() as con:
            return sorted(tuple(r) for r in con.execute(text("SELECT booking_no, seq FROM jms.booking_extract")))

    def reader_query(self) -> str:
        """What the puller's session last sent: shows whether it streams from a server-side cursor."""
        with self.admin.connect() as con:
            return con.execute(text("SELECT query FROM pg_stat_activity WHERE usename = :u "
                                    "AND datname = current_database()"), {"u": PG_READER}).scalar()

    def terminate_reader(self) -> int:
        """Kill the reader's connection from the server side, as a network drop or DBA would."""
        with self.admin.connect() as con:
            return con.execute(text("SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                                    "WHERE usename = :u AND datname = current_database()"),
                               {"u": PG_READER}).scalar()


@pytest.fixture
def jms(pg_server, monkeypatch):
    name = f"jms_{next(_db_numbers)}"
    with create_engine(pg_server.url("postgres"), isolation_level="AUTOCOMMIT").connect() as con:
        con.execute(text(f"CREATE DATABASE {name}"))
        if not con.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": PG_READER}).first():
            con.execute(text(f"CREATE ROLE {PG_READER} LOGIN PASSWORD '{PG_READER_PASSWORD}'"))
    admin = create_engine(pg_server.url(name))
    with admin.begin() as con:
        con.execute(text(SCHEMA))
        con.execute(text(f"GRANT USAGE ON SCHEMA jms TO {PG_READER}; "
                         f"GRANT SELECT ON ALL TABLES IN SCHEMA jms TO {PG_READER}"))
    reader_url = pg_server.url(name, PG_READER, PG_READER_PASSWORD)
    monkeypatch.setenv(URL_ENV, reader_url)
    yield Jms(admin, reader_url)
    admin.dispose()


@pytest.fixture
def declare(tmp_path, monkeypatch):
    """Write a source declaration into a private sources folder; returns its name."""
    folder = tmp_path / "sources"
    folder.mkdir()
    monkeypatch.setenv("LEADHUB_SOURCES_DIR", str(folder))

    def write(name="jail_jms", **overrides):
        decl = {"kind": "sql", "agency": "jail", "extract": "bookings", "url_env": URL_ENV,
                "table": "jms.booking_extract", "columns": MAPPING,
                "high_water_mark": {"column": "updated_at", "type": "timestamp"},
                "key": ["booking_no", "seq"], "batch_size": 1000, **overrides}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(decl))
        return name
    return write


def pull(settings, name="jail_jms"):
    [result] = pull_sources(settings, name)
    if result.error:
        raise PullError(result.error)
    return result


def warehouse(settings, sql):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def current_keys(settings):
    return sorted(warehouse(settings, "SELECT booking_id, charge_seq FROM current.jail_bookings"))


def staged_rows(settings):
    return warehouse(settings, "SELECT count(*) FROM staging.jail_bookings")[0][0]


def file_keys(path):
    contract = load_contracts()["jail_bookings"]
    keys = []
    for _, cols in read_chunks(path, contract):
        keys += list(zip(cols["booking_id"], cols["charge_seq"]))
    return keys


def test_first_pull_writes_a_contract_file_that_the_intake_accepts(settings, master_key, jms, declare, caplog):
    caplog.set_level(logging.DEBUG)
    keys = jms.add_bookings(10)
    declare()
    result = pull(settings)
    assert (result.rows, len(result.files)) == (20, 1)
    [name] = result.files
    assert name.startswith("jail_bookings_start_") and name.endswith(".csv")
    inbox_file = settings.inbox("jail") / name
    assert sorted(file_keys(inbox_file)) == keys          # parses under the contract, every row once
    text_ = inbox_file.read_text()
    assert "02/02/1971" in text_ and "03/01/2024 09:00" in text_   # contract date formats
    assert oct(inbox_file.stat().st_mode & 0o777) == "0o600"
    [outcome] = ingest_agency(settings, "jail", master_key)
    assert (outcome["status"], outcome["rows"]) == ("accepted", 20)
    assert current_keys(settings) == jms.source_keys()
    state = json.loads(state_path(settings, "jail_jms").read_text())
    assert state["mark"] == jms.max_mark().isoformat()
    # Nothing personal in what the pull returns, stores or logs.
    exposed = json.dumps(result.as_dict()) + json.dumps(state) + caplog.text
    for raw in (*SURNAMES, *GIVEN, "J000001", "555-01-0001", "Larkspur"):
        assert raw not in exposed


def test_second_pull_brings_only_the_new_rows(settings, master_key, jms, declare):
    jms.add_bookings(5)
    declare()
    first = pull(settings)
    ingest_agency(settings, "jail", master_key)
    new = jms.add_bookings(3)
    second = pull(settings)
    assert second.rows == 6
    [name] = second.files
    assert name.startswith(f"jail_bookings_{first.mark}_")
    assert sorted(file_keys(settings.inbox("jail") / name)) == new
    [outcome] = ingest_agency(settings, "jail", master_key)
    assert outcome["status"] == "accepted"
    third = pull(settings)
    assert (third.rows, third.files, third.mark) == (0, [], second.mark)
    assert current_keys(settings) == jms.source_keys()
    assert staged_rows(settings) == 16


def test_rows_sharing_the_mark_at_a_batch_boundary_are_neither_lost_nor_repeated(settings, master_key, jms, declare):
    jms.add_bookings(1)                                          # 2 rows, own marks
    shared = jms.clock()
    jms.add_bookings(3, updated_at=shared)                       # 6 rows on one mark value
    jms.add_bookings(2)                                          # 4 more rows
    declare(batch_size=3)                                        # a batch boundary falls inside the 6
    result = pull(settings)
    per_file = [file_keys(settings.inbox("jail") / n) for n in result.files]
    assert [len(k) for k in per_file] == [8, 3, 1]               # 2 + the whole shared value; then 3 + 1
    assert sorted(k for keys in per_file for k in keys) == jms.source_keys()
    # Rows added later above the mark arrive in the next pull; nothing twice.
    jms.add_bookings(1)
    for outcome in ingest_agency(settings, "jail", master_key):
        assert outcome["status"] == "accepted"
    again = pull(settings)
    assert again.rows == 2
    ingest_agency(settings, "jail", master_key)
    assert current_keys(settings) == jms.source_keys()
    assert staged_rows(settings) == len(jms.source_keys()) == 14


def test_connection_killed_mid_pull_keeps_the_mark_and_the_next_pull_has_no_gap(settings, master_key, jms,
                                                                                 declare, monkeypatch):
    jms.add_bookings(15)                                         # 30 rows, distinct marks
    declare(batch_size=4)
    real_save, saves, queries = pull_sql.save_state, [], []

    def save_then_kill(*args, **kwargs):
        real_save(*args, **kwargs)
        saves.append(args[2]["mark"])
        if len(saves) == 2:
            queries.append(jms.reader_query())
            assert jms.terminate_reader() == 1
    monkeypatch.setattr(pull_sql, "save_state", save_then_kill)
    [failed] = pull_sources(settings, "jail_jms")
    assert failed.error and "database error while reading" in failed.error
    assert queries[0].startswith("FETCH FORWARD 4 FROM")         # streamed: 4 rows at a time, not all
    state = json.loads(state_path(settings, "jail_jms").read_text())
    assert state["mark"] == saves[1]                             # the mark of the last delivered file
    delivered = sorted(p.name for p in settings.inbox("jail").iterdir())
    assert len(delivered) == 2                                   # no half file, no leftover part file
    ingest_agency(settings, "jail", master_key)
    assert staged_rows(settings) == 8
    monkeypatch.setattr(pull_sql, "save_state", real_save)
    resumed = pull(settings)
    assert resumed.rows == 22
    ingest_agency(settings, "jail", master_key)
    assert current_keys(settings) == jms.source_keys()
    assert staged_rows(settings) == 30                           # every row loaded exactly once


def test_a_failing_source_query_leaves_the_mark_and_says_nothing_personal(settings, jms, declare):
    jms.add_bookings(4)
    declare()
    first = pull(settings)
    mark_before = json.loads(state_path(settings, "jail_jms").read_text())["mark"]
    jms.add_bookings(2)
    # A query whose error message would quote a row value (a surname) if it were passed on.
    declare(table=None, query="SELECT *, surname::integer AS broken FROM jms.booking_extract")
    [failed] = pull_sources(settings, "jail_jms")
    assert "InvalidTextRepresentation" in failed.error and "22P02" in failed.error
    for raw in SURNAMES:
        assert raw not in failed.error
    assert json.loads(state_path(settings, "jail_jms").read_text())["mark"] == mark_before
    declare()
    assert pull(settings).rows == 4
    assert first.rows == 8


def test_pull_repeated_after_a_crash_before_the_state_update_is_a_ledger_duplicate(settings, master_key, jms,
                                                                                     declare, monkeypatch):
    jms.add_bookings(6)
    declare()
    real_save = pull_sql.save_state

    def killed(*args, **kwargs):
        raise SystemExit("killed after the rename, before the state update")
    monkeypatch.setattr(pull_sql, "save_state", killed)
    with pytest.raises(SystemExit):
        pull_sources(settings, "jail_jms")
    assert not state_path(settings, "jail_jms").exists()
    [name] = [p.name for p in settings.inbox("jail").iterdir()]
    first_bytes = (settings.inbox("jail") / name).read_bytes()
    [outcome] = ingest_agency(settings, "jail", master_key)
    assert outcome["status"] == "accepted"
    monkeypatch.setattr(pull_sql, "save_state", real_save)
    again = pull(settings)
    assert again.files == [name]
    assert (settings.inbox("jail") / name).read_bytes() == first_bytes
    [outcome] = ingest_agency(settings, "jail", master_key)
    assert outcome["status"] == "duplicate"
    assert sorted(warehouse(settings, "SELECT status FROM ops.file_ledger")) == [("accepted",), ("duplicate",)]
    assert staged_rows(settings) == 12


def test_integer_mark_over_a_select(settings, master_key, jms, declare):
    jms.add_bookings(5)
    declare(table=None, query="SELECT * FROM jms.booking_extract WHERE level IN ('felony', 'misdemeanor');",
            high_water_mark={"column": "row_version", "type": "integer"})
    first = pull(settings)
    assert (first.files, first.mark) == (["jail_bookings_start_10.csv"], "10")
    jms.add_bookings(2)
    second = pull(settings)
    assert (second.files, second.rows) == (["jail_bookings_10_14.csv"], 4)
    outcomes = ingest_agency(settings, "jail", master_key)
    assert [o["status"] for o in outcomes] == ["accepted", "accepted"]
    assert current_keys(settings) == jms.source_keys()


def test_declarations_that_would_leak_or_cannot_work_are_refused(settings, jms, declare):
    declare(high_water_mark={"column": "birth_date", "type": "timestamp"})
    with pytest.raises(PullError, match="may not be a personal identifier"):
        pull_sources(settings, "jail_jms")
    declare(url_env="LEADHUB_TEST_NOT_SET")
    [result] = pull_sources(settings, "jail_jms")
    assert "LEADHUB_TEST_NOT_SET" in result.error and "not set" in result.error


def test_cli_pull_prints_one_line_per_source_and_fails_with_a_reason(settings, jms, declare, capsys):
    jms.add_bookings(2)
    declare()
    assert cli.main(["pull"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("jail_jms: 4 row(s) in 1 file(s)")
    declare(url_env="LEADHUB_TEST_NOT_SET")
    assert cli.main(["pull", "--source", "jail_jms"]) != 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "FAILED" in out[0] and "LEADHUB_TEST_NOT_SET" in out[0]


def test_a_full_history_extract_is_pulled_whole_and_an_unchanged_table_is_a_duplicate(settings, master_key, jms,
                                                                                        declare):
    with jms.admin.begin() as con:
        con.execute(text("CREATE TABLE jms.clients (client_id text PRIMARY KEY, last_name text, first_name text, "
                         "dob date, ssn text, phone text, address text, sex text, consent_status text, "
                         "consent_date date)"))
        con.execute(text(f"GRANT SELECT ON jms.clients TO {PG_READER}"))
        for i in range(1, 6):
            con.execute(text("INSERT INTO jms.clients VALUES (:c, :l, :f, :d, NULL, '206-555-0100', "
                             "'Shelter A', 'F', 'active', '2024-01-05')"),
                        dict(c=f"C{i:05d}", l=SURNAMES[i], f=GIVEN[i], d=datetime(1980, 1, i)))
    clients = dict(name="provider_db", agency="treatment", extract="clients", table="jms.clients", columns={},
                   key=None)
    declare(**clients)                                           # with the default high_water_mark: refused
    with pytest.raises(PullError, match="full-history extract"):
        pull_sources(settings, "provider_db")
    declare(**clients, high_water_mark=None, batch_size=2)       # batch_size never splits a full extract
    first = pull(settings, "provider_db")
    assert (first.rows, len(first.files), first.mark) == (5, 1, None)
    assert first.files[0].startswith("treatment_clients_snapshot_")
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert (outcome["status"], outcome["rows"]) == ("accepted", 5)
    assert pull(settings, "provider_db").rows == 5               # unchanged table: same bytes again ...
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "duplicate"                      # ... recorded, not loaded twice
    with jms.admin.begin() as con:
        con.execute(text("DELETE FROM jms.clients WHERE client_id = 'C00003'"))
    assert pull(settings, "provider_db").rows == 4
    [outcome] = ingest_agency(settings, "treatment", master_key)
    # 1 of 5 current clients gone (20%) is over the volume guard's 10%: held until a steward releases it
    assert outcome["status"] == "held"
    from leadhub.pipeline import release
    assert release(settings, outcome["file_id"], "agency confirmed a client left the program")["status"] == "accepted"
    assert warehouse(settings, "SELECT count(*) FROM current.treatment_clients") == [(4,)]


def test_a_refused_login_is_reported_without_the_password(settings, jms, declare, monkeypatch):
    declare()
    monkeypatch.setenv(URL_ENV, jms.reader_url.replace(PG_READER_PASSWORD, "not-the-password"))
    [failed] = pull_sources(settings, "jail_jms")
    assert "while connecting" in failed.error and "password authentication failed" in failed.error
    assert "not-the-password" not in failed.error and PG_READER_PASSWORD not in failed.error
    assert not state_path(settings, "jail_jms").exists()
