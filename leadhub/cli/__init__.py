"""The `leadhub` command: every stage without Airflow, and the demo through it."""

from __future__ import annotations

import argparse
import logging
import sys

from leadhub.cli.demo import cmd_airflow, cmd_demo, cmd_generate
from leadhub.cli.intake import cmd_ingest, cmd_pull, cmd_quality, cmd_release, cmd_reprocess, cmd_status
from leadhub.cli.justice_counts import cmd_justice_counts
from leadhub.cli.link import cmd_link
from leadhub.cli.steward import (cmd_audit, cmd_crosswalk, cmd_decrypt, cmd_decrypt_drop, cmd_doctor, cmd_keygen,
                                 cmd_keygen_drop, cmd_linkage, cmd_retention, cmd_rotate_key, cmd_seal)
from leadhub.cli.warehouse import cmd_build, cmd_dictionary, cmd_docs, cmd_publish, cmd_report
from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings


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


def _audit_arguments(p: argparse.ArgumentParser,
                     reason: str = "why (required; written to the steward audit log)",
                     who: str = "who does it (default: the login name)") -> None:
    """--reason and --who of a steward command: what its audit entry records."""
    p.add_argument("--reason", help=reason)
    p.add_argument("--who", help=who)


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
    jc = sub.add_parser("justice-counts", help="write the Justice Counts bulk-upload files, one folder per sector")
    jc.add_argument("--out", required=True, help="folder for <sector>/<metric file>.csv")
    jc.add_argument("--year", type=int, help="only this calendar year (default: every year with data)")
    jc.set_defaults(func=cmd_justice_counts)
    sub.add_parser("status", help="feeds, ledger counts and staleness").set_defaults(func=cmd_status)
    pl = sub.add_parser("pull", help="fetch from declared agency databases and SFTP servers into the inboxes")
    pl.add_argument("--source", help="only this source (a file name in connectors/sources/, without .yaml)")
    pl.set_defaults(func=cmd_pull)
    d = sub.add_parser("decrypt", help="decrypt an archived original (steward only)")
    d.add_argument("archive_file")
    d.add_argument("output")
    _audit_arguments(d)
    d.set_defaults(func=cmd_decrypt)
    sub.add_parser("keygen-drop", help="create the hub key pair agencies encrypt drop files to").set_defaults(
        func=cmd_keygen_drop)
    dd = sub.add_parser("decrypt-drop", help="decrypt a .lhx file with the hub drop key (steward only)")
    dd.add_argument("lhx_file")
    dd.add_argument("output")
    _audit_arguments(dd)
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
    _audit_arguments(rp)
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
    _audit_arguments(sl, "why (written to the audit log)")
    sl.add_argument("--renew", action="store_true",
                    help="after rotate-key: store an earlier order's tokens under the new key")
    sl.set_defaults(func=cmd_seal)
    rt = sub.add_parser("retention", help="expire batches past their agreement's retention: rows, rebuild, originals")
    rt.add_argument("--days", type=int, default=None,
                    help="keep at most this many days (default: each agency's agreement, else "
                         "$LEADHUB_ARCHIVE_RETENTION_DAYS, else 7 years); never lengthens an agreement's")
    rt.add_argument("--dry-run", action="store_true",
                    help="list the batches, row counts per table and files that would go, and why; change nothing")
    _audit_arguments(rt, "why (required unless --dry-run; written to the steward audit log)")
    rt.set_defaults(func=cmd_retention)
    sub.add_parser("publish", help="publish the analysts' read-only snapshot and data dictionary again "
                   "(build does it after every build)").set_defaults(func=cmd_publish)
    dc = sub.add_parser("dictionary", help="write the data dictionary of the published snapshot")
    dc.add_argument("--output", help="folder for data_dictionary.md/.html (default: next to the snapshot)")
    dc.set_defaults(func=cmd_dictionary)
    cw = sub.add_parser("crosswalk", help="steward only: re-identification crosswalk (audited)")
    cw.add_argument("action", choices=["build", "lookup", "verify"])
    cw.add_argument("person_key", nargs="?")
    _audit_arguments(cw, "why this build or lookup is needed (required; written to the audit log)",
                     "who is asking (default: the login name)")
    cw.set_defaults(func=cmd_crosswalk)
    lm = sub.add_parser("linkage", help="steward only: train the linkage model, explain a link (audited)")
    lm.add_argument("action", choices=["train", "explain"])
    lm.add_argument("target", nargs="?", help="explain: a person key, or AGENCY:TOKEN,AGENCY:TOKEN")
    _audit_arguments(lm, "why (required; written to the audit log)", "who is asking (default: the login name)")
    lm.set_defaults(func=cmd_linkage)
    rk = sub.add_parser("rotate-key", help="re-pseudonymize everything under a new master key (steward)")
    rk.add_argument("--new-key-file", required=True, help="the new key (see --create)")
    rk.add_argument("--create", action="store_true", help="create the new key file first")
    _audit_arguments(rk)
    rk.set_defaults(func=cmd_rotate_key)
    au = sub.add_parser("audit", help="steward: check the audit trail, or list its entries (audit show)")
    au.add_argument("action", choices=["verify", "show", "adopt"],
                    help="adopt: record the head of a log written before heads were kept")
    au.add_argument("--since", help="show: entries from this day on (YYYY-MM-DD, UTC)")
    au.set_defaults(func=cmd_audit)
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
                    "rotate-key", "crosswalk", "linkage", "seal"}


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

