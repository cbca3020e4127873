"""The pipeline's stages as plain functions: what the CLI and the Airflow tasks call.

Each function opens what it needs from ``Settings`` and returns a small,
identifier-free summary (safe for logs and Airflow XComs).
"""

from __future__ import annotations

from leadhub.core.settings import Settings


def ingest(settings: Settings, agency: str, progress: bool = False) -> list[dict]:
    """Take every complete file in one agency's inbox through intake.

    Returns one summary per file: {file, extract, status, batch_id, rows, reason, file_id}.
    Raises nothing for a bad file (it is quarantined and recorded, or held for a
    steward); raises LeadHubError only when the hub itself cannot work (no key, no
    warehouse). ``progress`` shows a bar of rows per file (for a terminal).
    """
    from leadhub.core.keys import MasterKey

    key = MasterKey.load(settings.key_file)
    return ingest_agency(settings, agency, key, progress=progress)


def intake_stages(key):
    """What intake runs on each chunk of a delivery: pseudonymization with ``key`` and the
    chunked validation of ``expectations.file_check``, in the validation process
    (intake itself imports neither)."""
    from connectors.inbox import IntakeStages
    from expectations.file_check import FileCheck
    from expectations.validate import start_validation_worker
    from transforms.pseudonymize import Pseudonymizer

    start_validation_worker()  # GX loads in its own process while intake hashes and archives
    return IntakeStages(pseudonymize=Pseudonymizer(key).columns, validator=FileCheck)


def ingest_agency(settings: Settings, agency: str, key, progress: bool = False) -> list[dict]:
    """``ingest`` with a key already loaded (``leadhub.core.keys.MasterKey``)."""
    from connectors import inbox

    return inbox.ingest_agency(settings, agency, key, intake_stages(key), progress=progress)


def _audited(settings: Settings, action: str, file_id: str, reason: str, who: str | None) -> str:
    """Write the steward's action to the hash-chained audit log before it happens; returns the
    ledger note. An action whose audit entry cannot be written does not happen. The note names
    no person and quotes no reason (the ledger reaches the analysts' snapshot); the log does."""
    import getpass

    from leadhub.core.audit import append_audit, required_reason

    entry = append_audit(settings, who=who or getpass.getuser(), action=action, file_id=file_id,
                         reason=required_reason(reason, action))
    done = {"release": "released", "reload": f"re-loaded from {file_id}"}[action]
    return f"{done} by a steward at {entry['at']} (see the steward audit log)"


def release(settings: Settings, file_id: str, reason: str, who: str | None = None) -> dict:
    """Load a delivery the volume guard held (steward only, audited)."""
    from connectors.inbox import release_held
    from leadhub.core.keys import MasterKey

    key = MasterKey.load(settings.key_file)
    note = _audited(settings, "release", file_id, reason, who)
    return release_held(settings, key, intake_stages(key), file_id, note)


def reload(settings: Settings, file_id: str, reason: str | None = None, who: str | None = None) -> dict:
    """Make an earlier, superseded delivery current again from its archive (steward only, audited)."""
    from connectors.inbox import reload_archived
    from leadhub.core.keys import MasterKey

    key = MasterKey.load(settings.key_file)
    note = _audited(settings, "reload", file_id, reason or "reprocess --force", who)
    return reload_archived(settings, key, intake_stages(key), file_id, note)


def build(settings: Settings, publish: bool = True, prepare=None) -> dict[str, int | str]:
    """Link people, rebuild core tables and marts and run the cross-extract checks, in one
    transaction; then publish the analysts' snapshot unless ``publish`` is False.

    ``prepare(con)``, when given, runs first inside that transaction (retention removes
    rows there), so its change and the rebuild from it commit together or not at all.

    Linkage scores with the data directory's current linkage model (or the shipped
    default) and never trains: a new model is the steward's decision
    (``leadhub linkage train``); the model version is recorded with the build. One
    transaction means the warehouse holds either the previous build or the new one,
    never a mix, even if the process is killed. Publishing comes after the commit, from
    the same (writer) connection, so the snapshot shows exactly the committed build.
    Returns row counts and the model version (no identifiers).
    """
    from expectations.build_checks import record_build_checks
    from leadhub.core.agreements import in_force_for_held
    from leadhub.core.files import transaction
    from leadhub.core.warehouse import build_memory_limit, connect, utcnow
    from transforms.link import link_people
    from transforms.linkage_store import current_model
    from transforms.model import run_models
    from transforms.publish import publish as publish_snapshot

    model = current_model(settings.data_dir)  # read before the transaction: a bad file stops nothing half-way
    with connect(settings.warehouse_path) as con:
        con.execute(f"SET memory_limit = '{build_memory_limit()}'")
        with transaction(con):
            if prepare is not None:
                prepare(con)
            # Data is built on only while its agency's agreement is in force: refused, naming the agency.
            in_force_for_held(con, utcnow().date())
            counts = {f"link.{k}": v for k, v in link_people(con, model=model).items()}
            counts.update(run_models(con))
            # Cross-extract checks need the linked core tables; warnings, recorded with the build.
            _, checks = record_build_checks(con)
            counts["checks.failed"] = sum(not r["success"] for r in checks)
        if publish:
            published = publish_snapshot(settings, con)
            counts["published.tables"] = len(published)
    return counts


def report(settings: Settings) -> dict[str, str]:
    """Write the cross-agency report (HTML + one CSV per table); returns their paths."""
    from transforms.report import write_report

    return write_report(settings)


def justice_counts(settings: Settings, out_dir=None, year: int | None = None) -> dict:
    """Write the Justice Counts bulk-upload files per sector into ``out_dir`` (default
    steward/justice_counts); returns {"files": {sector: [path, ...]}, "notes": [line, ...]}.

    Reads the warehouse itself, not the snapshot: the snapshot follows the ``evaluation``
    purpose, these files the ``justice_counts`` purpose of each agency's agreement. For the
    same reason they go to the steward's folder, not to the reports the analysts read.
    """
    from pathlib import Path

    from leadhub.core.audit import steward_dir
    from leadhub.core.errors import LeadHubError
    from leadhub.core.files import make_private_dir
    from leadhub.core.warehouse import connect, utcnow
    from transforms.justice_counts import steward_folder, write_justice_counts

    if not settings.warehouse_path.is_file():
        raise LeadHubError(f"no warehouse at {settings.warehouse_path}; run ingest and build first")
    if out_dir is None:
        make_private_dir(steward_dir(settings))  # the folder the steward alone reads, before its child
    target = Path(out_dir) if out_dir is not None else steward_folder(settings)
    with connect(settings.warehouse_path, read_only=True) as con:
        return write_justice_counts(con, target, utcnow().date(), year)
