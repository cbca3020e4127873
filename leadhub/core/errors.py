"""Errors that carry a one-line reason a steward can act on."""

import os


def printable(name: str) -> str:
    """A delivered file name safe for any output: every byte outside printable ASCII as \\xNN.

    Names come from agencies and may hold newlines, escape sequences or bytes that are not
    UTF-8 (os.fsencode gives them back); printed raw they could forge a log line or break the
    ledger. Printable ASCII, the backslash included, is kept, so applying it twice changes
    nothing and every output can apply it.
    """
    try:
        data = os.fsencode(name)
    except UnicodeEncodeError:  # a lone surrogate that no file system byte produced
        data = name.encode("utf-8", "backslashreplace")
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in data)


class LeadHubError(Exception):
    """A failure the CLI reports as one line and a non-zero exit."""


class KeyError_(LeadHubError):
    """The pseudonymization key is missing, unreadable or unsafe."""


class RejectedFile(LeadHubError):
    """A delivered file breaks a rule: it goes to quarantine with this reason.

    The message names the file, the row (when there is one) and the rule, and
    never contains a cell value: values may be identifiers.
    """

    def __init__(self, file: str, rule: str, detail: str = "", row: int | None = None):
        file = printable(file)
        self.file, self.rule, self.detail, self.row = file, rule, detail, row
        where = f"{file}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: rule '{rule}' failed" + (f": {detail}" if detail else ""))
