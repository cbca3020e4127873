"""The `leadhub` command: every stage without Airflow, and the demo through it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from leadhub.core.errors import LeadHubError
from leadhub.core.files import open_private
from leadhub.core.settings import ENV_DATA_DIR, ENV_KEY_FILE, Settings


# The commands that run without the master key, and why: each only creates a key, or reads counts,
# names and hashes that identify no one. Every other command refuses to start without the key (one
# line, exit 2), so a stage never half-runs on an installation that lost it. An entry's conditions
# name the arguments under which the exemption holds ({} = always), then how --help names it, and why.
NO_KEY_NEEDED: dict[str, tuple[dict[str, object], str, str]] = {
    "keygen": ({}, "keygen", "it creates the master key"),
    "keygen-drop": ({}, "keygen-drop", "it creates the drop key pair, which is separate from the master key"),
    "demo": ({}, "demo", "it makes its own demo key"),
    "status": ({}, "status", "it reads ledger counts and dates only"),
    "quality": ({}, "quality", "it reads validation counts only"),
    "docs": ({}, "docs", "it renders stored validation counts only"),
    "doctor": ({}, "doctor", "it reads owners, groups and modes only"),
    "retention": ({"dry_run": True}, "retention --dry-run", "with --dry-run it only lists archive file names"),
    "crosswalk": ({"action": "verify"}, "crosswalk verify", "'verify' only checks the audit log's hash chain"),
    "audit": ({"action": "verify"}, "audit verify", "'verify' only checks the audit log's chain and head"),
    "link": ({"installation_key": False}, "link without --installation-key",
             "without --installation-key it encodes with a one-off random key"),
}


def needs_key(args: argparse.Namespace) -> bool:
    """Whether this invocation must have the master key before it starts (see NO_KEY_NEEDED)."""
    entry = NO_KEY_NEEDED.get(args.command)
    return entry is None or any(getattr(args, name, None) != value for name, value in entry[0].items())


def key_note(command: str) -> str:
    """The sentence each command's --help carries about the key."""
    if command not in NO_KEY_NEEDED:
        return "Needs the master key: refuses to start without it."
    conditions, _, why = NO_KEY_NEEDED[command]
    if not conditions:
        return f"Runs without a key: {why}."
    return f"Needs the master key, except that {why}."


def _print_outcomes(outcomes: list[dict]) -> None:
    from leadhub.core.errors import printable

    for o in outcomes:
        extra = f" ({o['rows']} rows)" if o.get("rows") is not None else ""
        reason = f" — {printable(o['reason'])}" if o.get("reason") else ""
        print(f"  {o['status']:<11} {printable(o['file'])}{extra}{reason}")


def _audited(settings: Settings, args, action: str, **details) -> None:
    """Write a steward command's entry to the audit log before it acts (leadhub/core/audit.py);
    an action whose entry cannot be written does not happen. Details are counts, keys and file
    names, never a person's identifier. No reason, no action: the why is part of the record."""
    import getpass

    from leadhub.core.audit import append_audit

    append_audit(settings, who=args.who or getpass.getuser(), action=action, reason=_reason(args), **details)


def _reason(args) -> str:
    """The steward's --reason, refused (one line) when missing: the why is part of the record."""
    if not (args.reason or "").strip():
        raise LeadHubError(f"{args.command} needs --reason; it is written to the steward audit log")
    return args.reason.strip()


def cmd_keygen(settings: Settings, args) -> int:
    from leadhub.core.keys import create_key_file

    path = create_key_file(settings.key_file)
    print(f"created {path} (mode 600). Back it up somewhere safe: without it, pseudonyms "
          "cannot be reproduced and the archive cannot be decrypted.")
    return 0


