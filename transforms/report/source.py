"""Where the report reads from: the published snapshot, else the warehouse."""

from __future__ import annotations

from pathlib import Path

from leadhub.core.settings import Settings


def report_source(settings: Settings) -> Path | None:
    """The published snapshot when there is one, else the warehouse, else None."""
    from transforms.publish import snapshot_path

    for source in (snapshot_path(settings), Path(settings.warehouse_path)):
        if source.is_file():
            return source
    return None
