"""SFTP pull connector against a real OpenSSH server on 127.0.0.1 (key authentication only)."""

from __future__ import annotations

import json
import logging
import os

import paramiko
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from leadhub.pipeline import ingest_agency
from connectors.sources import PullError, state_path
from connectors.sources.run import pull_sources

KEY_ENV = "LEADHUB_TEST_SFTP_KEY"
CLIENTS = ("client_id,last_name,first_name,dob,ssn,phone,address,sex,consent_status,consent_date\n"
           "C00001,Quillfeather,Ondine,1980-02-03,123-45-6780,206-555-0100,1 Larkspur Lane,F,active,2022-01-05\n"
           "C00002,Marrowdale,Barnaby,1975-11-30,,206-555-0101,Shelter A,M,revoked,2022-03-01\n")
CONTACTS = ("contact_id,client_id,contact_date,service_type\n"
            "S1,C00001,2024-01-03,housing\n"
            "S2,C00001,2024-01-09,case_management\n")


@pytest.fixture
def remote(ssh_server, request):
    return ssh_server.new_remote_dir(request.node.name)


@pytest.fixture
def declare(tmp_path, monkeypatch, ssh_server, remote):
    """Write an SFTP source declaration into a private sources folder; returns its name."""
    folder = tmp_path / "sources"
    folder.mkdir()
    monkeypatch.setenv("LEADHUB_SOURCES_DIR", str(folder))
    monkeypatch.setenv(KEY_ENV, str(ssh_server.client_key))

    def write(name="treatment_sftp", **overrides):
        decl = {"kind": "sftp", "agency": "treatment", "host": "127.0.0.1", "port": ssh_server.port,
                "user": ssh_server.user, "private_key_env": KEY_ENV,
                "known_hosts": str(ssh_server.known_hosts), "remote_dir": str(remote), **overrides}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(decl))
        return name
    return write


def pull(settings, name="treatment_sftp"):
    [result] = pull_sources(settings, name)
    if result.error:
        raise PullError(result.error)
    return result


def put(remote, name, text, mtime=1_700_000_000):
    path = remote / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def test_key_authentication_works_and_password_authentication_is_refused(ssh_server):
    with paramiko.Transport(("127.0.0.1", ssh_server.port)) as t:
        t.start_client(timeout=30)
        with pytest.raises(paramiko.BadAuthenticationType) as refused:
            t.auth_password(ssh_server.user, "any password at all")
        assert refused.value.allowed_types == ["publickey"]
    with paramiko.Transport(("127.0.0.1", ssh_server.port)) as t:
        t.start_client(timeout=30)
        assert t.get_remote_server_key().get_base64() == ssh_server.host_public.split()[1]
        t.auth_publickey(ssh_server.user, paramiko.PKey.from_path(ssh_server.client_key))
        assert t.is_authenticated()


def test_new_files_are_fetched_and_accepted_by_the_intake(settings, master_key, declare, remote, caplog):
    caplog.set_level(logging.DEBUG)
    put(remote, "treatment_clients_20240110.csv", CLIENTS)
    put(remote, "treatment_contacts_20240110.csv", CONTACTS)
    put(remote, "notes_for_the_hub.txt", "no contract matches this name\n")
    (remote / "archive").mkdir()
    declare()
    result = pull(settings)
    assert sorted(result.files) == ["treatment_clients_20240110.csv", "treatment_contacts_20240110.csv"]
    assert result.skipped == 2                                           # the unknown name, the folder
    inbox = settings.inbox("treatment")
    assert (inbox / "treatment_clients_20240110.csv").read_text() == CLIENTS
    assert oct((inbox / "treatment_clients_20240110.csv").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in remote.iterdir()) == [                 # nothing removed on the server
        "archive", "notes_for_the_hub.txt", "treatment_clients_20240110.csv", "treatment_contacts_20240110.csv"]
    state = json.loads(state_path(settings, "treatment_sftp").read_text())
    assert state["fetched"]["treatment_contacts_20240110.csv"]["size"] == len(CONTACTS)
    assert len(state["fetched"]["treatment_clients_20240110.csv"]["sha256"]) == 64
    outcomes = ingest_agency(settings, "treatment", master_key)
    assert sorted((o["file"], o["status"], o["rows"]) for o in outcomes) == [
        ("treatment_clients_20240110.csv", "accepted", 2), ("treatment_contacts_20240110.csv", "accepted", 2)]
    exposed = json.dumps(result.as_dict()) + json.dumps(state) + caplog.text
    for raw in ("Quillfeather", "123-45-6780", "206-555-0100", "Larkspur", "C00001"):
        assert raw not in exposed


def test_a_second_run_fetches_nothing_until_a_new_or_replaced_file_appears(settings, master_key, declare, remote):
    put(remote, "treatment_clients_20240110.csv", CLIENTS)
    declare()
    assert len(pull(settings).files) == 1
    ingest_agency(settings, "treatment", master_key)
    again = pull(settings)
    assert (again.files, again.skipped) == ([], 1)
    assert list(settings.inbox("treatment").iterdir()) == []
    # A corrected re-send under the same name is a different file: fetched again.
    put(remote, "treatment_clients_20240110.csv", CLIENTS.replace("revoked", "active"), mtime=1_700_000_500)
    assert pull(settings).files == ["treatment_clients_20240110.csv"]


