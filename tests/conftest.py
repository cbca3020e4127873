"""Fixtures every test folder shares: an isolated data directory and key, and real servers."""

from __future__ import annotations

import json

import pytest

from leadhub.core.audit import audit_path
from leadhub.core.keys import MasterKey, create_key_file
from leadhub.core.settings import Settings
from tests.servers import pg_server, redis_server  # noqa: F401 (session fixtures, started on first use)


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Settings pointing at a fresh data directory and a fresh 0600 key outside it."""
    data_dir = tmp_path / "data"
    key_file = tmp_path / "keys" / "master.key"
    create_key_file(key_file)
    monkeypatch.setenv("LEADHUB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LEADHUB_KEY_FILE", str(key_file))
    s = Settings.from_env()
    s.ensure_dirs()
    return s


@pytest.fixture
def master_key(settings) -> MasterKey:
    return MasterKey.load(settings.key_file)


@pytest.fixture
def audit_entries(settings):
    """``audit_entries()``: the steward audit log of the test's data directory, one dict per JSON line
    ([] before the first entry)."""
    def read() -> list[dict]:
        path = audit_path(settings)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return read
