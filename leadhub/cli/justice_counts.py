"""`leadhub justice-counts`: the Justice Counts bulk-upload files, for a steward to send."""

from __future__ import annotations

from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings


def cmd_justice_counts(settings: Settings, args) -> int:
    """Write the files and list them, with every sector or metric left out and why.

    It needs the master key although it reads counts only: the files carry every count,
    small ones included, to leave the hub, which only a steward decides.
    """
    from leadhub import pipeline

    if args.year is not None and not 1900 <= args.year <= 2999:
        raise LeadHubError(f"--year {args.year}: not a calendar year")
    result = pipeline.justice_counts(settings, args.out, args.year)
    for sector, paths in result["files"].items():
        print(f"{sector}: {len(paths)} files")
        for path in paths:
            print(f"  {path}")
    for note in result["notes"]:
        print(note)
    if not result["files"]:
        print("no files written")
    return 0