def cmd_generate(settings: Settings, args) -> int:
    from synthetic import generate

    settings.ensure_dirs()
    summary = generate(settings.inbox_dir, settings.answers_dir, people=args.people, seed=args.seed,
                       progress=True)
    print(f"wrote synthetic extracts to {settings.inbox_dir} and the answer file to {settings.answers_dir}")
    for name, rows in sorted(summary.get("files", {}).items()):
        print(f"  {name}: {rows} rows")
    return 0


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
        _print_outcomes(outcomes)
        quarantined += sum(o["status"] == "quarantined" for o in outcomes)
        held += [o for o in outcomes if o["status"] == "held"]
    if quarantined:
        print(f"{quarantined} file(s) quarantined in {settings.quarantine_dir}; see the reasons above")
    for o in held:
        print(f"held for a steward: {o['file_id']}; load it with: leadhub release {o['file_id']} --reason '...'")
    if failed:
        raise LeadHubError(f"intake failed for {', '.join(failed)}; see the reasons above")
    return 1 if quarantined or held else 0


def cmd_build(settings: Settings, args) -> int:
    from leadhub import pipeline

    counts = pipeline.build(settings)
    for table, n in sorted(counts.items()):
        print(f"  {table}: {n}")
    print(f"warehouse: {settings.warehouse_path}")
    return 0


def cmd_report(settings: Settings, args) -> int:
    from leadhub import pipeline

    paths = pipeline.report(settings)
    print(f"report: {paths['html']}")
    return 0


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


def cmd_pull(settings: Settings, args) -> int:
    """Pull declared sources into the inboxes; `leadhub ingest` then takes the files."""
    from connectors.sources.run import pull_sources
    from leadhub.core.keys import MasterKey

    MasterKey.load(settings.key_file)  # like every stage: refuse to run on an installation without its key
    results = pull_sources(settings, args.source)
    if not results:
        print("no enabled pull sources are declared")
    for r in results:
        print(r.summary())
    return 1 if any(r.error for r in results) else 0


def cmd_keygen_drop(settings: Settings, args) -> int:
    """Create the hub's drop key pair; agencies get the public half to encrypt files for the hub."""
    from connectors import dropcrypt

    try:
        private, public = dropcrypt.generate_hub_keypair(dropcrypt.default_key_path(settings.key_file))
    except dropcrypt.DropCryptError as e:
        raise LeadHubError(str(e)) from None
    fp = dropcrypt.fingerprint(dropcrypt.load_public_key(public))
    print(f"created {private} (mode 600; back it up with the master key) and {public}.\n"
          f"Give {public.name} to each agency and confirm its fingerprint {fp} by phone; agencies run "
          f"'leadhub-encrypt {public.name} FILE' and upload FILE.lhx.")
    return 0


def cmd_decrypt_drop(settings: Settings, args) -> int:
    """Decrypt a file agencies encrypted to the hub key (e.g. an archived .lhx original)."""
    from connectors import dropcrypt

    _audited(settings, args, "decrypt-drop", file=Path(args.lhx_file).name, output=str(Path(args.output).resolve()))
    try:
        key = dropcrypt.load_private_key(dropcrypt.default_key_path(settings.key_file))
        if Path(args.output).exists():
            raise dropcrypt.DropCryptError(f"{args.output} already exists")
        dropcrypt.decrypt_from_agency(Path(args.lhx_file), Path(args.output), key)
    except dropcrypt.DropCryptError as e:
        raise LeadHubError(str(e)) from None
    print(f"decrypted to {args.output}")
    return 0


