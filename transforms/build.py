"""Build the warehouse: link people, run the SQL models and the cross-extract checks, then
publish the analysts' snapshot.

Linkage scores with the data directory's current linkage model (or the shipped
default) and never trains: a new model is the steward's decision
(``leadhub linkage train``); the model version is recorded with the build.

Linkage and models run in one transaction: the warehouse holds either the
previous build or the new one, never a mix, even if the process is killed.
Publishing comes after the commit, from the same (writer) connection, so the
snapshot shows exactly the committed build; see transforms/publish.py.
"""

from __future__ import annotations

from leadhub.files import transaction
from leadhub.settings import Settings
from leadhub.warehouse import connect
from transforms.link import link_people
from transforms.linkage_store import current_model


def build_warehouse(settings: Settings, publish: bool = True) -> dict[str, int | str]:
    """Rebuild core and marts in one transaction; then publish unless ``publish`` is False."""
    from expectations.build_checks import record_build_checks
    from transforms.model import run_models
    from transforms.publish import publish as publish_snapshot

    model = current_model(settings.data_dir)  # read before the transaction: a bad file stops nothing half-way
    with connect(settings.warehouse_path) as con:
        with transaction(con):
            counts = {f"link.{k}": v for k, v in link_people(con, model=model).items()}
            counts.update(run_models(con))
            # Cross-extract checks need the linked core tables; warnings, recorded with the build.
            _, checks = record_build_checks(con)
            counts["checks.failed"] = sum(not r["success"] for r in checks)
        if publish:
            published = publish_snapshot(settings, con)
            counts["published.tables"] = len(published)
    return counts
