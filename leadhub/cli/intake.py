"""Commands of the people who run intake: take, pull, re-process and release deliveries, watch feeds."""

from __future__ import annotations

import sys

from leadhub.cli.common import audited, print_outcomes, required_reason
from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings


def cmd_ingest(settings: Settings, args) -> int:
    from tqdm import tqdm

    from leadhub.core.contracts import agencies
    from leadhub import pipeline
    from leadhub.core.warehouse import WarehouseBusy

    chosen = [args.agency] if args.agency else agencies()
    quarantined, held, failed = 0, [], []
    progress = sys.stderr.isatty()
    for agency in tqdm(chosen, desc="inboxes", unit="agency", disable=len(chosen) < 2 or not progress):
        try:
            outcomes = pipeline.ingest(settings, agency, progress=progress)
        except WarehouseBusy:  # held by a process outside the hub: no other inbox could go either
            raise
        except LeadHubError as e:  # the hub cannot take this inbox now; the other agencies still go
            print(f"{agency}: not taken: {e}")
            failed.append(agency)
            continue
        print(f"{agency}: {len(outcomes)} file(s)")
        print_outcomes(outcomes)
        quarantined += sum(o["status"] == "quarantined" for o in outcomes)
        held += [o for o in outcomes if o["status"] == "held"]
    if quarantined:
        print(f"{quarantined} file(s) quarantined in {settings.quarantine_dir}; see the reasons above")
    for o in held:
        print(f"held for a steward: {o['file_id']}; load it with: leadhub release {o['file_id']} --reason '...'")
    if failed:
        raise LeadHubError(f"intake failed for {', '.join(failed)}; see the reasons above")
    return 1 if quarantined or held else 0


def cmd_pull(settings: Settings, args) -> int:
    """Pull declared sources into the inboxes; `leadhub ingest` then takes the files."""
    from connectors.sources.run import pull_sources

    results = pull_sources(settings, args.source)
    if not results:
        print("no enabled pull sources are declared")
    for r in results:
        print(r.summary())
    return 1 if any(r.error for r in results) else 0


def cmd_reprocess(settings: Settings, args) -> int:
    from datetime import date

    from leadhub.core.keys import MasterKey
    from leadhub.maintenance import restore_ledger_entry, restore_period

    if args.force:
        from leadhub import pipeline

        if not args.file_id:
            raise LeadHubError("--force re-loads one ledger entry: give its file_id")
        required_reason(args)
        outcome = pipeline.reload(settings, args.file_id, args.reason, who=args.who)
        print_outcomes([outcome])
        if outcome["status"] == "accepted":
            print("run 'leadhub build' (or trigger warehouse_build) so the core tables and snapshot follow")
        return 0 if outcome["status"] == "accepted" else 1
    key = MasterKey.load(settings.key_file)
    audited(settings, args, "reprocess", file_id=args.file_id, agency=args.agency,
             received_from=args.received_from, received_to=args.received_to)
    if args.file_id:
        restored = [restore_ledger_entry(settings, key, args.file_id)]
    elif args.agency and args.received_from:
        first = date.fromisoformat(args.received_from)
        restored = restore_period(settings, key, args.agency, first,
                                  date.fromisoformat(args.received_to) if args.received_to else first)
    else:
        raise LeadHubError("give a file_id, or --agency with --from (and optionally --to)")
    for r in restored:
        print(f"  {r['agency']}/{r['file']} (was {r['status_before']}): {r['restored']}")
    print(f"{len(restored)} file(s) back in the inbox; the next feed run (or `leadhub ingest`) takes them")
    return 0


def cmd_release(settings: Settings, args) -> int:
    """Load a delivery the volume guard held; the release is audited before it happens."""
    from leadhub import pipeline

    outcome = pipeline.release(settings, args.file_id, args.reason, who=args.who)
    print_outcomes([outcome])
    if outcome["status"] == "accepted":
        print("run 'leadhub build' (or trigger warehouse_build) so the core tables and snapshot follow")
    return 0 if outcome["status"] == "accepted" else 1


def cmd_status(settings: Settings, args) -> int:
    from connectors.status import feed_status, held_files

    rows = feed_status(settings)
    stale = [r for r in rows if r["stale"]]
    print(f"{'feed':<22} {'accepted':>8} {'dup':>4} {'quar':>4} {'held':>4}  last accepted          state")
    for r in rows:
        print(f"{r['feed']:<22} {r['accepted']:>8} {r['duplicate']:>4} {r['quarantined']:>4} {r['held']:>4}  "
              f"{r['last_accepted'] or '-':<22} {'STALE' if r['stale'] else 'ok'}")
    if stale:
        print("stale feeds: " + ", ".join(f"{r['feed']} (nothing for {r['stale_after_hours']} h)"
                                          for r in stale))
    held = held_files(settings)
    for h in held:
        print(f"held {h['file_id']} {h['agency']}/{h['file']}: {h['reason']}")
    if held:
        print("release a held file with: leadhub release FILE_ID --reason '...'")
    return 1 if stale or held else 0


def cmd_quality(settings: Settings, args) -> int:
    from expectations.docs import recent_results

    rows = recent_results(settings, limit=args.limit, failed_only=args.failed)
    for r in rows:
        state = "ok" if r["success"] else "FAILED"
        target = f"{r['contract']}.{r['column_name']}" if r["column_name"] else r["contract"]
        print(f"{r['validated_at']:%Y-%m-%d %H:%M}  {r['batch_id']:<36} {r['severity']:<8} {state:<6} "
              f"{r['kind']:<7} {target} {r['expectation']}: {r['observed'] or ''}")
    if not rows:
        print("no failed checks" if args.failed else "no validation results recorded yet")
    return 0
