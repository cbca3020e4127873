"""Settings come from environment variables, each checked for its type once, when read."""

import pytest

from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings, lock_timeout_seconds


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("LEADHUB_DATA_DIR", "LEADHUB_KEY_FILE", "LEADHUB_MAX_FILE_MB",
                 "LEADHUB_LOCK_TIMEOUT_SECONDS", "AIRFLOW_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_unset_and_blank_variables_take_the_defaults(env, tmp_path):
    env.setenv("LEADHUB_MAX_FILE_MB", "  ")
    s = Settings.from_env()
    assert s.data_dir == tmp_path / "data"
    assert s.key_file == tmp_path / "config" / "leadhub" / "master.key"   # never under the data dir
    assert s.max_file_bytes == 4096 * 1024 * 1024                        # 4 GiB
    assert s.airflow_home == tmp_path / "data" / "airflow"
    assert lock_timeout_seconds() == 600.0


def test_set_variables_are_used(env, tmp_path):
    env.setenv("LEADHUB_DATA_DIR", str(tmp_path / "hub"))
    env.setenv("LEADHUB_KEY_FILE", str(tmp_path / "k" / "master.key"))
    env.setenv("LEADHUB_MAX_FILE_MB", "3")
    env.setenv("AIRFLOW_HOME", str(tmp_path / "af"))
    env.setenv("LEADHUB_LOCK_TIMEOUT_SECONDS", "-5")
    s = Settings.from_env()
    assert (s.data_dir, s.key_file, s.max_file_bytes) == (tmp_path / "hub", tmp_path / "k" / "master.key",
                                                          3 * 1024 * 1024)
    assert s.airflow_home == tmp_path / "af"
    assert lock_timeout_seconds() == 0.0                                   # a negative wait means none


@pytest.mark.parametrize("name, value, rule", [
    ("LEADHUB_MAX_FILE_MB", "4.5", "a whole number of megabytes, at least 1"),
    ("LEADHUB_MAX_FILE_MB", "0", "a whole number of megabytes, at least 1"),
    ("LEADHUB_MAX_FILE_MB", "lots", "a whole number of megabytes, at least 1"),
    ("LEADHUB_LOCK_TIMEOUT_SECONDS", "ten minutes", "a number of seconds"),
])
def test_a_bad_value_is_one_line_naming_the_variable_and_the_rule(env, name, value, rule):
    env.setenv(name, value)
    with pytest.raises(LeadHubError) as refused:
        Settings.from_env()
    assert str(refused.value) == f"{name} must be {rule}, not {value!r}"


def test_the_inbox_poll_interval_is_checked_like_the_others(env):
    from leadhub.core.settings import Environment

    assert Environment.read().LEADHUB_INBOX_POLL_SECONDS == 30.0
    env.setenv("LEADHUB_INBOX_POLL_SECONDS", "0.5")
    assert Environment.read().LEADHUB_INBOX_POLL_SECONDS == 0.5
    env.setenv("LEADHUB_INBOX_POLL_SECONDS", "0")                          # would poll without pause
    with pytest.raises(LeadHubError, match=r"^LEADHUB_INBOX_POLL_SECONDS must be a number of seconds above 0"):
        Environment.read()
