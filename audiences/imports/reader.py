"""Reading an audience file: its encoding and separator, then its rows, streamed.

Built on the contact import's reader (people.imports.source): its encoding detection and
binary refusal, LineSource (one physical line at a time, an over-long line refused rather
than buffered) and the csv module behind it. What is particular to audience files lives
here: the encoding policy, the separator rule, the tolerated punctuation, the header rule
and the identifier checks.

The row loop is the per-row CPU cost of an import, so it is written for speed: one
csv.reader over LineSource, the identifier check chosen once per file, a cache of audience
names (a file names few audiences many times), one COPY row written per line.
"""

import codecs
import csv
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from charset_normalizer import from_bytes

from accounts.jobs import MAX_RAW  # characters of a raw line kept for the error report
from audiences.models import AudienceImport, Identifier
from people.imports.source import (
    BOMS,
    SAMPLE_BYTES,
    LineSource,
    LineTooLong,
    SourceError,
    codec_name,
    detect_encoding,
    encoding_label,
    normalize_header,
    open_text,
    read_sample,
    utf16_without_bom,
)
from people.normalize import InvalidAddress, normalize_email, normalize_phone

NAME_MAX = 200  # TargetAudience.name
EXTERNAL_ID_MAX = 255  # Person.external_id
NAME_CACHE_MAX = 10_000
# Audiences one file may name: the reader keeps each name (at most NAME_MAX characters)
# in memory, so this bounds the worker's memory whatever the file holds.
AUDIENCES_MAX = 50_000
PROGRESS_EVERY = 50_000  # rows between two progress updates (and two COPY statements)

# Unicode with a byte order mark (people.imports.source.BOMS) or UTF-16 without one
# (utf16_without_bom, which cannot be mistaken) is read as it is. Any other encoding is a
# guess, and a wrong guess would create audiences with garbled names, so such a file is
# refused with the encoding it looks like (shared/API.md: UTF-8).

# The 8-bit encodings a refusal may name, most common first (ties go to the first).
_EIGHT_BIT = {
    codec_name(name): rank
    for rank, name in enumerate(
        ["cp1252", "cp1251", "iso8859-1", "cp1250", "koi8-r", "iso8859-15", "iso8859-2",
         "cp1253", "cp1254", "cp1257", "mac-roman", "shift_jis", "gb18030", "big5", "euc-kr"]
    )
}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
SAVE_AS_UTF8 = "Save it as UTF-8 (in Excel: File > Save As > “CSV UTF-8”) and upload it again."

IDENTIFIER_NOUNS = {
    Identifier.ID: "Herald id",
    Identifier.EXTERNAL_ID: "external id",
    Identifier.EMAIL: "email address",
    Identifier.PHONE: "phone number",
}
PLURALS = {
    Identifier.ID: "Herald ids",
    Identifier.EXTERNAL_ID: "external ids",
    Identifier.EMAIL: "email addresses",
    Identifier.PHONE: "phone numbers",
}
_LOOKS_LIKE = {
    Identifier.ID: "a Herald id",
    Identifier.EMAIL: "an email address",
    Identifier.PHONE: "a phone number",
}

# Column names a first line may carry instead of an identifier.
HEADER_NAMES = {
    "id", "ids", "herald_id", "person_id", "people_id", "external_id", "externalid",
    "ext_id", "identifier", "identifiers", "email", "emails", "e_mail", "email_address",
    "mail", "phone", "phones", "phone_number", "mobile", "msisdn", "customer_id",
    "user_id", "contact_id", "client_id", "audience", "audience_name", "name",
}  # fmt: skip
HEADER_WORDS = {
    "id", "email", "mail", "phone", "mobile", "identifier", "msisdn", "number",
    "customer", "user", "contact", "person", "client", "external",
}  # fmt: skip

# Hand-written on the hot path (Django's validate_email costs ~5 us a call, phonenumbers
# ~75 us): each pattern accepts only a strict subset of what the library accepts, in the
# form Herald stores; anything else goes through the library.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,63}"
)
# Already E.164 (as Herald stores phones and as systems export them): taken as it is. An
# impossible number in this shape then matches nobody and is reported as unmatched.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SEPARATOR_NAMES = {";": "“;”", ",": "“,”", "\t": "tab"}
_QUOTED = re.compile(r'"[^"]*"')
_PHONEISH = re.compile(r"(?:\+|00)[\d\s().-]{7,}")


