"""The pipeline's stages as plain functions: what the CLI and the Airflow tasks call.

Each function opens what it needs from ``Settings`` and returns a small,
identifier-free summary (safe for logs and Airflow XComs).
"""

from __future__ import annotations

from leadhub.settings import Settings


def ingest(settings: Settings, agency: str) -> list[dict]:
    """Take every complete file in one agency's inbox through intake.

    Returns one summary per file: {file, extract, status, batch_id, rows, reason}.
    Raises nothing for a bad file (it is quarantined and recorded); raises
    LeadHubError only when the hub itself cannot work (no key, no warehouse).
    """
    from connectors.inbox import ingest_agency
    from leadhub.keys import MasterKey

    key = MasterKey.load(settings.key_file)
    return ingest_agency(settings, agency, key)


def build(settings: Settings) -> dict[str, int]:
    """Link people across agencies and rebuild core tables and marts; returns row counts."""
    from transforms.build import build_warehouse

    return build_warehouse(settings)


def report(settings: Settings) -> dict[str, str]:
    """Write the cross-agency report (HTML + one CSV per table); returns their paths."""
    from transforms.report import write_report

    return write_report(settings)
