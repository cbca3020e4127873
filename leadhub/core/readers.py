"""Read a delivered file by its contract into typed column chunks.

Errors name the file, the 1-based data row and the rule broken, never a cell
value (values may be identifiers). Reading is chunked so memory stays bounded
whatever the file size: at most ``chunk_rows`` parsed rows are held at once,
and a single line longer than ``MAX_LINE_CHARS`` is refused instead of being
read whole (a 2 GB file without a newline must not become a 2 GB string).

Formats (declared in the contract's ``format``):
  csv / tsv  delimited text, with a header row or (``header: false``) columns
             in the declared order;
  xlsx       an Excel workbook with exactly one sheet and no formulas, read
             with openpyxl in read-only mode (rows are streamed from the zip);
  jsonl      one JSON object per line whose keys are exactly the contract's
             columns.
Every format yields the same typed chunks, so everything after reading
(pseudonymization, validation, loading) is format-blind.
"""

from __future__ import annotations

import bisect
import codecs
import collections
import csv
import functools
import io
import itertools
import json
import os
import re
import zipfile
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from leadhub.core.clock import CLOCK
from leadhub.core.contracts import Column, Contract
from leadhub.core.errors import RejectedFile

CHUNK_ROWS = 50_000
# Longer lines are refused: no real extract row is a megabyte, and reading one whole would
# let a single hostile line take unbounded memory.
MAX_LINE_CHARS = 1024 * 1024
# Delimited and JSON lines text is read this many bytes at a time and split into lines in C.
TEXT_BLOCK_BYTES = 1024 * 1024
# A workbook's XML, uncompressed, above this is refused before it is parsed (zip bombs).
XLSX_MAX_UNCOMPRESSED = 4 * 1024**3
# A header name is echoed in a reason only if it looks like a column name; anything else
# could be a data row mistaken for the header, i.e. identifiers.
_SHOWABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]{0,63}$")

# Column types as Arrow types: what ``read_chunks(arrow=True)`` yields and intake loads.
ARROW_TYPES = {"string": pa.string(), "integer": pa.int64(), "decimal": pa.float64(),
               "date": pa.date32(), "timestamp": pa.timestamp("us")}

# The characters str.strip() removes: those for which str.isspace() is true (a test keeps it so).
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                 "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

Record = tuple[int, list]  # (1-based data row number, cells in contract column order)
# Rows, their cells one column at a time (Arrow strings for csv/tsv, lists of cells for xlsx and
# jsonl), the refusal after them.
Batch = tuple[list[int], list, "RejectedFile | None"]
Source = Path | int  # a file name, or a descriptor the caller opened once (see connectors.inbox)


def reopen(source: Source, mode: str = "rb", **kwargs):
    """A new file object over ``source``, positioned at its start.

    Given a descriptor, the file the caller already opened (and checked) is read
    again from the beginning, never whatever the name points to by now; the
    descriptor stays open when the returned object is closed.
    """
    if isinstance(source, int):
        os.lseek(source, 0, os.SEEK_SET)
        return open(source, mode, closefd=False, **kwargs)
    return open(source, mode, **kwargs)


def header_difference(expected: list[str], got: list[str]) -> str:
    """Spell out how a header differs: missing, extra, renamed or reordered columns.

    Declared names are always shown. Found names are shown only when they look
    like column names and the header shares at least half of the declared
    columns; otherwise the "header" is most likely a data row (a file sent
    without its header) and is described by counts, so no value leaks.
    """
    found = sum(1 for c in expected if c in got)
    if found * 2 < len(expected):
        return (f"header row does not match the declared header: {found} of {len(expected)} declared "
                f"columns found among {len(got)} fields (is the header row missing?)")
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    shown = [c if _SHOWABLE_NAME.match(c) else f"<unprintable name #{got.index(c) + 1}>" for c in extra]
    parts = []
    if len(missing) == len(extra) and missing and len(got) == len(expected):
        renamed = [f"{m}->{s}" for m, e, s in zip(missing, extra, shown) if got.index(e) == expected.index(m)]
        if len(renamed) == len(missing):
            return "renamed columns: " + ", ".join(renamed)
    if missing:
        parts.append("missing columns: " + ", ".join(missing))
    if extra:
        parts.append("unexpected columns: " + ", ".join(shown))
    if not parts:
        parts.append("columns out of order; expected " + ", ".join(expected))
    return "; ".join(parts)


# --- cell conversion ---------------------------------------------------------------------------

def _int64(n: int) -> int:
    """Integers are stored as BIGINT: a larger one is unreadable, refused like any bad cell."""
    if not -2**63 <= n < 2**63:
        raise ValueError
    return n


