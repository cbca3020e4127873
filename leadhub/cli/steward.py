"""The data steward's commands: keys, decryption, re-identification, linkage model, key rotation,
retention, sealing orders, the audit trail and file permissions; each acting one is audited."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from leadhub.cli.common import acting_steward, audited, audited_pair, required_reason
from leadhub.core.errors import LeadHubError, printable
from leadhub.core.files import open_private
from leadhub.core.settings import Settings


def cmd_keygen(settings: Settings, args) -> int:
    from leadhub.core.keys import create_key_file

    path = create_key_file(settings.key_file)
    print(f"created {path} (mode 600). Back it up somewhere safe: without it, pseudonyms "
          "cannot be reproduced and the archive cannot be decrypted.")
    return 0


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


def cmd_decrypt(settings: Settings, args) -> int:
    from leadhub.core.archive import decrypt_to
    from leadhub.core.keys import MasterKey

    key = MasterKey.load(settings.key_file)
    out = Path(args.output)
    audited(settings, args, "decrypt", file=Path(args.archive_file).name, output=str(out.resolve()))
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


def cmd_decrypt_drop(settings: Settings, args) -> int:
    """Decrypt a file agencies encrypted to the hub key (e.g. an archived .lhx original)."""
    from connectors import dropcrypt

    audited(settings, args, "decrypt-drop", file=Path(args.lhx_file).name, output=str(Path(args.output).resolve()))
    try:
        key = dropcrypt.load_private_key(dropcrypt.default_key_path(settings.key_file))
        if Path(args.output).exists():
            raise dropcrypt.DropCryptError(f"{args.output} already exists")
        dropcrypt.decrypt_from_agency(Path(args.lhx_file), Path(args.output), key)
    except dropcrypt.DropCryptError as e:
        raise LeadHubError(str(e)) from None
    print(f"decrypted to {args.output}")
    return 0


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
        # It decrypts every archived original and gathers every agency person id: audited as a pair.
        with audited_pair(settings, args, "crosswalk-build", key=key.key_id) as done:
            counts = crosswalk.build_crosswalk(settings, key, progress=sys.stderr.isatty())
            done.update(counts)
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
    from transforms import linkage_steward, linkage_store

    if args.action == "train":
        # A new model changes every later build's person keys: audited as a pair, with both versions.
        old = linkage_store.version_of(linkage_store.current_model(settings.data_dir))
        with audited_pair(settings, args, "linkage-train", model=old) as audit:
            done = linkage_steward.train_model(settings)
            audit.update(model=linkage_store.version_of(done["new"]), previous_model=old,
                         records=done["new"]["leadhub"]["trained_on"].get("records"))
        print(linkage_store.format_changes(done["old"], done["new"]))
        print(f"model {linkage_store.version_of(done['new'])} is now current: {done['path']}")
        print(f"match-weight chart: {done['chart']}")
        return 0
    if not args.target:
        raise LeadHubError("linkage explain needs a PERSON_KEY or AGENCY:TOKEN,AGENCY:TOKEN")
    result = linkage_steward.explain(settings, args.target, args.reason or "", who=args.who)
    print(linkage_steward.format_explanation(result))
    return 0


def cmd_rotate_key(settings: Settings, args) -> int:
    """Re-pseudonymize the warehouse and re-encrypt the archive under a new master key."""
    from leadhub.core.keys import FileKeyProvider, MasterKey, create_key_file
    from transforms import crosswalk
    from transforms.rotate import rotate_key

    required_reason(args)  # before --create makes a key
    new_path = Path(args.new_key_file).expanduser().resolve()
    if args.create:
        create_key_file(new_path)
    old = MasterKey.load(settings.key_file)
    secret, demo = FileKeyProvider(new_path).fetch()  # the file, even if LEADHUB_MASTER_KEY is set
    if demo:
        raise LeadHubError(f"{new_path} is a demo key; rotate to a key made by 'leadhub keygen' or --create")
    new = MasterKey(secret)
    audited(settings, args, "rotate-key", old_key=old.key_id, new_key=new.key_id)
    counts = rotate_key(settings, old, new, progress=sys.stderr.isatty())
    print(f"rotated {counts['rows']} staging rows in {counts['batches']} batches and "
          f"{counts['archive_files']} archived files from key {old.key_id} to {new.key_id}")
    if counts["sealed_tokens"]:
        print(f"sealing orders carried: {counts['sealed_tokens']} token(s) stay, with the seal keys of "
              f"{counts['seal_key_generations']} earlier key(s); enter person orders again with "
              "'leadhub seal --renew' to cover those persons' new records")
    if crosswalk.crosswalk_path(settings).exists():
        crosswalk.build_crosswalk(settings, new, progress=sys.stderr.isatty())
        print("crosswalk rebuilt under the new key")
    print(f"now point LEADHUB_KEY_FILE at {new_path}; keep the old key offline until the next build "
          "and report look right, then destroy it")
    return 0


def cmd_retention(settings: Settings, args) -> int:
    from leadhub.maintenance import archive_retention, retention_summary

    # A real run writes its audit entry itself (as the scheduled run does); a dry run writes none.
    who, reason = (None, None) if args.dry_run else (acting_steward(args), required_reason(args))
    result = archive_retention(settings, args.days, dry_run=args.dry_run, who=who, reason=reason)
    verb = "would delete" if args.dry_run else "deleted"
    for path in result["deleted"]:
        print(f"  {verb} {path}")
    for path in result["unaccounted"]:
        print(f"  kept, not in the ledger (check by hand): {path}")
    print(retention_summary(result))
    return 0


def cmd_seal(settings: Settings, args) -> int:
    """Carry out a sealing or expungement order everywhere, or verify one (steward only, audited)."""
    import getpass

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


def cmd_doctor(settings: Settings, args) -> int:
    from leadhub.core.contracts import agencies
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
