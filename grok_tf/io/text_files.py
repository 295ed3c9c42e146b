"""Reading the text files a spec names: list files, CSV tables, class files.

One reader for every text input (the spec itself, image lists, class files,
CSV tables, product descriptions), so that all of them accept the same
bytes and fail the same way.

- Encoding: UTF-8, with or without a byte order mark (BOM). Anything else
  (Latin-1, UTF-16, binary files) is refused, naming the file, the line,
  the column and the byte offset of the first byte that is not UTF-8.
- Line ends: `\\n`, `\\r\\n` or `\\r` (universal newlines); a line is at most
  `MAX_LINE_BYTES` long, and a NUL byte anywhere is an error.
- List files (`path, label, label, ...`): each line is one CSV record
  (Python's `csv` module: a field with a comma is quoted, `"a,b.jpg", 3`;
  `""` inside quotes is one quote; spaces after a comma are ignored; a
  closing quote is followed by a comma or the end of the line; a quoted
  field ends on its line). Fields are stripped of surrounding spaces.
  Blank lines and lines starting with `#` are skipped.
- CSV tables: the first non-blank line is the header; every record has as
  many fields as the header (blank lines are skipped); column names are
  unique; fields are stripped.
- Integers (class ids, `path:K`, slice bounds): an optional minus sign and
  1 to 18 ASCII digits; `--5`, `²`, `١`, `1e3`, `3.0`, `0x1` are not
  integers.

Every problem raises `SpecError` with one line `FILE:LINE: what is wrong`;
a file that cannot be opened raises `WHO: cannot read file FILE: reason`,
WHO being the spec field (or file line) that named it.
"""

import codecs
import csv
import dataclasses
import posixpath
import re

from grok_tf.errors import SpecError

ENCODING = "UTF-8 (with or without BOM)"
MAX_LINE_BYTES = 1 << 20
_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CHUNK = 1 << 16
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_LINE_END = re.compile(rb"\r\n|\r|\n")


def parse_int(text):
    """`text` as an int if it is an integer (`-?[0-9]{1,18}`), else None.

    Example:

    >>> [parse_int(t) for t in ["7", "-1", "--5", "²", "١", "1e3", " 3"]]
    [7, -1, None, None, None, None, None]
    """
    return int(text) if _INTEGER.fullmatch(text) else None


def read_lines(path, who=None, what="file", skip_long_lines=False):
    """The lines of a UTF-8 text file, without their line ends.

    Streamed: memory holds one line (at most `MAX_LINE_BYTES`) at a time.

    Args:
        path: the file.
        who: names what referred to the file (e.g. `spec.yaml: heads[0]
            .classes.file`), for the error when it cannot be opened.
        what: the kind of file, for that error (`file`, `text file`).
        skip_long_lines: a line longer than `MAX_LINE_BYTES` gives
            `(line number, None)` (its bytes are dropped as they are read)
            instead of an error: for logs whose bad rows are skipped.

    Yields:
        `(line number, text)`, numbers from 1.

    Raises:
        SpecError: `FILE:LINE: ...` for bytes that are not UTF-8, a NUL
            byte or a line longer than `MAX_LINE_BYTES`; `WHO: cannot read
            file FILE: reason` when the file cannot be opened or read.
    """
    try:
        with open(path, "rb") as f:
            yield from _decoded_lines(path, f, skip_long_lines)
    except OSError as error:
        prefix = f"{who}: " if who else ""
        reason = error.strerror or str(error)
        raise SpecError(
            f"{prefix}cannot read {what} {path}: {reason}"
        ) from None


def read_text(path, who=None, what="file"):
    """A whole UTF-8 text file, line ends made `\\n` (see `read_lines`)."""
    return "".join(text + "\n" for _, text in read_lines(path, who, what))


def read_list(path, who=None):
    """The records of a list file (see the module docstring).

    Yields:
        `(line number, fields)`: the stripped fields of every line that is
        neither blank nor a `#` comment.

    Example: the line `"a,b.jpg", 3, 0|1` gives `["a,b.jpg", "3", "0|1"]`.
    """
    for number, text in read_lines(path, who):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if '"' not in text:  # what csv does without quotes, but faster
            yield number, [field.strip() for field in text.split(",")]
            continue
        try:
            fields = next(
                csv.reader([text.strip()], skipinitialspace=True, strict=True)
            )
        except csv.Error as error:
            raise SpecError(f"{path}:{number}: {_csv_problem(error)}") from None
        yield number, [field.strip() for field in fields]


@dataclasses.dataclass
class Table:
    """A CSV table: its header and its records as `(line, {column: value})`."""

    path: object
    header: list
    rows: list


def read_table(path, who=None, multiline=False):
    """Reads a CSV table with a header line (see the module docstring).

    Args:
        path: the CSV file.
        who: what named the file, for the error when it cannot be opened.
        multiline: allow quoted fields that span lines (product
            descriptions); otherwise a quote left open at the end of a line
            is an error of that line.

    Returns:
        A `Table`; the line of a record is the line it starts on.

    Raises:
        SpecError: `FILE:LINE: ...` for a quoting error, a record with more
            or fewer fields than the header, a repeated column name, or
            what `read_lines` refuses.
    """
    header, header_line, rows = None, None, []
    for number, fields in _csv_records(path, who, multiline):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        fields = [field.strip() for field in fields]
        if header is None:
            header, header_line = fields, number
            seen = {}
            for column in header:
                if column and column in seen:
                    raise SpecError(
                        f"{path}:{number}: column {column!r} appears twice "
                        "in the header"
                    )
                seen[column] = True
            continue
        if len(fields) != len(header):
            raise SpecError(
                f"{path}:{number}: {len(fields)} fields, the header (line "
                f"{header_line}) has {len(header)}; quote fields that hold "
                "a comma"
            )
        rows.append((number, dict(zip(header, fields, strict=True))))
    return Table(path=path, header=header or [], rows=rows)


