import os
import stat

import pytest

from leadhub.core.errors import LeadHubError
from leadhub.core.keys import MasterKey, create_key_file


def test_key_file_is_created_owner_only_and_never_overwritten(tmp_path):
    path = create_key_file(tmp_path / "k" / "master.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(LeadHubError, match="already exists"):
        create_key_file(path)


def test_refuses_to_run_without_a_key(tmp_path):
    with pytest.raises(LeadHubError, match="no key file"):
        MasterKey.load(tmp_path / "missing.key")


def test_refuses_a_key_readable_by_others(tmp_path):
    path = create_key_file(tmp_path / "master.key")
    os.chmod(path, 0o644)
    with pytest.raises(LeadHubError, match="readable by others"):
        MasterKey.load(path)


def test_subkeys_differ_by_purpose_and_key_id_is_stable(tmp_path):
    key = MasterKey.load(create_key_file(tmp_path / "master.key"))
    assert key.subkey("pseudonym") != key.subkey("archive")
    assert key.key_id == MasterKey.load(tmp_path / "master.key").key_id
    assert key.secret.hex() not in repr(key)


def test_master_key_from_the_environment(tmp_path, monkeypatch):
    secret = os.urandom(32)
    monkeypatch.setenv("LEADHUB_MASTER_KEY", secret.hex())
    key = MasterKey.load(tmp_path / "no-such-file.key")
    assert key.secret == secret and not key.demo
    monkeypatch.setenv("LEADHUB_MASTER_KEY", "not-hex")
    with pytest.raises(LeadHubError, match="LEADHUB_MASTER_KEY is not a hex-encoded key"):
        MasterKey.load(tmp_path / "no-such-file.key")


def vault_secret() -> str:
    """Stands in for a vault client in the provider test below."""
    return "ab" * 32


def test_master_key_from_a_pluggable_provider(tmp_path, monkeypatch):
    monkeypatch.setenv("LEADHUB_KEY_PROVIDER", "tests.leadhub.core.test_keys:vault_secret")
    assert MasterKey.load(tmp_path / "no-such-file.key").secret == bytes.fromhex("ab" * 32)
    monkeypatch.setenv("LEADHUB_KEY_PROVIDER", "no.such.module:fn")
    with pytest.raises(LeadHubError, match="cannot be imported"):
        MasterKey.load(None)


def test_a_demo_key_is_refused_outside_demo_mode(tmp_path, monkeypatch):
    from leadhub.core.keys import load_or_create

    monkeypatch.delenv("LEADHUB_DEMO", raising=False)
    path = tmp_path / "demo.key"
    demo = load_or_create(path)           # what `leadhub demo` does
    assert demo.demo and path.read_text().startswith("# leadhub demo key")
    with pytest.raises(LeadHubError, match="demo key"):
        MasterKey.load(path)
    monkeypatch.setenv("LEADHUB_DEMO", "1")
    assert MasterKey.load(path).secret == demo.secret


def test_a_refused_demo_key_stops_a_real_command(tmp_path, monkeypatch, capsys):
    from leadhub.cli import main
    from leadhub.core.keys import create_key_file

    monkeypatch.delenv("LEADHUB_DEMO", raising=False)
    monkeypatch.setenv("LEADHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEADHUB_KEY_FILE", str(create_key_file(tmp_path / "k" / "master.key", demo=True)))
    assert main(["ingest", "--agency", "jail"]) == 2
    assert "demo key" in capsys.readouterr().err


def test_a_demo_key_with_a_comment_added_above_its_header_is_still_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("LEADHUB_MASTER_KEY", raising=False)
    monkeypatch.delenv("LEADHUB_KEY_PROVIDER", raising=False)
    monkeypatch.delenv("LEADHUB_DEMO", raising=False)
    path = create_key_file(tmp_path / "demo.key", demo=True)
    path.write_text("# copied from the demo machine\n" + path.read_text())
    with pytest.raises(LeadHubError, match="demo key"):
        MasterKey.load(path)