def _converter(col: Column) -> Callable[[str], object]:
    """Text cell -> typed value (None for a null marker); ValueError when unreadable."""
    nulls = set(col.null_markers)
    if col.type == "string":
        def text(v: str):
            return None if v.strip() in nulls else v
        text.null_markers = sorted(nulls)  # for _text_column, which does the same to a whole column
        return text
    if col.type == "integer":
        return lambda v: None if v.strip() in nulls else _int64(int(v))
    if col.type == "decimal":
        return lambda v: None if v.strip() in nulls else float(v)
    fmts = col.formats
    as_date = col.type == "date"

    def parse(v: str):
        v = v.strip()
        if v in nulls:
            return None
        for f in fmts:
            try:
                parsed = datetime.strptime(v, f)
            except ValueError:
                continue
            return parsed.date() if as_date else parsed
        raise ValueError
    # strptime is the slowest step of reading and extract dates repeat a great deal (birth dates,
    # event days); the cache lives only as long as this read. Failures are not cached.
    cached = lru_cache(maxsize=1 << 16)(parse)
    cached.formats = tuple(fmts)  # for _arrow_strptime, which reads most cells without it
    return cached


def _typed_converter(col: Column) -> Callable[[object], object]:
    """Cell from a typed format (xlsx, jsonl) -> typed value; text goes through the text path.

    Spreadsheets and JSON carry numbers and (xlsx) dates natively; an id typed
    as a number in Excel arrives as 1234 and is read as the text "1234".
    Booleans, lists, objects and times of day are never a valid cell.
    """
    text = _converter(col)

    def convert(v):
        if v is None:
            return None
        if isinstance(v, str):
            return text(v)
        if isinstance(v, bool) or isinstance(v, (list, dict, time)):
            raise ValueError
        if col.type == "string":
            if isinstance(v, int):
                return str(v)
            if isinstance(v, float):
                return str(int(v)) if v.is_integer() else repr(v)
            raise ValueError
        if col.type == "integer":
            if isinstance(v, int):
                return _int64(v)
            if isinstance(v, float) and v.is_integer():
                return _int64(int(v))
            raise ValueError
        if col.type == "decimal":
            if isinstance(v, (int, float)):
                return float(v)
            raise ValueError
        if col.type == "date":
            if isinstance(v, datetime):
                if v.time() != time(0):
                    raise ValueError  # a date column holding a time of day is not a date
                return v.date()
            if isinstance(v, date):
                return v
            raise ValueError
        if isinstance(v, datetime):  # timestamp
            return v
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day)
        raise ValueError
    return convert


def _rule_for(col: Column) -> str:
    return {"date": "date_format", "timestamp": "timestamp_format",
            "integer": "integer", "decimal": "decimal"}.get(col.type, "type")


# --- record sources: one per format; each checks the header and the shape of every row ----------

class _Block:
    """Whole lines of a text file as ``_line_blocks`` hands them on.

    ``lines`` are split as ``readline`` splits them with ``newline=""`` (after \\n, \\r\\n or
    \\r, line ends kept); ``data`` is the same text in UTF-8 (None if it has no UTF-8
    form), what pyarrow parses; ``longest`` is at least the length of its longest line.
    A block of lines that all end in \\n or \\r\\n comes as text and is split into
    lines only if the csv module is to read it: pyarrow never needs them.
    """

    def __init__(self, *, text: str | None = None, lines: list[str] | None = None):
        self.plain = False  # every line ends in \n or \r\n
        if lines is not None:
            self.lines, self.count = lines, len(lines)
            self.longest = len(max(lines, key=len)) if lines else 0
            return
        self.text = text
        codes = np.frombuffer(self.data or b"", np.uint8)
        ends = np.flatnonzero(codes == ord("\n"))
        self.count = len(ends)
        # In bytes, which are never fewer than characters.
        self.longest = int(np.diff(ends, prepend=-1).max(initial=0))
        if self.data and self.data.endswith(b"\n"):
            returns = np.flatnonzero(codes == ord("\r")) if b"\r" in self.data else []
            self.plain = bool((codes[returns + 1] == ord("\n")).all()) if len(returns) else True

    @classmethod
    def whole_lines(cls, text: str) -> "_Block | None":
        """The block of ``text`` up to its last \\n, if each of its lines ends in \\n or
        \\r\\n (None otherwise)."""
        block = cls(text=text[:text.rfind("\n") + 1])
        return block if block.plain else None

    @functools.cached_property
    def text(self) -> str:
        return "".join(self.lines)

    @functools.cached_property
    def lines(self) -> list[str]:
        return io.StringIO(self.text, newline="").readlines()

    @functools.cached_property
    def data(self) -> bytes | None:
        try:
            return self.text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate some codecs decode to
            return None

    def __len__(self) -> int:
        return self.count


