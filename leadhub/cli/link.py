"""The `link` command: link or deduplicate CSV files outside the warehouse."""

from __future__ import annotations

import os
from pathlib import Path

from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings


def cmd_link(settings: Settings, args) -> int:
    """Link two CSV files (or deduplicate one) on keyed encodings; see docs/linkage.md."""
    import json

    from leadhub.core.keys import MasterKey
    from transforms.link import link_files

    if args.installation_key:
        similarity_key = MasterKey.load(settings.key_file).subkey("similarity")
    else:
        similarity_key = os.urandom(32)  # ephemeral: the encodings are useless after this run
    mapping = json.loads(Path(args.columns).read_text())
    try:
        counts = link_files(Path(args.left), Path(args.right) if args.right else None, mapping,
                            Path(args.out), similarity_key, threshold=args.threshold,
                            best_only=args.one_to_one, delimiter=args.delimiter)
    except (ValueError, FileNotFoundError) as e:
        raise LeadHubError(str(e)) from None
    what = "linked" if args.right else "deduplicated"
    print(f"{what} {counts['left_records']}"
          + (f" x {counts['right_records']}" if args.right else "")
          + f" records: {counts['pairs']} pair(s) written to {args.out}")
    return 0
