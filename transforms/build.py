"""Build the warehouse: link people, then run the SQL models — one transaction."""

from __future__ import annotations

from leadhub.settings import Settings
from leadhub.warehouse import connect
from transforms.link import link_people


def build_warehouse(settings: Settings) -> dict[str, int]:
    """Analysts never see a half-built warehouse: everything commits at once or not at all."""
    from transforms.model import run_models

    with connect(settings.warehouse_path) as con:
        con.execute("BEGIN")
        try:
            counts = {f"link.{k}": v for k, v in link_people(con).items()}
            counts.update(run_models(con))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return counts