def _line_blocks(raw, encoding: str, name: str) -> Iterator[_Block]:
    """The lines of a binary file, a block at a time (``_Block``), split in C rather than
    line by line.

    Refuses a line longer than ``MAX_LINE_CHARS`` and a NUL byte (binary content) at
    their physical line, and stops on bytes that are not valid ``encoding``
    (UnicodeDecodeError) after handing over every line before them, so whoever reads
    the lines sees each refusal on the row it is on. An unfinished line is carried into
    the next block, never beyond ``MAX_LINE_CHARS``: memory is bounded by the block size.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    limit = MAX_LINE_CHARS
    line_no, carry = 0, ""
    while True:
        data = raw.read(TEXT_BLOCK_BYTES)
        broken = None
        pending = decoder.getstate()[0]
        try:
            text = carry + decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            broken = e
            try:
                text = carry + (pending + data)[:e.start].decode(encoding)
            except UnicodeDecodeError:
                text = carry
        last = not data or broken is not None
        plain = None if last or "\x00" in text else _Block.whole_lines(text)
        if plain is not None and plain.longest < limit and len(text) - len(plain.text) < limit:
            # Nothing to refuse in it: the common case, never split into lines here.
            carry = text[len(plain.text):]
            line_no += len(plain)
            yield plain
            continue
        lines = io.StringIO(text, newline="").readlines()
        carry = "" if last or not lines else lines.pop()
        if broken is not None and lines and not lines[-1].endswith(("\n", "\r")):
            lines.pop()  # the line the bad bytes are on
        if "\x00" in text or len(carry) >= limit or (lines and len(max(lines, key=len)) >= limit):
            for i, line in enumerate(lines + [carry]):
                content = len(line.rstrip("\r\n")) if line.endswith(("\n", "\r")) else len(line)
                rule = ("line_too_long", f"physical line {line_no + i + 1} is longer than {limit:,} characters") \
                    if content >= limit else ("binary_content", f"NUL byte on physical line {line_no + i + 1}; "
                                              "not a text file") if "\x00" in line else None
                if rule:
                    yield _Block(lines=lines[:i])
                    raise RejectedFile(name, *rule)
        line_no += len(lines)
        yield _Block(lines=lines)
        if broken is not None:
            raise broken
        if not data:
            return


def _lines(raw, encoding: str, name: str) -> Iterator[str]:
    """The lines of ``_line_blocks`` one by one (the iteration itself stays in C)."""
    return itertools.chain.from_iterable(block.lines for block in _line_blocks(raw, encoding, name))


class _ReaderFeed:
    """The lines the csv reader parses: the blocks handed to it, then any block it pulls
    itself because a quoted field runs on past them.

    ``handed`` counts every line it was given, so after a record ``reader.line_num ==
    handed`` means the reader stands at a record boundary with nothing of its own unread:
    the next block can then be parsed without it.
    """

    def __init__(self, blocks: Iterator[_Block]):
        self.blocks = blocks
        self.queue: collections.deque[list[str]] = collections.deque()
        self.handed = 0

    def give(self, block: _Block) -> None:
        self.queue.append(block.lines)
        self.handed += len(block)

    def _next_blocks(self) -> Iterator[list[str]]:
        while True:
            if self.queue:
                yield self.queue.popleft()
                continue
            block = next(self.blocks, None)
            if block is None:
                return
            self.handed += len(block)
            yield block.lines

    def lines(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._next_blocks())


def _arrow_parser(fmt, names: list[str]) -> Callable[[_Block], "list[pa.Array] | None"] | None:
    """A parser of whole blocks of lines by pyarrow.csv, for the blocks where it gives exactly
    the cells the csv module gives; None when the format's characters rule it out.

    It takes a block only if the block holds no quote character (so every delimiter splits
    and every line is one record), no line longer than the csv module's field limit (which
    the csv module refuses), no leading BOM (pyarrow would drop it), and every line has the
    declared width (pyarrow refuses the block otherwise) with no blank row (pyarrow reads
    an empty line as empty cells). Any other block returns None and goes to the csv module,
    which refuses what must be refused at its own row. Cells stay as sent: no trimming, no
    NULLs ("" stays ""), no type inference.
    """
    delimiter, quote = fmt.delimiter, fmt.quotechar
    if not (isinstance(delimiter, str) and len(delimiter) == 1 and delimiter.isascii()
            and delimiter not in "\r\n" and isinstance(quote, str) and len(quote) == 1 and quote != delimiter):
        return None
    parse = pa_csv.ParseOptions(delimiter=delimiter, quote_char=False, double_quote=False, escape_char=False,
                                newlines_in_values=False, ignore_empty_lines=False)
    convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), null_values=[],
                                    strings_can_be_null=False, quoted_strings_can_be_null=False,
                                    check_utf8=False)

    quoted = quote.encode("utf-8")

    def parse_block(block: _Block) -> list[pa.Array] | None:
        data = block.data
        if (data is None or quoted in data or data.startswith(codecs.BOM_UTF8)
                or block.longest > csv.field_size_limit()):
            return None
        try:
            # One block of pyarrow's own for the whole text: a larger one costs wall time to allocate.
            read = pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1)
            table = pa_csv.read_csv(pa.py_buffer(data), read_options=read,
                                    parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid:  # a row of another width (its message quotes the row)
            return None
        if table.num_rows != len(block):
            return None
        columns = [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for c in table.columns]
        # A blank row has every cell blank, its first one included; only those rows are looked at.
        maybe = pc.equal(pc.utf8_length(pc.utf8_trim(columns[0], characters=PY_WHITESPACE)), 0)
        if pc.any(maybe).as_py():
            blank = functools.reduce(pc.and_, (pc.equal(pc.utf8_length(pc.utf8_trim(
                c.filter(maybe), characters=PY_WHITESPACE)), 0) for c in columns))
            if pc.any(blank).as_py():
                return None
        return columns
    return parse_block


class _Batches:
    """Rows regrouped into batches of the records ``(k-1)*size+1 .. k*size`` (blank rows
    counted, as the row numbers count them), the way the rows were read before."""

    def __init__(self, size: int):
        self.size = size
        self.end = size  # last record of the batch being filled
        self.rows: list[int] = []
        self.parts: list[list[pa.Array]] = []
        self.ready: list[Batch] = []

    def add(self, rows, columns: list[pa.Array]) -> None:
        start = 0
        while start < len(rows):
            cut = bisect.bisect_right(rows, self.end, lo=start)
            if cut > start:
                self.rows.extend(rows[start:cut])
                self.parts.append([c.slice(start, cut - start) for c in columns])
            if cut == len(rows):
                return
            self._close(None)
            start = cut

    def _close(self, stop: RejectedFile | None) -> None:
        if self.rows or stop:
            columns = [pa.concat_arrays(list(part)) for part in zip(*self.parts)]
            self.ready.append((self.rows, columns, stop))
        self.rows, self.parts = [], []
        self.end += self.size

    def finish(self, stop: RejectedFile | None, at: int) -> None:
        """The end of the rows: by ``stop`` (met while reading record ``at``), or the file's end."""
        while stop is not None and at > self.end:
            self._close(None)
        self._close(stop)