def cmd_decrypt(settings: Settings, args) -> int:
    from leadhub.core.archive import decrypt_to
    from leadhub.core.keys import MasterKey

    key = MasterKey.load(settings.key_file)
    out = Path(args.output)
    _audited(settings, args, "decrypt", file=Path(args.archive_file).name, output=str(out.resolve()))
    try:
        # The plaintext holds identifiers: readable by its owner only, and never written through a
        # name that already exists (O_EXCL also refuses a symlink planted there).
        fd = open_private(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        raise LeadHubError(f"{out} already exists") from None
    with os.fdopen(fd, "wb") as f:
        try:
            decrypt_to(Path(args.archive_file), f, key)
        except BaseException:  # a failed or interrupted decryption leaves no partial plaintext
            f.close()
            out.unlink()
            raise
    print(f"decrypted to {out}")
    return 0


def cmd_docs(settings: Settings, args) -> int:
    """Data Docs are rebuilt from the warehouse each time, so they show what is stored now."""
    import webbrowser

    from expectations.docs import build_docs

    index = build_docs(settings)
    print(f"data docs: {index}")
    if args.open:
        webbrowser.open(index.as_uri())
    return 0


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


def cmd_reprocess(settings: Settings, args) -> int:
    from datetime import date

    from leadhub.core.keys import MasterKey
    from leadhub.maintenance import restore_ledger_entry, restore_period

    if args.force:
        from leadhub import pipeline

        if not args.file_id:
            raise LeadHubError("--force re-loads one ledger entry: give its file_id")
        _reason(args)
        outcome = pipeline.reload(settings, args.file_id, args.reason, who=args.who)
        _print_outcomes([outcome])
        if outcome["status"] == "accepted":
            print("run 'leadhub build' (or trigger warehouse_build) so the core tables and snapshot follow")
        return 0 if outcome["status"] == "accepted" else 1
    key = MasterKey.load(settings.key_file)
    _audited(settings, args, "reprocess", file_id=args.file_id, agency=args.agency,
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
    _print_outcomes([outcome])
    if outcome["status"] == "accepted":
        print("run 'leadhub build' (or trigger warehouse_build) so the core tables and snapshot follow")
    return 0 if outcome["status"] == "accepted" else 1


def cmd_seal(settings: Settings, args) -> int:
    """Carry out a sealing or expungement order everywhere, or verify one (steward only, audited)."""
    import getpass

    from leadhub.core.errors import LeadHubError, printable
    from leadhub.core.keys import MasterKey
    from transforms import seal

    reference = args.order or args.reference
    if not reference:
        raise LeadHubError("seal needs the order's reference (--order REF)")
    if args.file and (args.record or args.person):
        raise LeadHubError("seal takes the order's ids either one by one (--record/--person) or as --file, not both")
    if args.file:
        order = seal.read_order_file(Path(args.file), reference, args.agency)
    else:
        order = seal.SealOrder(reference, args.agency, tuple(args.record or ()), tuple(args.person or ()))
    key = MasterKey.load(settings.key_file)
    if args.action == "verify":
        findings = seal.verify(settings, key, order, who=args.who or getpass.getuser())
        for place, hits in sorted(findings.items()):
            print(f"{printable(place)}\t{hits}")
        if findings:
            print(f"order {printable(reference)}: sealed records still found in {len(findings)} place(s)",
                  file=sys.stderr)
            return 1
        print(f"order {printable(reference)}: no store holds its records' ids or tokens")
        return 0
    counts = seal.seal(settings, key, order, args.reason or "", who=args.who or getpass.getuser(),
                       renew=args.renew)
    print(f"order {printable(reference)}: sealed {counts['rows']} row(s), rewrote {counts['files_rewritten']} "
          f"archived original(s); snapshot republished")
    return 0


def cmd_retention(settings: Settings, args) -> int:
    from leadhub.maintenance import archive_retention, retention_summary

    if not args.dry_run:
        plan = archive_retention(settings, args.days, dry_run=True)  # the entry counts what will go
        _audited(settings, args, "retention", days=args.days, batches=len(plan["expired"]),
                 rows=sum(plan["rows"].values()), files=len(plan["deleted"]))
    result = archive_retention(settings, args.days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for path in result["deleted"]:
        print(f"  {verb} {path}")
    for path in result["unaccounted"]:
        print(f"  kept, not in the ledger (check by hand): {path}")
    print(retention_summary(result))
    return 0


def cmd_publish(settings: Settings, args) -> int:
    from transforms.publish import publish, snapshot_path

    counts = publish(settings)
    print(f"published {len(counts)} tables to {snapshot_path(settings)} "
          f"(open with: duckdb -readonly {snapshot_path(settings)})")
    return 0


def cmd_dictionary(settings: Settings, args) -> int:
    import duckdb

    from transforms.dictionary import undescribed, write_dictionary
    from transforms.publish import dictionary_inputs, published_dir, snapshot_path

    if not snapshot_path(settings).is_file():
        raise LeadHubError(f"no snapshot at {snapshot_path(settings)}; run build (or publish) first")
    with duckdb.connect(str(snapshot_path(settings)), read_only=True) as con:
        tables, descriptions, levels = dictionary_inputs(con)
    written = write_dictionary(Path(args.output) if args.output else published_dir(settings),
                               descriptions, tables, levels)
    print(f"data dictionary: {written['md']} and {written['html']}")
    missing = undescribed(tables, descriptions)
    if missing:
        print("undescribed: " + ", ".join(missing))
    return 1 if missing else 0


def cmd_crosswalk(settings: Settings, args) -> int:
    """Steward only: build the encrypted person_key -> agency id crosswalk, look one up, check the log."""
    from leadhub.core.keys import MasterKey
    from leadhub.core import audit
    from transforms import crosswalk

    if args.action == "verify":
        print(f"audit log intact: {audit.verify_audit(settings)} entries")
        return 0
    key = MasterKey.load(settings.key_file)
    if args.action == "build":
        counts = crosswalk.build_crosswalk(settings, key, progress=sys.stderr.isatty())
        print(f"crosswalk: {counts['person_keys']} person keys from {counts['files_replayed']} archived "
              f"file(s) ({counts['files_skipped']} skipped) -> {crosswalk.crosswalk_path(settings)}")
        return 0
    if not args.person_key:
        raise LeadHubError("crosswalk lookup needs a PERSON_KEY")
    ids = crosswalk.lookup(settings, key, args.person_key, args.reason or "", who=args.who)
    for agency, pid in ids:
        print(f"{agency}\t{pid}")
    if not ids:
        print("no agency ids for this person key")
    return 0 if ids else 1


def cmd_linkage(settings: Settings, args) -> int:
    """Steward only: train a new linkage model on staging, or explain why records linked (audited)."""
    from leadhub.core.keys import MasterKey
    from transforms import linkage_steward, linkage_store

    MasterKey.load(settings.key_file)  # steward only: the installation's key must be at hand
    if args.action == "train":
        done = linkage_steward.train_model(settings)
        print(linkage_store.format_changes(done["old"], done["new"]))
        print(f"model {linkage_store.version_of(done['new'])} is now current: {done['path']}")
        print(f"match-weight chart: {done['chart']}")
        return 0
    if not args.target:
        raise LeadHubError("linkage explain needs a PERSON_KEY or AGENCY:TOKEN,AGENCY:TOKEN")
    result = linkage_steward.explain(settings, args.target, args.reason or "", who=args.who)
    print(linkage_steward.format_explanation(result))
    return 0


def cmd_audit(settings: Settings, args) -> int:
    """Steward only (except verify): check the audit log, list its entries since a day, adopt a head."""
    from datetime import date

    from leadhub.core import audit

    if args.action == "verify":
        entries, last = audit.verified_head(settings)
        print(f"audit log intact: {entries} entries, matching {audit.head_path(settings)}; last hash {last} "
              "(compare with the last 'leadhub-audit head' line in the host's syslog)")
        return 0
    if args.action == "adopt":
        print(f"audit head recorded for {audit.adopt_head(settings)} entries")
        return 0
    try:
        since = date.fromisoformat(args.since) if args.since else date.min
    except ValueError:
        raise LeadHubError(f"--since {args.since!r} is not a date (YYYY-MM-DD)") from None
    for e in audit.entries_since(settings, since):
        details = ", ".join(f"{k}={e[k]}" for k in sorted(e) if k not in {"at", "who", "action", "reason", "prev"}
                            and e[k] is not None)
        print(f"{e['at']}  {e.get('who', '?'):<12} {e.get('action', '?'):<16} {details}"
              + (f"  reason: {e['reason']}" if e.get("reason") else ""))
    return 0


def cmd_rotate_key(settings: Settings, args) -> int:
    """Re-pseudonymize the warehouse and re-encrypt the archive under a new master key."""
    from leadhub.core.keys import FileKeyProvider, MasterKey, create_key_file
    from transforms import crosswalk
    from transforms.rotate import rotate_key

    _reason(args)  # before --create makes a key
    new_path = Path(args.new_key_file).expanduser().resolve()
    if args.create:
        create_key_file(new_path)
    old = MasterKey.load(settings.key_file)
    secret, demo = FileKeyProvider(new_path).fetch()  # the file, even if LEADHUB_MASTER_KEY is set
    if demo:
        raise LeadHubError(f"{new_path} is a demo key; rotate to a key made by 'leadhub keygen' or --create")
    new = MasterKey(secret)
    _audited(settings, args, "rotate-key", old_key=old.key_id, new_key=new.key_id)
    counts = rotate_key(settings, old, new, progress=sys.stderr.isatty())
    print(f"rotated {counts['rows']} staging rows in {counts['batches']} batches and "
          f"{counts['archive_files']} archived files from key {old.key_id} to {new.key_id}")
    if crosswalk.crosswalk_path(settings).exists():
        crosswalk.build_crosswalk(settings, new, progress=sys.stderr.isatty())
        print("crosswalk rebuilt under the new key")
    print(f"now point LEADHUB_KEY_FILE at {new_path}; keep the old key offline until the next build "
          "and report look right, then destroy it")
    return 0


def demo_locations(settings: Settings) -> list[tuple[str, Path, str]]:
    """What the demo leaves where: (label, path, note); the README's table lists the same labels."""
    d = settings.data_dir
    return [
        ("report", settings.reports_dir / "latest" / "lead_report.html",
         "one self-contained HTML file; opens without a network"),
        ("report tables", settings.reports_dir / "latest" / "*.csv", "one CSV per report table"),
        ("analysts' snapshot", d / "published" / "lead.duckdb", "read-only: .venv/bin/duckdb -readonly PATH"),
        ("data dictionary", d / "published" / "data_dictionary.html", "every table and column"),
        ("warehouse", settings.warehouse_path, "the pipeline's own; one writer at a time"),
        ("Data Docs", d / "docs" / "index.html", "validation results; rebuilt by 'leadhub docs'"),
        ("encrypted originals", settings.archive_dir / "<agency>", "every delivery, AES-256-GCM"),
        ("quarantine", settings.quarantine_dir / "<agency>", "refused files, each with a .reason.json"),
        ("ground truth", settings.answers_dir, "of the synthetic data; never read by the pipeline"),
        ("demo key", settings.key_file, "outside the data directory, mode 0600"),
        ("Airflow home", settings.airflow_home, "metadata DB (SQLite), logs"),
    ]


def _shown(path: Path) -> str:
    """A path as a newcomer would type it from here: relative when below the working directory."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def cmd_demo(settings: Settings, args) -> int:
    from synthetic import generate
    from leadhub.airflow_local import run_demo_dags
    from leadhub.core.keys import load_or_create

    try:  # first: a --people too small for the evaluation's cohorts leaves no key behind
        generate(settings.inbox_dir, settings.answers_dir, people=args.people, seed=args.seed, progress=True)
    except ValueError as e:
        raise LeadHubError(f"--people {args.people}: {e}") from None
    settings.ensure_dirs()
    os.environ["LEADHUB_DEMO"] = "1"  # the demo may use the demo key it makes; nothing else may
    if ENV_KEY_FILE not in os.environ:
        # Beside, never in place of, the installation's real key: a later 'leadhub keygen' still works.
        settings = dataclasses.replace(settings, key_file=settings.key_file.with_name("demo.key"))
    load_or_create(settings.key_file)
    print(f"key file: {settings.key_file}")
    print(f"synthetic extracts dropped into {settings.inbox_dir}; running the DAGs through Airflow ...")
    result = run_demo_dags(settings)
    for dag_id, info in result.items():
        state = info.get("state") if isinstance(info, dict) else info
        print(f"  {dag_id}: {state}")
    from transforms.report import planted_effect_line

    effect = planted_effect_line(settings)  # the planted odds ratio against the report's estimate
    if effect:
        print(f"\n{effect}")
    rows = [(f"{label}:", _shown(path), note) for label, path, note in demo_locations(settings)]
    width = max(len(r[1]) for r in rows)
    print("\nwhere things are:")
    for label, where, note in rows:
        print(f"  {label:<21} {where:<{width}}  {note}")
    # The demo key is refused unless LEADHUB_DEMO=1; every later command on this data needs both.
    env = f"LEADHUB_DEMO=1 LEADHUB_KEY_FILE={_shown(settings.key_file)}"
    if os.environ.get(ENV_DATA_DIR):
        env += f" {ENV_DATA_DIR}={_shown(settings.data_dir)}"
    print("\nnext, on this demo data:")
    print(f"  Airflow (UI, scheduler): {env} .venv/bin/leadhub airflow")
    print(f"  feed status:             {env} .venv/bin/leadhub status")
    return 0


def cmd_airflow(settings: Settings, args) -> int:
    from leadhub.airflow_local import LOCALHOST, run_local_airflow

    settings.ensure_dirs()
    print(f"Airflow UI and REST API: http://{LOCALHOST}:{args.port}  user 'steward', password in "
          f"{settings.airflow_home / 'simple_auth_manager_passwords.json.generated'}; Ctrl-C stops it",
          flush=True)
    run_local_airflow(settings, args.port)
    return 0


def cmd_doctor(settings: Settings, args) -> int:
    from leadhub.core.contracts import agencies
    from leadhub.core.errors import printable
    from leadhub.core.roles import Names, check, fix

    names = Names.from_env()
    if args.fix:
        for path in fix(settings, agencies(), names):
            print(f"narrowed {printable(str(path))}")
    deviations = check(settings, agencies(), names)
    for d in deviations:
        print(printable(str(d)))
    if deviations:
        print(f"{len(deviations)} deviation(s) from the roles map (README, 'Roles on the host')", file=sys.stderr)
        return 1
    print(f"{settings.data_dir} and {settings.key_file} match the roles map")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leadhub", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("keygen", help="create the master key file (once per installation)").set_defaults(func=cmd_keygen)
    g = sub.add_parser("generate", help="drop synthetic extracts into the inboxes")
    g.add_argument("--people", type=int, default=3000)
    g.add_argument("--seed", type=int, default=7)
    g.set_defaults(func=cmd_generate)
    i = sub.add_parser("ingest", help="process whatever is in the inboxes, once")
    i.add_argument("--agency", help="only this agency's inbox")
    i.set_defaults(func=cmd_ingest)
    sub.add_parser("build", help="link people and rebuild core tables and marts").set_defaults(func=cmd_build)
    sub.add_parser("report", help="write the cross-agency report").set_defaults(func=cmd_report)
    sub.add_parser("status", help="feeds, ledger counts and staleness").set_defaults(func=cmd_status)
    pl = sub.add_parser("pull", help="fetch from declared agency databases and SFTP servers into the inboxes")
    pl.add_argument("--source", help="only this source (a file name in connectors/sources/, without .yaml)")
    pl.set_defaults(func=cmd_pull)
    d = sub.add_parser("decrypt", help="decrypt an archived original (steward only)")
    d.add_argument("archive_file")
    d.add_argument("output")
    d.add_argument("--reason", help="why (required; written to the steward audit log)")
    d.add_argument("--who", help="who does it (default: the login name)")
    d.set_defaults(func=cmd_decrypt)
    sub.add_parser("keygen-drop", help="create the hub key pair agencies encrypt drop files to").set_defaults(
        func=cmd_keygen_drop)
    dd = sub.add_parser("decrypt-drop", help="decrypt a .lhx file with the hub drop key (steward only)")
    dd.add_argument("lhx_file")
    dd.add_argument("output")
    dd.add_argument("--reason", help="why (required; written to the steward audit log)")
    dd.add_argument("--who", help="who does it (default: the login name)")
    dd.set_defaults(func=cmd_decrypt_drop)
    docs = sub.add_parser("docs", help="build the Data Docs site from stored validation results")
    docs.add_argument("--open", action="store_true", help="open it in a web browser")
    docs.set_defaults(func=cmd_docs)
    q = sub.add_parser("quality", help="print recent validation results")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--failed", action="store_true", help="only failed checks")
    q.set_defaults(func=cmd_quality)
    lk = sub.add_parser("link", help="link two CSV files (or deduplicate one) on keyed encodings only")
    lk.add_argument("--left", required=True, help="CSV file; alone, it is deduplicated")
    lk.add_argument("--right", help="second CSV file to link against --left")
    lk.add_argument("--columns", required=True, help='JSON mapping: {"id": col, "fields": {field: col}}')
    lk.add_argument("--out", required=True, help="CSV of left_id,right_id,score")
    lk.add_argument("--threshold", type=float,
                    help="minimum score, a Splink match weight (default 0: match probability 0.5)")
    lk.add_argument("--one-to-one", action="store_true", help="keep each record in its best pair only")
    lk.add_argument("--delimiter", default=",")
    lk.add_argument("--installation-key", action="store_true",
                    help="encode with the hub's key instead of a one-off random key")
    lk.set_defaults(func=cmd_link)
    rp = sub.add_parser("reprocess", help="put archived originals back into their inbox (steward only)")
    rp.add_argument("file_id", nargs="?", help="one ledger entry (ops.file_ledger.file_id)")
    rp.add_argument("--agency", help="with --from/--to: re-process that agency's entries of a period")
    rp.add_argument("--from", dest="received_from", help="first day received (YYYY-MM-DD)")
    rp.add_argument("--to", dest="received_to", help="last day received (YYYY-MM-DD), inclusive")
    rp.add_argument("--force", action="store_true",
                    help="load a superseded entry's archived original again as the current version "
                         "(its bytes were loaded before); audited")
    rp.add_argument("--reason", help="why (required; written to the steward audit log)")
    rp.add_argument("--who", help="who does it (default: the login name)")
    rp.set_defaults(func=cmd_reprocess)
    rl = sub.add_parser("release", help="load a delivery the volume guard held (steward only, audited)")
    rl.add_argument("file_id", help="the held ledger entry (see 'leadhub status')")
    rl.add_argument("--reason", required=True, help="why it may replace the current rows (audit log)")
    rl.add_argument("--who", help="who releases it (default: the login name)")
    rl.set_defaults(func=cmd_release)
    sl = sub.add_parser("seal", help="carry out a sealing or expungement order everywhere, or verify "
                        "one (steward only, audited)")
    sl.add_argument("action", nargs="?", choices=["verify"], help="verify: scan every store for the order")
    sl.add_argument("reference", nargs="?", help="with verify: the order's reference")
    sl.add_argument("--order", help="the order's reference (written to the audit log)")
    sl.add_argument("--agency", required=True, help="the agency whose records the order names")
    sl.add_argument("--record", action="append", help="an agency record id (arrest, referral...); repeatable")
    sl.add_argument("--person", action="append", help="an agency person id: the whole history; repeatable")
    sl.add_argument("--file", help="CSV order file with a record_id and/or person_id column")
    sl.add_argument("--reason", help="why (written to the audit log)")
    sl.add_argument("--who", help="who does it (default: the login name)")
    sl.add_argument("--renew", action="store_true",
                    help="after rotate-key: store an earlier order's tokens under the new key")
    sl.set_defaults(func=cmd_seal)
    rt = sub.add_parser("retention", help="expire batches past their agreement's retention: rows, rebuild, originals")
    rt.add_argument("--days", type=int, default=None,
                    help="keep at most this many days (default: each agency's agreement, else "
                         "$LEADHUB_ARCHIVE_RETENTION_DAYS, else 7 years); never lengthens an agreement's")
    rt.add_argument("--dry-run", action="store_true",
                    help="list the batches, row counts per table and files that would go, and why; change nothing")
    rt.add_argument("--reason", help="why (required unless --dry-run; written to the steward audit log)")
    rt.add_argument("--who", help="who does it (default: the login name)")
    rt.set_defaults(func=cmd_retention)
    sub.add_parser("publish", help="publish the analysts' read-only snapshot and data dictionary again "
                   "(build does it after every build)").set_defaults(func=cmd_publish)
    dc = sub.add_parser("dictionary", help="write the data dictionary of the published snapshot")
    dc.add_argument("--output", help="folder for data_dictionary.md/.html (default: next to the snapshot)")
    dc.set_defaults(func=cmd_dictionary)
    cw = sub.add_parser("crosswalk", help="steward only: re-identification crosswalk (audited)")
    cw.add_argument("action", choices=["build", "lookup", "verify"])
    cw.add_argument("person_key", nargs="?")
    cw.add_argument("--reason", help="why this lookup is needed (written to the audit log)")
    cw.add_argument("--who", help="who is asking (default: the login name)")
    cw.set_defaults(func=cmd_crosswalk)
    lm = sub.add_parser("linkage", help="steward only: train the linkage model, explain a link (audited)")
    lm.add_argument("action", choices=["train", "explain"])
    lm.add_argument("target", nargs="?", help="explain: a person key, or AGENCY:TOKEN,AGENCY:TOKEN")
    lm.add_argument("--reason", help="explain: why (written to the audit log)")
    lm.add_argument("--who", help="explain: who is asking (default: the login name)")
    lm.set_defaults(func=cmd_linkage)
    rk = sub.add_parser("rotate-key", help="re-pseudonymize everything under a new master key (steward)")
    rk.add_argument("--new-key-file", required=True, help="the new key (see --create)")
    rk.add_argument("--create", action="store_true", help="create the new key file first")
    rk.add_argument("--reason", help="why (required; written to the steward audit log)")
    rk.add_argument("--who", help="who does it (default: the login name)")
    au = sub.add_parser("audit", help="steward: check the audit trail, or list its entries (audit show)")
    au.add_argument("action", choices=["verify", "show", "adopt"],
                    help="adopt: record the head of a log written before heads were kept")
    au.add_argument("--since", help="show: entries from this day on (YYYY-MM-DD, UTC)")
    au.set_defaults(func=cmd_audit)
    rk.set_defaults(func=cmd_rotate_key)
    af = sub.add_parser("airflow", help="run Airflow (scheduler, triggerer, API server) on this machine")
    af.add_argument("--port", type=int, default=8080)
    af.set_defaults(func=cmd_airflow)
    demo = sub.add_parser("demo", help="generate synthetic data and run every DAG through Airflow")
    demo.add_argument("--people", type=int, default=3000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)
    dr = sub.add_parser("doctor", help="check owners, groups and modes against the roles map")
    dr.add_argument("--fix", action="store_true", help="first narrow every mode wider than the map allows")
    dr.set_defaults(func=cmd_doctor)
    for name, command in sub.choices.items():
        summary = next((a.help for a in sub._choices_actions if a.dest == name), None) or ""
        command.description = f"{summary[:1].upper()}{summary[1:]}. {key_note(name)}".lstrip(". ")
    p.epilog = ("Run without a key: " + ", ".join(label for _, label, _ in NO_KEY_NEEDED.values())
                + ". Every other command refuses to start without the master key; "
                "'leadhub COMMAND --help' says why.")
    return p


# Commands that change the warehouse, archive, inboxes or state files: each holds the hub-wide
# writer lock (leadhub/core/lock.py) from start to end, so two of them never interleave.
WRITING_COMMANDS = {"ingest", "build", "publish", "pull", "reprocess", "release", "retention",
                    "rotate-key", "crosswalk", "linkage"}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        if needs_key(args):
            from leadhub.core.keys import MasterKey

            MasterKey.load(settings.key_file)  # refuses (one line) a missing, unsafe or demo key
        if args.command in WRITING_COMMANDS:
            from leadhub.core.lock import writer_lock

            with writer_lock(settings.writer_lock_path):
                return args.func(settings, args)
        return args.func(settings, args)
    except LeadHubError as e:
        print(f"leadhub: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leadhub: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
