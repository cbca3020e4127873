"""Which linkage model linked the people the report counts, and its match-weight chart.

The build records the model it used in ``ops.linkage_runs`` (the last row is the
current build's, read by ``transforms.link.last_linkage_run``); the model itself
lives beside the warehouse, never in the snapshot, and is read with the linkage
store's functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from leadhub.core.errors import LeadHubError
from transforms import linkage_store
from transforms.link import last_linkage_run


@dataclass(frozen=True)
class LinkageModel:
    """The linkage model the build used: its version, since when, and its match-weight chart."""
    version: str | None = None            # None: no linkage run recorded
    linked_at: datetime | None = None
    chart_svg: str | None = None          # inline SVG, or None with ``missing`` saying why
    missing: str = ""


def linkage_model(con, data_dir: Path) -> LinkageModel:
    """The build's model with its chart; when the model file is gone the report says so."""
    run = last_linkage_run(con)
    if run is None:
        return LinkageModel()
    version, linked_at = run
    try:
        model = linkage_store.model_version(data_dir, version)
    except (LeadHubError, OSError, ValueError):
        # No path in the message: the page is published, the models folder is not.
        return LinkageModel(version, linked_at, None, "the model's file is not available to this report")
    return LinkageModel(version, linked_at, linkage_store.match_weight_chart_svg(model))