class ImportRefused(ValueError):
    """The file as a whole cannot be imported; the message says why and what to do."""


class RowInvalid(ValueError):
    """Why one row cannot be read (the sentence goes into the error report)."""


@dataclass(frozen=True)
class FileFormat:
    encoding: str  # a Python codec name
    separator: str

    def describe(self) -> str:
        """'' for the usual UTF-8 with `;`, else how the file was read."""
        parts = []
        if not self.encoding.startswith("utf-8"):
            parts.append(f"as {self.encoding.upper().replace('-LE', ' LE').replace('-BE', ' BE')}")
        if self.separator != ";":
            parts.append("with commas" if self.separator == "," else "with tabs")
        return "The file was read " + " ".join(parts) + "." if parts else ""


def _describe_encoding(data: bytes) -> str:
    """'Windows-1251 (Cyrillic)': the 8-bit encoding `data` most looks like, for a refusal.

    charset-normalizer is asked about the encodings people's spreadsheets actually save
    in; left free to choose among all it knows, it calls short Cyrillic text Korean."""
    matches = list(from_bytes(data, cp_isolation=list(_EIGHT_BIT)))
    if not matches:
        return ""
    best = min(m.chaos for m in matches)
    close = [m for m in matches if m.chaos <= best + 0.01]
    close.sort(key=lambda m: (-m.coherence, _EIGHT_BIT.get(codec_name(m.encoding), 99)))
    return encoding_label(codec_name(close[0].encoding))


def _not_unicode(data: bytes, where: str = "") -> ImportRefused:
    label = _describe_encoding(data)
    looks = f": it looks like {label}" if label else ""
    return ImportRefused(f"The file is not UTF-8{where}{looks}. {SAVE_AS_UTF8}")


def _refuse_binary(sample: bytes) -> None:
    """ImportRefused naming what the file is, when it is not text at all (an image, a
    workbook, an archive, NUL bytes)."""
    try:
        detect_encoding(sample)
    except SourceError as e:
        raise ImportRefused(str(e)) from None


def choose_encoding(sample: bytes, *, whole_file: bool) -> str:
    """The codec to read the file with, or ImportRefused saying what the file is."""
    if not sample:
        raise ImportRefused("The file is empty: it needs one identifier per line.")
    for bom, name in BOMS:
        if sample.startswith(bom):
            return name
    if b"\x00" in sample:
        name = utf16_without_bom(sample, whole_file=whole_file)
        if name:
            return name
        _refuse_binary(sample)
        raise ImportRefused("This file is not a CSV text file: it contains NUL bytes.")
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(sample, final=whole_file)
    except UnicodeDecodeError:
        _refuse_binary(sample)
        raise _not_unicode(sample) from None
    controls = _CONTROL.findall(text[:4096])
    if controls:
        _refuse_binary(sample)
        if len(controls) > 8:
            raise ImportRefused(
                "This file is not a CSV text file: it is full of control characters."
            )
    return "utf-8-sig"


def choose_separator(lines: list[str]) -> str:
    """`;` unless the file clearly uses `,` or tab instead (shared/API.md)."""
    lines = [_QUOTED.sub("", line) for line in lines if line.strip()]
    if not lines or any(";" in line for line in lines):
        return ";"
    for candidate in ("\t", ","):
        if sum(candidate in line for line in lines) >= 0.8 * len(lines):
            return candidate
    return ";"


def sniff(path: str) -> FileFormat:
    """Encoding and separator from the first 64 KB, or ImportRefused."""
    sample = read_sample(path)
    whole_file = len(sample) < SAMPLE_BYTES
    encoding = choose_encoding(sample, whole_file=whole_file)
    text = codecs.getincrementaldecoder(encoding)("replace").decode(sample, final=whole_file)
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if not whole_file and len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut short
    return FileFormat(encoding=encoding, separator=choose_separator(lines[:1000]))


