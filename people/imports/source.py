"""Reading an uploaded CSV: sniffing it, then streaming its records with bounded memory.

The file is never read whole: sniffing looks at the first SAMPLE_BYTES, and the full passes
go through io.TextIOWrapper -> LineSource (one physical line at a time, at most
MAX_LINE_CHARS of it in memory) -> csv.reader.
"""

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from charset_normalizer import from_bytes

SAMPLE_BYTES = 64 * 1024
MAX_LINE_CHARS = 1024 * 1024  # a longer physical line is refused (reported), never buffered
PREVIEW_ROWS = 10
SEPARATORS = [",", ";", "\t", "|"]
SEPARATOR_LABELS = {",": "comma (,)", ";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}

# Encodings offered on the analyze screen (Python codec name -> label).
ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16 (with BOM)",
    "utf-16-le": "UTF-16 LE",
    "utf-16-be": "UTF-16 BE",
    "cp1252": "Windows-1252 (Western European)",
    "iso8859-1": "ISO-8859-1 (Latin-1)",
    "iso8859-15": "ISO-8859-15 (Latin-9)",
    "cp1250": "Windows-1250 (Central European)",
    "iso8859-2": "ISO-8859-2 (Central European)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "koi8-r": "KOI8-R (Russian)",
    "cp1253": "Windows-1253 (Greek)",
    "cp1254": "Windows-1254 (Turkish)",
    "cp1257": "Windows-1257 (Baltic)",
    "mac-roman": "Mac Roman",
    "shift_jis": "Shift JIS (Japanese)",
    "gb18030": "GB18030 (Chinese)",
    "big5": "Big5 (Traditional Chinese)",
    "euc-kr": "EUC-KR (Korean)",
}
# When charset-normalizer finds several encodings that decode the sample equally cleanly,
# the common one wins (a short Latin sample otherwise comes out as cp775 or cp1257).
_PREFERRED = ["utf-8", "ascii", "cp1252", "cp1251", "iso8859-1", "cp1250", "utf-16"]

# Signatures of files people upload by mistake instead of a CSV.
_MAGIC = [
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or a zip archive; save the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls); save the sheet as CSV"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive; decompress it first"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"SQLite format 3", "an SQLite database"),
]
# Unicode with a byte order mark, for both imports.
BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class SourceError(ValueError):
    """The file as a whole cannot be read as CSV; the message says why and what to do."""


class LineTooLong(ValueError):
    def __init__(self, line: int, length: int):
        self.line = line
        self.length = length
        super().__init__(
            f"the line is longer than {MAX_LINE_CHARS // (1024 * 1024)} MB of text "
            f"({length:,} characters or more); it was skipped"
        )


def codec_name(name: str) -> str:
    """The canonical spelling of a Python codec (utf_8 -> utf-8); LookupError if unknown."""
    return codecs.lookup(name).name


def encoding_label(name: str) -> str:
    return ENCODINGS.get(name, name)


@dataclass
class Sniffed:
    encoding: str
    encoding_label: str
    language: str
    separator: str
    header: bool
    rows: list[list[str]]  # the first records of the sample, header included


