"""The generated county as two monthly deliveries: everything up to the last month, then that month.

``generate`` writes each extract once, covering DATA_START..DATA_END, as one delivery. A hub
that runs for real receives the next month on top of what it already holds, and a second build
must take it. ``split_last_month`` turns one generated inbox into those two deliveries, by the
date each row is about (``Contract.event_column``):

  incremental extract  the earlier file holds the rows dated before the last month, the later
                       file only the last month's rows (new records, never a re-send);
  full-history extract the earlier file holds the rows dated before the last month, the later
                       file the whole extract again, as agencies send full history.

An incremental extract with no row in the last month has no later file, as an agency with
nothing new sends nothing. A row with no date belongs to the earlier delivery (and, for full history, to both). Values of
other columns are left as generated: a case decided in the last month shows its decision in the
earlier file too. The answers describe the county as generated, that is as of the later
delivery; their row numbers count rows of the unsplit files.
"""

from __future__ import annotations

import csv
import os
import re
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.files import atomic_write
from synthetic.parameters import DATA_END

_TIME_DIRECTIVE = re.compile(r"%[HIMSpf]")


def _later_prefixes(fmt: str, first_day, last_day) -> tuple[str, ...]:
    """Each day of the later month written with the date half of ``fmt``: a value of that
    month starts with one of them (a timestamp's time follows its date)."""
    cut = _TIME_DIRECTIVE.search(fmt)
    date_fmt = fmt[:cut.start()] if cut else fmt
    days = (first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1))
    return tuple(d.strftime(date_fmt) for d in days)


@contextmanager
def _csv_out(path: Path, contract: Contract, header: list[str] | None):
    """A CSV writer in the contract's dialect whose file appears only when complete (``.part``)."""
    fmt = contract.format
    with atomic_write(path, text=True, tmp=path.with_name(path.name + ".part"),
                      encoding=fmt.encoding, newline="") as f:
        out = csv.writer(f, delimiter=fmt.delimiter, quotechar=fmt.quotechar,
                         lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        if header is not None:
            out.writerow(header)
        yield out


def split_last_month(inbox_dir: Path, later_dir: Path) -> dict[str, dict[str, int]]:
    """Split every generated extract in ``inbox_dir/<agency>/`` into an earlier delivery, left in
    the inbox and stamped with the day before the last month, and the last month's delivery,
    written to ``later_dir/<agency>/`` with the generator's stamp (DATA_END).

    Returns rows per contract: {contract: {"earlier": n, "later": n}}.
    """
    first_day = DATA_END.replace(day=1)
    earlier_stamp = (first_day - timedelta(days=1)).strftime("%Y%m%d")
    stamp = DATA_END.strftime("%Y%m%d")
    counts = {}
    for name, contract in load_contracts().items():
        source = Path(inbox_dir) / contract.agency / contract.file_pattern.replace("*", stamp)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no generated file for {name} to split")
        column = contract.event_column
        if column is None and contract.history != "full":
            raise ValueError(f"{name}: an incremental extract without a date column cannot be split by month")
        target = Path(later_dir) / contract.agency / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        earlier = source.with_name(contract.file_pattern.replace("*", earlier_stamp))
        full = contract.history == "full"
        fmt = contract.format
        n_earlier = n_later = 0
        with ExitStack() as stack:
            f = stack.enter_context(open(source, encoding=fmt.encoding, newline=""))
            reader = csv.reader(f, delimiter=fmt.delimiter, quotechar=fmt.quotechar)
            header = next(reader) if fmt.header else None
            names = header if header is not None else contract.column_names
            at = names.index(column.name) if column is not None else None
            prefixes = _later_prefixes(column.formats[0], first_day, DATA_END) if column else ()
            out_earlier = stack.enter_context(_csv_out(earlier, contract, header))
            out_later = None if full else stack.enter_context(_csv_out(target, contract, header))
            for row in reader:
                if at is not None and row[at].startswith(prefixes):
                    n_later += 1
                    if out_later is not None:
                        out_later.writerow(row)
                else:
                    n_earlier += 1
                    out_earlier.writerow(row)
        if full:
            os.replace(source, target)     # the whole extract again, as generated
            n_later += n_earlier
        else:
            source.unlink()
            if not n_later:
                target.unlink()        # nothing new that month: no delivery
        counts[name] = {"earlier": n_earlier, "later": n_later}
    return counts