def dataset_path(text, where, root_relative=False):
    """Checks an image or text file path read from a dataset's file.

    Paths are relative to the dataset root and may not leave it (`..`).

    Args:
        text: the path as written (stripped).
        where: `FILE:LINE` of the record, for errors.
        root_relative: a leading `/` means the dataset root (the convention
            of catalogue and description columns, e.g. grocery's
            `classes.csv`); otherwise an absolute path is an error.

    Returns:
        The path relative to the root, as a string.

    Raises:
        SpecError: for an empty path, an absolute path (unless
            `root_relative`), or one that leaves the dataset root.
    """
    if not text:
        raise SpecError(f"{where}: empty path")
    relative = text.lstrip("/") if root_relative else text
    if relative.startswith("/"):
        raise SpecError(
            f"{where}: absolute path {text!r}; paths are relative to the "
            "dataset root"
        )
    normal = posixpath.normpath(relative)
    if not relative or normal == ".." or normal.startswith("../"):
        raise SpecError(f"{where}: path {text!r} leaves the dataset root")
    return relative


def _csv_records(path, who, multiline):
    """`(first line, fields)` of each CSV record of `path`."""
    if not multiline:
        for number, text in read_lines(path, who):
            try:
                fields = next(csv.reader([text], strict=True), [])
            except csv.Error as error:
                raise SpecError(
                    f"{path}:{number}: {_csv_problem(error)}"
                ) from None
            yield number, fields
        return
    lines = (text + "\n" for _, text in read_lines(path, who))
    reader = csv.reader(lines, strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problem = _csv_problem(error)
            if "not closed" in problem:
                problem += f" (the record runs to line {reader.line_num})"
                raise SpecError(f"{path}:{start}: {problem}") from None
            if reader.line_num > start:
                problem += f" (in the record from line {start})"
            raise SpecError(f"{path}:{reader.line_num}: {problem}") from None
        yield start, fields
        start = reader.line_num + 1


def _csv_problem(error):
    text = str(error)
    if "unexpected end of data" in text:
        return "a quoted field is not closed (unbalanced quote)"
    if "expected after" in text:
        return f"bad quoting ({text}): a closing quote must end the field"
    return f"bad CSV: {text}"


def _decoded_lines(path, f, skip_long_lines=False):
    """Splits a binary file into decoded lines (the rules of `read_lines`)."""
    number, offset, pending = 0, 0, b""
    skipping = False  # inside a long line whose bytes are being dropped
    while len(pending) < len(_BOM):
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        pending += chunk
    if pending.startswith(_UTF16_BOMS):
        raise SpecError(
            f"{path}:1: UTF-16 text (byte order mark "
            f"{pending[:2].hex(' ').upper()}); save it as UTF-8"
        )
    if pending.startswith(_BOM):
        pending, offset = pending[len(_BOM) :], len(_BOM)
    while True:
        chunk = f.read(_CHUNK)
        data, end = pending + chunk, not chunk
        # A trailing \r may be the first half of \r\n: keep it for later.
        cut = len(data) - (data.endswith(b"\r") and not end)
        start = 0
        for match in _LINE_END.finditer(data, 0, cut):
            number += 1
            raw = data[start : match.start()]
            if skip_long_lines and (skipping or len(raw) > MAX_LINE_BYTES):
                yield number, None
                skipping = False
            else:
                yield _decode(path, number, offset, raw)
            offset += match.end() - start
            start = match.end()
        pending = data[start:]
        if end:
            if skipping or (skip_long_lines and len(pending) > MAX_LINE_BYTES):
                yield number + 1, None
            elif pending:  # the last line, without a line end
                yield _decode(path, number + 1, offset, pending)
            return
        if len(pending) > MAX_LINE_BYTES:
            if not skip_long_lines:
                raise SpecError(
                    f"{path}:{number + 1}: line longer than {MAX_LINE_BYTES} "
                    "bytes"
                )
            # Drop what is read of the line, keeping a final \r (the first
            # half of a \r\n that ends it).
            kept = pending[-1:] if pending.endswith(b"\r") else b""
            offset += len(pending) - len(kept)
            pending, skipping = kept, True


def _decode(path, number, offset, raw):
    if len(raw) > MAX_LINE_BYTES:
        raise SpecError(
            f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        column = len(raw[: error.start].decode("utf-8")) + 1
        bad = raw[error.start : error.end].hex(" ").upper()
        raise SpecError(
            f"{path}:{number}: not UTF-8: byte {bad} at column {column} "
            f"(file offset {offset + error.start}); text files must be "
            f"{ENCODING}"
        ) from None
    if "\x00" in text:
        raise SpecError(
            f"{path}:{number}: NUL byte at column {text.index(chr(0)) + 1}; "
            "not a text file?"
        )
    return number, text