def read_sample(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(SAMPLE_BYTES)


def _refuse_binary(sample: bytes) -> None:
    if not sample:
        raise SourceError("The file is empty.")
    for magic, what in _MAGIC:
        if sample.startswith(magic):
            raise SourceError(f"This file is not a CSV text file: it looks like {what}.")


_UTF16_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def utf16_without_bom(sample: bytes, *, whole_file: bool) -> str | None:
    """UTF-16 without a byte order mark, for both imports. The high bytes of text's code
    units take a few values (00 for ASCII digits, separators and line ends, 04 for
    Cyrillic...); where the zeros are says the byte order, and a binary file's bytes are
    not so regular. `whole_file`: the sample is the whole file (else its end may cut a
    character)."""
    data = sample if whole_file else sample[: len(sample) // 2 * 2]
    if len(data) < 4 or len(data) % 2:
        return None
    even, odd = data[0::2], data[1::2]
    name, high = ("utf-16-le", odd) if odd.count(0) >= even.count(0) else ("utf-16-be", even)
    top_two = sum(count for _, count in Counter(high).most_common(2))
    if not high.count(0) or top_two < 0.9 * len(high):
        return None
    try:
        text = codecs.getincrementaldecoder(name)().decode(data, final=whole_file)
    except UnicodeDecodeError:
        return None
    return name if not _UTF16_CONTROL.search(text) else None


def detect_encoding(sample: bytes) -> tuple[str, str]:
    """(codec, language) of the sample, or SourceError saying the file is not text."""
    _refuse_binary(sample)
    for bom, name in BOMS:
        if sample.startswith(bom):
            return name, ""
    if b"\x00" in sample:
        name = utf16_without_bom(sample, whole_file=len(sample) < SAMPLE_BYTES)
        if name:
            return name, ""
        raise SourceError("This file is not a CSV text file: it contains binary data (NUL bytes).")
    # Cut the sample at its last line end so no multi-byte character is cut in two.
    cut = sample.rfind(b"\n")
    if 0 < cut < len(sample) - 1:
        sample = sample[: cut + 1]
    matches = list(from_bytes(sample))
    if not matches:
        raise SourceError(
            "This file is not a CSV text file: no text encoding decodes it "
            "(is it a spreadsheet, an archive or an image?)."
        )
    best = matches[0]
    clean = [m for m in matches if m.chaos <= best.chaos + 0.05]
    chosen = best
    for preferred in _PREFERRED:
        found = [m for m in clean if codec_name(m.encoding) == preferred]
        if found:
            chosen = found[0]
            break
    name = codec_name(chosen.encoding)
    if name == "ascii":
        name = "utf-8"
    return name, chosen.language if chosen.language != "Unknown" else ""


def guess_encoding_of(data: bytes) -> str:
    """A sentence naming the encoding `data` looks like, for a failure message."""
    try:
        name, language = detect_encoding(data)
    except SourceError:
        return "it does not look like text at all"
    label = encoding_label(name)
    return f"it looks like {label}" + (f" ({language})" if language else "")


def _records(text: str, separator: str, limit: int) -> list[list[str]]:
    rows = []
    try:
        for row in csv_reader(io.StringIO(text, newline=""), separator):
            if not row or all(not cell.strip() for cell in row):
                continue
            rows.append(row)
            if len(rows) >= limit:
                break
    except csv.Error:
        pass
    return rows


def detect_separator(text: str) -> str:
    """The candidate that splits the sample's records into the most consistent columns."""
    best, best_score = ",", None
    for position, sep in enumerate(SEPARATORS):
        rows = _records(text, sep, 60)
        if not rows:
            continue
        widths = Counter(len(r) for r in rows)
        width, count = widths.most_common(1)[0]
        score = (width > 1, round(count / len(rows), 2), width, -position)
        if best_score is None or score > best_score:
            best, best_score = sep, score
    return best


_DATAISH = re.compile(
    r"^\s*(?:[+-]?[\d\s().,/:-]+|[^@\s]+@[^@\s]+|true|false|yes|no)\s*$", re.IGNORECASE
)


def detect_header(rows: list[list[str]], known_names: set[str]) -> bool:
    """Whether the first record names the columns rather than holding a person."""
    if not rows:
        return False
    first = rows[0]
    cells = [c.strip() for c in first]
    if any(normalize_header(c) in known_names for c in cells):
        return True
    if any(not c for c in cells) or len(set(cells)) != len(cells):
        return False
    if any(_DATAISH.match(c) for c in cells):
        return False
    # A header has no data-looking cell where the following rows have them.
    for index in range(len(cells)):
        later = [r[index] for r in rows[1:] if index < len(r) and r[index].strip()]
        if later and sum(bool(_DATAISH.match(v)) for v in later) > len(later) / 2:
            return True
    return len(rows) == 1 or all(len(c) < 40 for c in cells)


def normalize_header(text: str) -> str:
    """'E-mail Address ' -> 'e_mail_address'."""
    return re.sub(r"[^0-9a-z]+", "_", text.strip().lower()).strip("_")


def sniff(path: str, *, known_names: set[str], encoding: str | None = None,
          separator: str | None = None, header: bool | None = None) -> Sniffed:  # fmt: skip
    """Encoding, separator, header and the first records, from the first 64 KB.

    Any of encoding/separator/header given by the user overrides the detection.
    """
    sample = read_sample(path)
    language = ""
    if encoding:
        _refuse_binary(sample)
    else:
        encoding, language = detect_encoding(sample)
    whole_file = len(sample) < SAMPLE_BYTES
    try:
        text = sample.decode(encoding)
    except UnicodeDecodeError as e:
        if whole_file or e.start < len(sample) - 8:
            raise SourceError(
                f"The file is not valid {encoding_label(encoding)} (byte {e.start + 1}); "
                f"{guess_encoding_of(sample)}. Choose that encoding, or save the file as "
                "UTF-8."
            ) from None
        text = sample[: e.start].decode(encoding)  # a character cut by the 64 KB sample
    if not whole_file:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut > 0:
            text = text[: cut + 1]  # the last line may be cut short: leave it out
    text = text.lstrip("\ufeff")
    if len(_CONTROL.findall(text[:4096])) > 8:
        raise SourceError("This file is not a CSV text file: it is full of control characters.")
    separator = separator or detect_separator(text)
    rows = _records(text, separator, PREVIEW_ROWS + 1)
    if not rows:
        raise SourceError("The file holds no rows.")
    if header is None:
        header = detect_header(rows, known_names)
    return Sniffed(
        encoding=encoding,
        encoding_label=encoding_label(encoding),
        language=language,
        separator=separator,
        header=header,
        rows=rows,
    )


class LineSource:
    """Physical lines of a text stream, each at most MAX_LINE_CHARS long.

    A longer line is read through in bounded pieces, dropped, and raised as LineTooLong
    from __next__; the csv.reader fed by this iterator resets its state on its next call,
    so the caller records the error and keeps reading. `line` is the number of the last
    physical line returned; `current` holds the lines of the record being read.
    """

    def __init__(self, stream: io.TextIOBase):
        self._readline = stream.readline
        self.line = 0
        self.current: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        text = self._readline(MAX_LINE_CHARS)
        if not text:
            raise StopIteration
        self.line += 1
        if len(text) >= MAX_LINE_CHARS and text[-1] not in "\r\n":
            length = len(text)
            self.current.append(text[:200] + "…")
            while True:
                more = self._readline(MAX_LINE_CHARS)
                length += len(more)
                if not more or more[-1] in "\r\n":
                    break
            raise LineTooLong(self.line, length)
        self.current.append(text)
        return text

    def raw(self) -> str:
        """The text of the record just read, as it stands in the file."""
        return "".join(self.current).rstrip("\r\n")


@dataclass
class Record:
    line: int  # the physical line the record starts on (1-based, header included)
    cells: list[str] | None
    error: str | None = None


def csv_reader(lines, separator: str):
    """The one CSV dialect of imports. strict: a quote that is never closed, or text after
    a closing quote, is an error for that row rather than a silently merged cell."""
    return csv.reader(lines, delimiter=separator, strict=True)


def _csv_problem(error: csv.Error, start: int, end: int) -> str:
    text = str(error)
    if "unexpected end of data" in text:
        return (
            f'a quote (") opened in this row is never closed, so lines {start:,}-{end:,} '
            "(the end of the file) were read as one cell"
        )
    if "field larger than field limit" in text:
        return (
            f"a cell is longer than {csv.field_size_limit():,} characters (lines "
            f'{start:,}-{end:,}); probably a quote (") that is never closed'
        )
    return f"the row cannot be read as CSV: {text}"


def open_text(path: str, encoding: str) -> io.TextIOWrapper:
    raw = open(path, "rb")  # noqa: SIM115 - closed with the wrapper by the caller
    stream = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
    return stream


def iter_records(stream: io.TextIOBase, source: LineSource, separator: str) -> Iterator[Record]:
    """Every non-blank record with the line it starts on; a record that cannot be parsed
    (over-long line, unbalanced quote running past the field size limit, NUL byte)
    comes back with `error` set instead of cells.

    A decoding error (the file is not in the chosen encoding) raises SourceError: that
    is the file's fault as a whole, not one row's.
    """
    reader = csv_reader(source, separator)
    while True:
        source.current = []
        start = source.line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except LineTooLong as e:
            yield Record(line=e.line, cells=None, error=str(e))
            continue
        except csv.Error as e:
            yield Record(line=start, cells=None, error=_csv_problem(e, start, source.line))
            continue
        except UnicodeDecodeError as e:
            encoding = getattr(stream, "encoding", "")
            raise SourceError(
                f"The file is not valid {encoding_label(codec_name(encoding))} around "
                f"line {source.line + 1}: {guess_encoding_of(e.object[e.start : e.start + 4096])}"
                ". Choose that encoding on the analyze screen, or save the file as UTF-8."
            ) from None
        if not cells or not "".join(cells).strip():
            continue  # a blank line, or a row of empty cells (spreadsheets export those)
        yield Record(line=start, cells=cells)