def _csv_records(path: Source, contract: Contract, name: str, chunk_rows: int) -> Iterator[Batch]:
    """Rows of a delimited file, ``chunk_rows`` at a time, with their shape checked.

    A block of lines that ``_arrow_parser`` takes (nearly every block of a real extract)
    becomes Arrow string columns in C++, and only when the csv reader stands at a record
    boundary, never inside a quoted field. Any other block is parsed by the csv module:
    a block whose rows all have the declared width and no blank row among them is passed
    on as it is, any other is walked row by row, so blank and ragged rows are refused
    exactly where they are.
    """
    fmt = contract.format
    expected = contract.column_names
    width = len(expected)
    with reopen(path, "rb") as raw:
        blocks = _line_blocks(raw, fmt.encoding, name)
        feed = _ReaderFeed(blocks)
        reader = csv.reader(feed.lines(), delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
        try:
            if fmt.header:
                header = next(reader, None)
                if header is None:
                    raise RejectedFile(name, "empty_file", "no header row")
                if header and header[0].startswith("\ufeff"):
                    header[0] = header[0][1:]
                header = [h.strip() for h in header]
                if header != expected:
                    raise RejectedFile(name, "header", header_difference(expected, header), row=0)
        except UnicodeDecodeError:
            raise RejectedFile(name, "encoding", f"not valid {fmt.encoding}", row=1) from None
        except csv.Error as e:
            raise RejectedFile(name, "csv_syntax", str(e).split(":")[0], row=1) from None
        parse_block = _arrow_parser(fmt, expected)
        batches = _Batches(chunk_rows)
        row_no = 0  # rows read so far, blank ones included
        blanks = 0  # blank rows just read: harmless at the end of the file only
        stop: RejectedFile | None = None
        while stop is None:
            records: list[list[str]] = []
            try:
                if reader.line_num == feed.handed:
                    block = next(blocks, None)
                    if block is None:
                        break
                    # Row 1 of a file without header goes to the csv module, which checks it is no header.
                    columns = parse_block(block) if parse_block and block and (fmt.header or row_no) else None
                    if columns is None:
                        feed.give(block)
                    elif blanks:
                        raise RejectedFile(name, "blank_row", "blank line inside the data", row=row_no + 1 - blanks)
                    else:
                        batches.add(range(row_no + 1, row_no + 1 + len(block)), columns)
                        row_no += len(block)
                while reader.line_num < feed.handed:
                    record = next(reader, None)
                    if record is None:
                        break
                    records.append(record)
            except UnicodeDecodeError:
                stop = RejectedFile(name, "encoding", f"not valid {fmt.encoding}", row=row_no + len(records) + 1)
            except csv.Error as e:
                stop = RejectedFile(name, "csv_syntax", str(e).split(":")[0], row=row_no + len(records) + 1)
            except RejectedFile as e:
                stop = e
            at = row_no + len(records) + 1  # the row being read when it stopped
            first = row_no + 1
            row_no += len(records)
            if (not blanks and records and set(map(len, records)) == {width}
                    and all(map(str.strip, map("".join, records))) and (fmt.header or first > 1)):
                rows, kept = range(first, row_no + 1), records
            else:
                rows, kept = [], []
                try:
                    for n, record in enumerate(records, start=first):
                        if not "".join(record).strip():
                            # A blank line, or a row of empty cells (",,,": spreadsheets export those);
                            # only trailing ones are harmless, which is checked when data follows.
                            blanks += 1
                            continue
                        if blanks:
                            raise RejectedFile(name, "blank_row", "blank line inside the data", row=n - blanks)
                        if len(record) != width:
                            raise RejectedFile(name, "ragged_row",
                                               f"{len(record)} fields where the contract has {width}", row=n)
                        if n == 1 and not fmt.header:
                            if [c.strip().lstrip("\ufeff") for c in record] == expected:
                                raise RejectedFile(name, "header", "the file has a header row; the contract "
                                                   "declares none (header: false, columns in declared order)", row=1)
                        rows.append(n)
                        kept.append(record)
                except RejectedFile as e:
                    stop, at = e, n
            if kept:
                batches.add(rows, [pa.array(cells, pa.string()) for cells in zip(*kept)])
            del records, kept
            if stop is not None:
                batches.finish(stop, at)
            yield from batches.ready
            batches.ready.clear()
        if stop is None:
            batches.finish(None, row_no)
            yield from batches.ready


def _batched(records: Iterator[Record], chunk_rows: int) -> Iterator[Batch]:
    """Batches of a source read row by row; a refusal comes with the rows read before it."""
    rows: list[int] = []
    cells: list[list] = []
    try:
        for row_no, record in records:
            rows.append(row_no)
            cells.append(record)
            if len(rows) >= chunk_rows:
                yield rows, list(zip(*cells)), None
                rows, cells = [], []
    except RejectedFile as e:
        yield rows, list(zip(*cells)), e
        return
    if rows:
        yield rows, list(zip(*cells)), None


def _refuse_constant(token: str):
    raise ValueError(token)


def _jsonl_records(path: Source, contract: Contract, name: str) -> Iterator[Record]:
    fmt = contract.format
    expected = contract.column_names
    wanted = set(expected)
    row_no, blanks = 0, 0
    try:
        with reopen(path, "rb") as raw:
            for line in _lines(raw, fmt.encoding, name):
                row_no += 1
                if row_no == 1:
                    line = line.lstrip("\ufeff")
                if not line.strip():
                    blanks += 1  # only trailing blank lines are harmless; checked when data follows
                    continue
                if blanks:
                    raise RejectedFile(name, "blank_row", "blank line inside the data", row=row_no - blanks)
                try:
                    obj = json.loads(line, parse_constant=_refuse_constant)
                except ValueError:
                    raise RejectedFile(name, "jsonl_syntax", "line is not valid JSON", row=row_no) from None
                if not isinstance(obj, dict):
                    raise RejectedFile(name, "jsonl_syntax", "line is not a JSON object", row=row_no)
                if obj.keys() != wanted:
                    raise RejectedFile(name, "header", header_difference(expected, list(obj)), row=row_no)
                yield row_no, [obj[c] for c in expected]
    except UnicodeDecodeError:
        raise RejectedFile(name, "encoding", f"not valid {fmt.encoding}", row=row_no + 1) from None


def _xlsx_records(path: Source, contract: Contract, name: str) -> Iterator[Record]:
    """Rows of the only sheet of a workbook; refuses several sheets and any formula cell.

    The workbook is opened with ``data_only=False`` so a formula shows up as a
    formula cell (data type ``f``) instead of its cached result: a formula is
    refused rather than trusted, because its value is whatever the sending
    machine last computed.
    """
    from openpyxl import load_workbook  # imported here: only xlsx contracts need it

    raw = reopen(path, "rb")
    try:
        if not zipfile.is_zipfile(raw):
            raise RejectedFile(name, "xlsx_unreadable", "not an .xlsx workbook (not a zip archive)")
        with zipfile.ZipFile(raw) as z:
            unpacked = sum(i.file_size for i in z.infolist())
        if unpacked > XLSX_MAX_UNCOMPRESSED:
            raise RejectedFile(name, "xlsx_size", f"workbook unpacks to {unpacked:,} bytes, over "
                               f"the limit of {XLSX_MAX_UNCOMPRESSED:,}")
        raw.seek(0)
        wb = load_workbook(raw, read_only=True, data_only=False)
    except RejectedFile:
        raw.close()
        raise
    except Exception:  # any failure to parse an untrusted workbook is a refusal, not a crash
        raw.close()
        raise RejectedFile(name, "xlsx_unreadable", "not a readable .xlsx workbook") from None
    expected = contract.column_names
    width = len(expected)
    row_no, blanks = 0, 0
    try:
        if len(wb.sheetnames) != 1:
            raise RejectedFile(name, "xlsx_sheets",
                               f"workbook has {len(wb.sheetnames)} sheets; exactly one is accepted")
        rows = wb[wb.sheetnames[0]].iter_rows()
        if contract.format.header:
            first = next(rows, None)
            header = [("" if c.value is None else str(c.value)).strip() for c in first or ()]
            while header and header[-1] == "":
                header.pop()
            if not header:
                raise RejectedFile(name, "empty_file", "no header row")
            if header != expected:
                raise RejectedFile(name, "header", header_difference(expected, header), row=0)
        for cells in rows:
            row_no += 1
            for i, cell in enumerate(cells):
                if cell.data_type == "f":
                    where = expected[i] if i < width else f"cell {i + 1} beyond the declared columns"
                    raise RejectedFile(name, "xlsx_formula", f"formula in column {where}; send values only",
                                       row=row_no)
            values = [c.value for c in cells]
            while values and (values[-1] is None or values[-1] == ""):
                values.pop()
            if not values:
                blanks += 1  # trailing empty rows are common in spreadsheets and harmless
                continue
            if blanks:
                raise RejectedFile(name, "blank_row", "empty row inside the data", row=row_no - blanks)
            if len(values) > width:
                raise RejectedFile(name, "ragged_row", f"{len(values)} cells where the contract has {width}",
                                   row=row_no)
            values += [None] * (width - len(values))
            if row_no == 1 and not contract.format.header and [str(v).strip() for v in values] == expected:
                raise RejectedFile(name, "header", "the sheet has a header row; the contract declares none",
                                   row=1)
            yield row_no, values
    except RejectedFile:
        raise
    except Exception:
        raise RejectedFile(name, "xlsx_unreadable", "workbook content cannot be read",
                           row=row_no or None) from None
    finally:
        wb.close()
        raw.close()


def _jsonl_batches(path: Source, contract: Contract, name: str, chunk_rows: int) -> Iterator[Batch]:
    return _batched(_jsonl_records(path, contract, name), chunk_rows)


def _xlsx_batches(path: Source, contract: Contract, name: str, chunk_rows: int) -> Iterator[Batch]:
    return _batched(_xlsx_records(path, contract, name), chunk_rows)


# Each yields (row numbers, cells per row, the refusal that ends the file after these rows or None).
_SOURCES = {"csv": _csv_records, "tsv": _csv_records, "jsonl": _jsonl_batches, "xlsx": _xlsx_batches}


def _text_column(cells: pa.Array, null_markers: list[str]) -> pa.Array:
    """Text cells of a string column, NULL where the stripped cell is a null marker.

    What ``_converter`` does cell by cell, in Arrow: ``PY_WHITESPACE`` is exactly what
    ``str.strip()`` removes.
    """
    marked = pc.is_in(pc.utf8_trim(cells, characters=PY_WHITESPACE), value_set=pa.array(null_markers, pa.string()))
    if not pc.any(marked).as_py():
        return cells  # nothing to blank: no copy of every cell
    return pc.if_else(marked, pa.scalar(None, pa.string()), cells)


def _convert_column(values, conv: Callable, arrow_type: pa.DataType, text_only: bool):
    """One column of a chunk -> (typed Arrow array, numpy mask of unreadable cells).

    ``values`` is an Arrow string array for text formats, a sequence of cells otherwise.
    Cells repeat a great deal (dates, codes, a person's name on every row), so
    each distinct cell is converted once and the results are spread with one
    ``take``. Text cells are deduplicated by Arrow; typed cells (xlsx, jsonl) by
    (type, value), so True is never taken for 1; an unhashable cell (a JSON list)
    is converted on its own and refused.
    """
    if text_only and arrow_type == pa.string():
        return _text_column(values, conv.null_markers), None
    if text_only:
        encoded = values.dictionary_encode()
        codes = encoded.indices.to_numpy()
        formats = getattr(conv, "formats", ())
        fast = _arrow_strptime(encoded.dictionary, formats[0], arrow_type) if formats else None
        if fast is not None:
            return _merged(fast, encoded.dictionary, codes, conv, arrow_type)
        distinct = encoded.dictionary.to_pylist()
    else:
        index: dict = {}
        try:
            codes = np.fromiter((index.setdefault((type(v), v), len(index)) for v in values),
                                dtype=np.int64, count=len(values))
            distinct = [v for _, v in index]
        except TypeError:
            distinct, codes = list(values), np.arange(len(values))
    converted, bad = _converted(distinct, conv, arrow_type)
    return converted.take(pa.array(codes)), np.isin(codes, bad) if bad else None


def _converted(cells: list, conv: Callable, arrow_type: pa.DataType) -> tuple[pa.Array, list[int]]:
    """``conv`` of every cell, NULL where it is unreadable, and the positions of those."""
    converted, bad = [], []
    for i, cell in enumerate(cells):
        try:
            converted.append(conv(cell))
        except ValueError:
            converted.append(None)
            bad.append(i)
    return pa.array(converted, arrow_type), bad


# The parts of a timestamp Arrow reads for ``_arrow_strptime``: fixed-width numbers only (no
# names of months or days, no fractions, zones or 12-hour clock), as strftime writes them.
_ARROW_FIELDS = {"Y": (4, pc.year), "m": (2, pc.month), "d": (2, pc.day),
                 "H": (2, pc.hour), "M": (2, pc.minute), "S": (2, pc.second)}


def _arrow_strptime(cells: pa.Array, fmt: str, arrow_type: pa.DataType) -> tuple[pa.Array, np.ndarray] | None:
    """(values, which cells they hold) for the cells written exactly as ``fmt`` writes a real
    date (every number zero-padded to its width, the month day in its month, the hour below
    24, the year 1-9999): for those Arrow's strptime gives the value Python's gives, and only
    the other cells (unpadded numbers, impossible dates, null markers) need a Python call.

    Arrow's strptime alone is not enough: it takes 02/30 as March 1 and the year 0, which
    Python refuses; so each number of the cell is read from the text and compared with the
    value's. None when ``fmt`` has other directives, a directive twice, or no full date.
    """
    pattern, fields = "", []
    parts = re.split(r"(%.)", fmt)
    for part in parts:
        if part.startswith("%") and len(part) == 2 and part != "%%":
            if part[1] not in _ARROW_FIELDS or part[1] in fields:
                return None
            fields.append(part[1])
            pattern += f"(?P<f{len(fields)}>[0-9]{{{_ARROW_FIELDS[part[1]][0]}}})"
        else:
            pattern += "".join(f"\\x{{{ord(c):x}}}" for c in part.replace("%%", "%"))
    if not {"Y", "m", "d"} <= set(fields):
        return None
    stripped = pc.utf8_trim(cells, characters=PY_WHITESPACE)
    parsed = pc.strptime(stripped, format=fmt, unit="s", error_is_null=True)
    numbers = pc.extract_regex(stripped, pattern=f"^{pattern}$")
    exact = pc.and_(pc.greater_equal(pc.year(parsed), 1), pc.less_equal(pc.year(parsed), 9999))
    for name, (_, part_of) in _ARROW_FIELDS.items():
        written = (pc.struct_field(numbers, f"f{fields.index(name) + 1}").cast(pa.int64()) if name in fields
                   else pa.scalar(0, pa.int64()))
        exact = pc.and_(exact, pc.equal(part_of(parsed), written))
    return parsed.cast(arrow_type), pc.fill_null(exact, False).to_numpy(zero_copy_only=False)


def _merged(fast: tuple[pa.Array, np.ndarray], distinct: pa.Array, codes: np.ndarray, conv: Callable,
            arrow_type: pa.DataType):
    """``_convert_column``'s result from Arrow's values and ``conv`` for the cells Arrow left."""
    values, exact = fast
    rest = np.flatnonzero(~exact)
    converted, unreadable = _converted(distinct.take(pa.array(rest, pa.int64())).to_pylist(), conv, arrow_type)
    bad = rest[unreadable].tolist()
    if len(rest):
        slow = np.zeros(len(distinct), dtype=np.int64)
        slow[rest] = np.arange(len(rest))
        values = pc.if_else(pa.array(exact), values, converted.take(pa.array(slow)))
    return values.take(pa.array(codes)), np.isin(codes, bad) if bad else None


def _typed_chunk(name: str, contract: Contract, converters: list[Callable], text_only: bool,
                 rows: list[int], columns: list) -> list[pa.Array]:
    """Cells of one chunk, a column at a time -> one typed Arrow array per contract column.

    Refuses the first broken cell in file order (the earliest row, and in it the
    first column), exactly as a cell-by-cell reading would.
    """
    first: tuple[int, int, str] | None = None  # (row index, column index, rule) of the earliest refusal
    arrays = []
    for i, (col, cells, conv) in enumerate(zip(contract.columns, columns, converters)):
        typed, unreadable = _convert_column(cells, conv, ARROW_TYPES[col.type], text_only)
        arrays.append(typed)
        broken = unreadable
        if not col.nullable and typed.null_count:
            broken = typed.is_null().to_numpy(zero_copy_only=False)
        if broken is None or not broken.any():
            continue
        at = int(broken.argmax())
        if first is None or at < first[0]:
            rule = _rule_for(col) if unreadable is not None and unreadable[at] else "not_null"
            first = (at, i, rule)
    if first is not None:
        at, i, rule = first
        col = contract.columns[i]
        if rule == "not_null":
            raise RejectedFile(name, "not_null", f"column {col.name} is empty", row=rows[at])
        expect = f" (expected {' or '.join(col.formats)})" if col.formats else ""
        raise RejectedFile(name, rule, f"column {col.name} cannot be read as {col.type}{expect}", row=rows[at])
    return arrays


def read_chunks(path: Source, contract: Contract, display_name: str | None = None,
                chunk_rows: int = CHUNK_ROWS, arrow: bool = False) -> Iterator[tuple[list[int], dict]]:
    """Yield (row_numbers, {column: values}) chunks of a delivered file.

    ``path`` may be an open descriptor (then ``display_name`` is required).
    ``display_name`` is the name used in errors (e.g. the delivered name of a
    file decrypted to a temporary path). Values are Python lists, or with
    ``arrow`` typed Arrow arrays (``ARROW_TYPES``; what intake loads). Raises
    RejectedFile on the first broken rule, in file order; the caller must treat
    the whole file as rejected (nothing of it is loaded), so chunks already
    yielded must be discarded. Time goes to ``CLOCK`` as parse (rows and
    fields, shape checks) and normalize (typed cells, not-null).
    """
    if display_name is None and isinstance(path, int):
        raise TypeError("read_chunks needs display_name when reading a descriptor")
    name = display_name or path.name
    fmt = contract.format
    source = _SOURCES.get(fmt.type)
    if source is None:
        raise RejectedFile(name, "format", f"format {fmt.type} is not readable")
    text_only = fmt.type in ("csv", "tsv")
    converters = [(_converter if text_only else _typed_converter)(c) for c in contract.columns]
    expected = contract.column_names
    batches = source(path, contract, name, chunk_rows)
    while True:
        with CLOCK.timed("parse"):
            rows, columns, stop = next(batches, ([], [], None))
        if rows:
            with CLOCK.timed("normalize"):
                # An earlier broken cell is refused before the rule that stopped the file.
                arrays = _typed_chunk(name, contract, converters, text_only, rows, columns)
                del columns
                cols = dict(zip(expected, arrays if arrow else [a.to_pylist() for a in arrays]))
        if stop is not None:
            raise stop
        if not rows:
            return
        yield rows, cols
    # A file with a header and no data rows is a valid delivery of zero rows: for an
    # incremental extract "nothing happened", for a full-history one the volume guard decides.