def count_lines(path: str, encoding: str, *, chunk_size: int = 1 << 20) -> int:
    """Physical lines of the file (the progress bar's total), decoding all of it first,
    so a file that is not in its encoding further down fails before anything else."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines = 0
    carriage_return = False
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_size)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                line = lines + 1
                if encoding.startswith("utf-8"):
                    line += chunk[: e.start].count(b"\n")
                where = f" (line {line:,})"
                if encoding.startswith("utf-8"):
                    raise _not_unicode(chunk[e.start : e.start + 4096], where) from None
                raise ImportRefused(
                    f"The file is not valid {encoding_label(encoding)}{where}. {SAVE_AS_UTF8}"
                ) from None
            if not chunk:
                break
            if text:
                # \n, \r\n and a lone \r each end a line (as LineSource reads them)
                lines += text.count("\n") + text.count("\r") - text.count("\r\n")
                if carriage_return and text[0] == "\n":
                    lines -= 1
                carriage_return = text[-1] == "\r"
    return lines + 1


def looks_like(value: str) -> str | None:
    """The identifier type a value seems to be, for hints."""
    if "@" in value:
        return Identifier.EMAIL
    if _PHONEISH.fullmatch(value):
        return Identifier.PHONE
    if value.isascii() and value.isdigit():
        return Identifier.ID
    return None


def _short(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _hint(value: str, identifier: str) -> str:
    kind = looks_like(value)
    if kind and kind != identifier:
        return (
            f"; it looks like {_LOOKS_LIKE[kind]}: choose the identifier “{Identifier(kind).label}”"
        )
    return ""


def _key_id(value: str) -> str:
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return value.lstrip("0") or "0"
    raise RowInvalid(
        f"“{_short(value)}” is not a Herald id (a whole number)" + _hint(value, Identifier.ID)
    )


def _key_external_id(value: str) -> str:
    if len(value) > EXTERNAL_ID_MAX:
        raise RowInvalid(
            f"the identifier has {len(value):,} characters; an external id has at most "
            f"{EXTERNAL_ID_MAX}"
        )
    return value


def _key_email(value: str) -> str:
    lowered = value.lower()
    if _PLAIN_EMAIL.fullmatch(lowered):
        return lowered
    try:
        return normalize_email(value)
    except InvalidAddress:
        raise RowInvalid(
            f"“{_short(value)}” is not a valid email address" + _hint(value, Identifier.EMAIL)
        ) from None


def _key_phone(value: str) -> str:
    if _E164.fullmatch(value):
        return value
    try:
        return normalize_phone(value)
    except InvalidAddress as e:
        reason = str(e).rstrip(".")
        raise RowInvalid(reason + _hint(value, Identifier.PHONE)) from None


KEY_FUNCTIONS: dict[str, Callable[[str], str]] = {
    Identifier.ID: _key_id,
    Identifier.EXTERNAL_ID: _key_external_id,
    Identifier.EMAIL: _key_email,
    Identifier.PHONE: _key_phone,
}


def looks_like_header(cell: str) -> bool:
    """A column name rather than a value: 'email', 'External ID', 'Customer number'."""
    if not cell or len(cell) > 40 or any(c.isdigit() or c == "@" for c in cell):
        return False
    name = normalize_header(cell)
    return name in HEADER_NAMES or any(word in HEADER_WORDS for word in name.split("_"))


def clean_name(value: str) -> str:
    """An audience name as audiences.services stores it: inner whitespace collapsed."""
    return " ".join(value.split())


@dataclass
class ReadStats:
    rows: int = 0  # data rows: not blank, not the header
    valid: int = 0
    invalid: int = 0
    header: str = ""  # the raw header line, when the first line was one
    first_reason: str = ""
    looks: Counter = field(default_factory=Counter)  # what invalid identifiers look like
    one_cell: int = 0  # per_row lines with no separator
    two_cells: int = 0  # single lines with an identifier and something else

    def add_invalid(self, reason: str) -> None:
        self.invalid += 1
        if not self.first_reason:
            self.first_reason = reason


def _raw_for_report(raw: str) -> str:
    raw = raw.rstrip("\r\n")
    if len(raw) > MAX_RAW:
        raw = raw[:MAX_RAW] + "…"
    return raw.replace("\x00", "\ufffd")


class RowReader:
    """Reads the rows of one file for one job, writing one staging row per data row:
    (line, key, audience number, raw line, None) when it can be read, and
    (line, '', None, raw line, reason) when it cannot.

    In per_row mode the spellings of audience names are numbered from 1 in the order the
    file first uses them (the merge folds those that differ only in case into one
    audience, named as first spelled). `audiences` lists (spelling, first line) by number.
    In single mode every row has 1."""

    def __init__(self, *, mode: str, identifier: str, known_external_id: Callable[[str], bool]):
        self.per_row = mode == AudienceImport.Mode.PER_ROW
        self.identifier = identifier
        self.to_key = KEY_FUNCTIONS[identifier]
        self.known_external_id = known_external_id
        self.stats = ReadStats()
        self._names: dict[str, str] = {}
        self.audiences: list[tuple[str, int]] = []
        self._numbers: dict[str, int] = {}  # spelling -> number

    def _number(self, name: str, line: int) -> int:
        """The number of this spelling of an audience name; spellings that differ only in
        case are folded into one audience by the merge, as the database compares them."""
        number = self._numbers.get(name)
        if number is None:
            if len(self.audiences) >= AUDIENCES_MAX:
                raise ImportRefused(
                    f"The file names more than {AUDIENCES_MAX:,} different audiences "
                    f"(line {line:,} names one more). Split it into files naming fewer "
                    "audiences, or check that the second column holds audience names."
                )
            self.audiences.append((name, line))
            number = self._numbers[name] = len(self.audiences)
        return number

    # --- one row -----------------------------------------------------------------------

    def _name(self, cell: str) -> str:
        name = self._names.get(cell)
        if name is None:
            name = clean_name(cell)
            if len(self._names) < NAME_CACHE_MAX:
                self._names[cell] = name
        if not name:
            raise RowInvalid("there is no audience name after the identifier")
        if len(name) > NAME_MAX:
            raise RowInvalid(
                f"the audience name has {len(name):,} characters; the longest is {NAME_MAX}"
            )
        return name

    def _separator_hint(self, cell: str) -> str:
        for other, label in ((",", "“,”"), ("\t", "a tab"), (";", "“;”")):
            if other != self.separator and other in cell:
                return f" (this line seems to use {label} instead)"
        return ""

    def _split(self, cells: list[str]) -> tuple[str, str | None]:
        """(identifier, audience name) of a row's cells, tolerating trailing punctuation."""
        separated = len(cells) > 1
        while cells and cells[-1].strip() in ("", "."):
            cells.pop()
        if not cells:
            return "", None
        if self.per_row:
            if len(cells) == 1:
                self.stats.one_cell += 1
                if separated:
                    raise RowInvalid("there is no audience name after the identifier")
                raise RowInvalid(
                    "expected “identifier; audience name” but there is no "
                    f"{_SEPARATOR_NAMES[self.separator]} on the line"
                    + self._separator_hint(cells[0])
                )
            if len(cells) > 2:
                raise RowInvalid(
                    f"expected “identifier; audience name” but the line has {len(cells)} "
                    "values (quote an audience name that holds the separator)"
                )
            identifier, name = cells[0].strip(), cells[1].strip()
            if name.endswith("."):
                name = name[:-1].rstrip()
            if not identifier:
                raise RowInvalid("the line has no identifier before the audience name")
            return identifier, self._name(name)
        if len(cells) > 1:
            self.stats.two_cells += 1
            raise RowInvalid(
                f"expected one identifier on the line but there are {len(cells)} values; "
                "for “identifier; audience name” lines choose “each row names its audience”"
            )
        identifier = cells[0].strip()
        if identifier.endswith("."):
            identifier = identifier[:-1].rstrip()
        return identifier, None

    def _key(self, identifier: str) -> str:
        if "\n" in identifier or "\r" in identifier:
            raise RowInvalid("the identifier runs over several lines (a quote left open?)")
        try:
            return self.to_key(identifier)
        except RowInvalid:
            kind = looks_like(identifier)
            if kind:
                self.stats.looks[kind] += 1
            raise

    def _is_header(self, identifier: str) -> bool:
        if not looks_like_header(identifier):
            return False
        try:
            key = self.to_key(identifier)
        except RowInvalid:
            return True
        # Any text is a valid external id: a column name is one only if nobody has it.
        return self.identifier == Identifier.EXTERNAL_ID and not self.known_external_id(key)

    # --- the file ----------------------------------------------------------------------

    def read(self, path: str, fmt: FileFormat, *, write, flush, progress) -> ReadStats:
        """Stream the file; `write(row)` each staging row, `flush()` then `progress(n)`
        every PROGRESS_EVERY rows."""
        self.format = fmt
        self.separator = fmt.separator
        stats = self.stats
        split, key_of, number_of = self._split, self._key, self._number
        first = True
        with open_text(path, fmt.encoding) as stream:
            source = LineSource(stream)
            reader = csv.reader(source, delimiter=fmt.separator, skipinitialspace=True)
            while True:
                source.current = current = []
                start = source.line + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except (LineTooLong, csv.Error) as e:
                    first = False
                    if isinstance(e, LineTooLong):
                        start, reason = e.line, str(e)
                    else:
                        reason = f"the line cannot be read as CSV: {e}"
                    stats.rows += 1
                    stats.add_invalid(reason)
                    write((start, "", None, _raw_for_report("".join(current)), reason))
                    continue
                except UnicodeDecodeError:  # count_lines() decoded the file already
                    raise ImportRefused(
                        f"The file is not valid {encoding_label(fmt.encoding)} around line "
                        f"{source.line + 1:,}. {SAVE_AS_UTF8}"
                    ) from None
                raw = current[0] if len(current) == 1 else "".join(current)
                try:
                    if first and any(cell.strip() for cell in cells):
                        first = False
                        if self._is_header(cells[0].strip()):
                            stats.header = _raw_for_report(raw)
                            continue
                    identifier, name = split(cells)
                    if not identifier:
                        continue  # a blank line, or one holding only ; or .
                    if "\x00" in raw:
                        raise RowInvalid("the line holds a NUL byte: this is not plain text")
                    key = key_of(identifier)
                except RowInvalid as e:
                    reason = str(e)
                    stats.rows += 1
                    stats.add_invalid(reason)
                    write((start, "", None, _raw_for_report(raw), reason))
                else:
                    stats.rows += 1
                    stats.valid += 1
                    raw = raw.rstrip("\r\n")
                    number = 1 if name is None else number_of(name, start)
                    write((start, key, number, raw if len(raw) <= MAX_RAW else raw[:MAX_RAW], None))
                if stats.rows % PROGRESS_EVERY == 0:
                    flush()
                    progress(stats.rows)
        flush()
        progress(stats.rows)
        return stats

    def refusal(self) -> str:
        """Why a file with no readable row cannot be imported, and what to do."""
        stats = self.stats
        if not stats.rows:
            if stats.header:
                return (
                    f"The file holds only a header line (“{_short(stats.header)}”) and no "
                    "identifiers."
                )
            return "The file holds no identifiers: every line is blank."
        if stats.looks:
            kind, count = stats.looks.most_common(1)[0]
            if kind != self.identifier and count * 2 >= stats.invalid:
                return (
                    f"No line holds a {IDENTIFIER_NOUNS[self.identifier]}: they look like "
                    f"{PLURALS[kind]}. Choose the identifier “{Identifier(kind).label}” and "
                    "import the file again."
                )
        if self.per_row and stats.one_cell * 2 >= stats.invalid:
            return (
                "No line holds “identifier; audience name”. If every line holds only an "
                "identifier, choose “one audience for every person in the file”; otherwise "
                "separate the identifier and the audience name with “;”."
            )
        if not self.per_row and stats.two_cells * 2 >= stats.invalid:
            return (
                "Every line holds more than an identifier. For “identifier; audience name” "
                "lines choose “each row names its audience”."
            )
        return (
            f"No line of the file could be read ({stats.invalid:,} invalid; the first: "
            f"{stats.first_reason}). The error report lists every line and why."
        )