def test_a_file_still_being_uploaded_is_left_until_it_is_renamed(settings, declare, remote):
    put(remote, "treatment_contacts_20240111.csv.part", CONTACTS[:40])
    put(remote, "treatment_contacts_20240111.csv.tmp", CONTACTS[:40])
    declare()
    result = pull(settings)
    assert (result.files, result.skipped) == ([], 2)
    assert list(settings.inbox("treatment").iterdir()) == []
    put(remote, "treatment_contacts_20240111.csv.part", CONTACTS)
    os.replace(remote / "treatment_contacts_20240111.csv.part", remote / "treatment_contacts_20240111.csv")
    assert pull(settings).files == ["treatment_contacts_20240111.csv"]
    assert (settings.inbox("treatment") / "treatment_contacts_20240111.csv").read_text() == CONTACTS


def test_an_unknown_or_changed_host_key_is_refused(settings, declare, remote, ssh_server, tmp_path):
    put(remote, "treatment_clients_20240110.csv", CLIENTS)
    declare(known_hosts=str(ssh_server.wrong_known_hosts))
    with pytest.raises(PullError, match="does not match"):
        pull(settings)
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    declare(known_hosts=str(empty))
    with pytest.raises(PullError, match="is not in"):
        pull(settings)
    assert list(settings.inbox("treatment").iterdir()) == []


def test_delete_after_fetch_removes_the_remote_file_only_once_it_is_safe_here(settings, master_key, declare, remote):
    put(remote, "treatment_contacts_20240112.csv", CONTACTS)
    declare(delete_after_fetch=True)
    assert pull(settings).files == ["treatment_contacts_20240112.csv"]
    assert list(remote.iterdir()) == []
    assert (settings.inbox("treatment") / "treatment_contacts_20240112.csv").read_text() == CONTACTS
    state = json.loads(state_path(settings, "treatment_sftp").read_text())
    assert state["fetched"]["treatment_contacts_20240112.csv"]["deleted_on_server"] is True
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted"


def test_a_key_the_server_does_not_know_is_refused(settings, declare, remote, tmp_path, monkeypatch):
    stranger = tmp_path / "stranger_ed25519"
    stranger.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    stranger.chmod(0o600)
    put(remote, "treatment_clients_20240110.csv", CLIENTS)
    declare()
    monkeypatch.setenv(KEY_ENV, str(stranger))
    with pytest.raises(PullError, match="refused key authentication"):
        pull(settings)
    assert list(settings.inbox("treatment").iterdir()) == []


def test_a_fetch_repeated_after_a_crash_before_the_state_update_is_a_ledger_duplicate(
        settings, master_key, declare, remote, monkeypatch):
    from connectors.sources import sftp as pull_sftp

    put(remote, "treatment_contacts_20240113.csv", CONTACTS)
    declare()
    real_save = pull_sftp.save_state

    def killed(*args, **kwargs):
        raise SystemExit("killed after the rename, before the state update")
    monkeypatch.setattr(pull_sftp, "save_state", killed)
    with pytest.raises(SystemExit):
        pull_sources(settings, "treatment_sftp")
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "accepted"
    monkeypatch.setattr(pull_sftp, "save_state", real_save)
    assert pull(settings).files == ["treatment_contacts_20240113.csv"]     # not recorded, so fetched again
    [outcome] = ingest_agency(settings, "treatment", master_key)
    assert outcome["status"] == "duplicate"
    assert pull(settings).files == []


def test_a_remote_name_that_is_not_entirely_safe_is_never_fetched(settings, declare, remote, caplog):
    caplog.set_level(logging.DEBUG)
    put(remote, "treatment_contacts_20240112 copy.csv", CONTACTS)   # matches the contract pattern
    put(remote, "treatment_contacts_2024\nforged log line.csv", CONTACTS)
    declare()
    result = pull(settings)
    assert (result.files, result.skipped) == ([], 2)
    assert list(settings.inbox("treatment").iterdir()) == []
    assert "forged log line" not in caplog.text


def test_a_corrected_file_never_replaces_an_earlier_copy_the_intake_has_not_taken(
        settings, master_key, declare, remote):
    put(remote, "treatment_clients_20240112.csv", CLIENTS)
    declare()
    assert pull(settings).files == ["treatment_clients_20240112.csv"]
    put(remote, "treatment_clients_20240112.csv", CLIENTS.replace("revoked", "active"), mtime=1_700_000_900)
    waiting = pull(settings)
    assert (waiting.files, waiting.skipped) == ([], 1)
    assert (settings.inbox("treatment") / "treatment_clients_20240112.csv").read_text() == CLIENTS
    assert ingest_agency(settings, "treatment", master_key)[0]["status"] == "accepted"
    assert pull(settings).files == ["treatment_clients_20240112.csv"]      # now the correction comes in
    assert ingest_agency(settings, "treatment", master_key)[0]["status"] == "accepted"
