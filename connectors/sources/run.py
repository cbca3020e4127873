"""Running pulls: each declared source through its connector (``sql`` or ``sftp``)."""

from __future__ import annotations

from pathlib import Path

from connectors.sources import PullError, PullResult, Source, load_sources, sources_dir
from leadhub.core.settings import Settings


def check_source(source: Source) -> None:
    """The rules that need the connector (the extract's contract, file naming); PullError if broken."""
    if source.kind == "sql":
        from connectors.sources.sql import SqlSource
        SqlSource.from_source(source)
    else:
        from connectors.sources.sftp import SftpSource
        SftpSource.from_source(source)


def pull_source(settings: Settings, source: Source) -> PullResult:
    """Run one source's connector; raises PullError on failure."""
    if source.kind == "sql":
        from connectors.sources.sql import pull_sql
        return pull_sql(settings, source)
    from connectors.sources.sftp import pull_sftp
    return pull_sftp(settings, source)


def pull_sources(settings: Settings, name: str | None = None,
                 directory: Path | None = None) -> list[PullResult]:
    """Pull the named source, or every enabled one.

    Every declaration is checked first, so a broken one fails before any pull.
    One source failing does not stop the others: its result carries the
    one-line reason in ``error``. The inbox files each pull wrote are then
    taken by the ordinary intake (``leadhub ingest``).
    """
    sources = load_sources(directory)
    for source in sources.values():
        check_source(source)
    if name is not None:
        if name not in sources:
            raise PullError(f"no pull source named {name} in {directory or sources_dir()}")
        if not sources[name].enabled:
            raise PullError(f"source {name} is disabled (enabled: false in {sources[name].path})")
        chosen = [sources[name]]
    else:
        chosen = [s for s in sources.values() if s.enabled]
    results = []
    for source in chosen:
        try:
            results.append(pull_source(settings, source))
        except PullError as e:
            results.append(PullResult(source.name, source.kind, source.agency, error=str(e)))
    return results
