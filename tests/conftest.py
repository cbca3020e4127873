"""Fixtures every test folder shares: an isolated data directory and key, and real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from leadhub.core.audit import audit_path
from leadhub.core.keys import MasterKey, create_key_file
from leadhub.core.settings import Settings
from tests.servers import pg_server, redis_server  # noqa: F401 (session fixtures, started on first use)

DEMO_PEOPLE, DEMO_SEED = 800, 11


def outside_env(*also: str) -> dict[str, str]:
    """This process's environment without the hub's and Airflow's own settings (nor ``also``),
    for a child process that must see only what its test gives it."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith(("AIRFLOW__", "LEADHUB_")) or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", *also))}


@contextmanager
def hub_at(root: Path):
    """(settings, master key) of a hub whose data and fresh key live under ``root``, with the
    environment pointing there while the block runs: for fixtures wider than one test, which
    cannot use ``settings``."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEADHUB_DATA_DIR", str(root / "data"))
        env.setenv("LEADHUB_KEY_FILE", str(root / "keys" / "master.key"))
        settings = Settings.from_env()
        create_key_file(settings.key_file)
        settings.ensure_dirs()
        yield settings, MasterKey.load(settings.key_file)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One `leadhub demo` (about a minute) for every test that reads what it leaves: (root, stdout).

    The demo's data directory is ``root/data`` and its key ``root/key/master.key``; the same seed
    generated aside into ``root/raw`` (and ``root/raw_answers``) tells the tests every raw
    identifier. Tests read these and never write them: one that needs to carry on from the demo
    works on a copy.
    """
    from synthetic import generate

    root = tmp_path_factory.mktemp("demo")
    env = outside_env()
    env.update({"LEADHUB_DATA_DIR": str(root / "data"), "LEADHUB_KEY_FILE": str(root / "key" / "master.key")})
    generate(root / "raw", root / "raw_answers", people=DEMO_PEOPLE, seed=DEMO_SEED)
    done = subprocess.run([sys.executable, "-m", "leadhub.cli", "demo", "--people", str(DEMO_PEOPLE),
                           "--seed", str(DEMO_SEED)], env=env, cwd=root, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout


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
