"""Paths and knobs, from environment variables with safe defaults.

Every path the hub writes to hangs off one data directory so a deployment
mounts a single volume; the key file deliberately does not, so that copying
the data directory never copies the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadhub.core.errors import LeadHubError
from leadhub.core.files import make_private_dir

ENV_DATA_DIR = "LEADHUB_DATA_DIR"
ENV_KEY_FILE = "LEADHUB_KEY_FILE"
ENV_MAX_FILE_MB = "LEADHUB_MAX_FILE_MB"
ENV_LOCK_TIMEOUT = "LEADHUB_LOCK_TIMEOUT_SECONDS"
DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0


class Environment(BaseModel):
    """The environment variables the hub reads, each checked for its type when read.

    An unset or blank variable takes its default. Other variables are not this
    model's business (the environment holds much else, and pull sources name
    their own), so unknown ones are not refused here.
    """
    model_config = ConfigDict(frozen=True)

    LEADHUB_DATA_DIR: Path = Field(Path("data"), description="a folder path")
    LEADHUB_KEY_FILE: Path | None = Field(None, description="a file path")
    LEADHUB_MAX_FILE_MB: int = Field(4096, ge=1, description="a whole number of megabytes, at least 1")
    LEADHUB_LOCK_TIMEOUT_SECONDS: float = Field(DEFAULT_LOCK_TIMEOUT_SECONDS, description="a number of seconds")
    AIRFLOW_HOME: Path | None = Field(None, description="a folder path")
    # How often the Airflow inbox trigger looks for new files.
    LEADHUB_INBOX_POLL_SECONDS: float = Field(30.0, gt=0, description="a number of seconds above 0")
    # How long an Airflow task waits before its first retry; each further retry waits twice as long.
    LEADHUB_RETRY_DELAY_SECONDS: float = Field(60.0, gt=0, description="a number of seconds above 0")

    @classmethod
    def read(cls) -> "Environment":
        """The current environment, validated; LeadHubError naming the first bad variable."""
        raw = {name: os.environ[name] for name in cls.model_fields if os.environ.get(name, "").strip()}
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            name = e.errors(include_input=False)[0]["loc"][0]
            # The variable's value is a setting, not personal data: quoting it helps the steward.
            raise LeadHubError(f"{name} must be {cls.model_fields[name].description}, "
                               f"not {raw[name]!r}") from None


def lock_timeout_seconds() -> float:
    """How long a writer waits for the writer lock (``LEADHUB_LOCK_TIMEOUT_SECONDS``, default 10 min)."""
    return max(Environment.read().LEADHUB_LOCK_TIMEOUT_SECONDS, 0.0)


def writer_lock_file(warehouse_path: Path) -> Path:
    """The hub-wide writer lock: one file beside the warehouse, whoever asks for it."""
    return Path(warehouse_path).with_name("writer.lock")


def _default_key_file() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "leadhub" / "master.key"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    key_file: Path
    max_file_bytes: int = 4 * 1024**3

    @classmethod
    def from_env(cls) -> "Settings":
        env = Environment.read()
        return cls(data_dir=env.LEADHUB_DATA_DIR.expanduser().resolve(),
                   key_file=(env.LEADHUB_KEY_FILE or _default_key_file()).expanduser().resolve(),
                   max_file_bytes=env.LEADHUB_MAX_FILE_MB * 1024**2)

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse" / "lead.duckdb"

    @property
    def writer_lock_path(self) -> Path:
        return writer_lock_file(self.warehouse_path)

    @property
    def state_dir(self) -> Path:
        """Pull high-water marks and other small state files."""
        return self.data_dir / "state"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def answers_dir(self) -> Path:
        """Ground truth written by the synthetic generator; the pipeline never reads it."""
        return self.data_dir / "answers"

    @property
    def airflow_home(self) -> Path:
        return Environment.read().AIRFLOW_HOME or self.data_dir / "airflow"

    def inbox(self, agency: str) -> Path:
        return self.inbox_dir / agency

    def ensure_dirs(self) -> None:
        for d in (self.inbox_dir, self.reports_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.archive_dir, self.quarantine_dir, self.warehouse_path.parent, self.state_dir):
            make_private_dir(d)
