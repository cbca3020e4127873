"""Errors that carry a one-line reason a steward can act on."""


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
        self.file, self.rule, self.detail, self.row = file, rule, detail, row
        where = f"{file}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: rule '{rule}' failed" + (f": {detail}" if detail else ""))
