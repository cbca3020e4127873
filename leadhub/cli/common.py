"""Helpers the command modules share: printing intake outcomes, the steward audit entry."""

from __future__ import annotations

from leadhub.core.errors import printable
from leadhub.core.settings import Settings


def print_outcomes(outcomes: list[dict]) -> None:
    for o in outcomes:
        extra = f" ({o['rows']} rows)" if o.get("rows") is not None else ""
        reason = f" — {printable(o['reason'])}" if o.get("reason") else ""
        print(f"  {o['status']:<11} {printable(o['file'])}{extra}{reason}")


def audited(settings: Settings, args, action: str, **details) -> None:
    """Write a steward command's entry to the audit log before it acts (leadhub/core/audit.py);
    an action whose entry cannot be written does not happen. Details are counts, keys and file
    names, never a person's identifier. No reason, no action: the why is part of the record."""
    from leadhub.core.audit import append_audit

    append_audit(settings, who=acting_steward(args), action=action, reason=required_reason(args), **details)


def acting_steward(args) -> str:
    """Who the audit entry names: the steward's --who, else the login name."""
    import getpass

    return args.who or getpass.getuser()


def audited_pair(settings: Settings, args, action: str, **details):
    """``leadhub.core.audit.started_and_done`` for a steward command: a ``started`` entry before
    it acts, ``done`` with the counts it adds to the yielded dict, or ``failed``."""
    from leadhub.core.audit import started_and_done

    return started_and_done(settings, who=acting_steward(args), action=action, reason=required_reason(args),
                            **details)


def required_reason(args) -> str:
    """The steward's --reason, refused (one line) when missing: the why is part of the record."""
    from leadhub.core.audit import required_reason as checked

    return checked(args.reason, args.command)
