"""The per-row check of a whole file, spread over helper processes, in file order.

Checking a row (phone numbers above all: `phonenumbers` costs ~25 us a number) is most of
an import's CPU time, so a large file is checked by helper processes while this process
reads: it splits the file into records (only the csv parser knows where a record ends) and
hands batches of raw record text to the helpers, which parse, check and encode them as
COPY text. This process writes the COPY data and the errors in file order, and checks a
batch itself whenever every helper is busy, so no CPU idles.

Helpers are plain subprocesses (`python -m people.imports.helper`) talking pickle frames
over pipes, not multiprocessing: a Celery prefork child may not start a process pool.
Nothing about the outcome depends on them: a small file, or a machine with one CPU, is
checked in this process with the very same code, and the batches of a helper that dies
are checked here again.
"""

import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

from people.imports.rows import STAGE_COLUMNS, MappedColumn, RowChecker, RowError
from people.imports.source import LineSource, csv_reader, iter_records, open_text

BATCH_ROWS = 4000
MAX_HELPERS = 3
IN_FLIGHT = 3  # batches queued at one helper before this process checks one itself
# Below this size a file is checked in-process: starting a helper costs ~0.5 s.
HELPERS_FROM_BYTES = 8 * 1024 * 1024

logger = logging.getLogger(__name__)
_ROOT = Path(__file__).resolve().parent.parent.parent
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_FRAME = struct.Struct("!I")


@dataclass
class Checked:
    """One batch, checked: COPY text of its good rows and its errors (line, reason, raw)."""

    copy_data: bytes
    rows: int
    errors: list
    records: int


def helper_count(file_size: int) -> int:
    if file_size < HELPERS_FROM_BYTES:
        return 0
    return max(0, min(MAX_HELPERS, (os.cpu_count() or 1) - 1))


def copy_line(line: int, values) -> str:
    """One row in COPY's text format: the line number, then the values (str or None),
    tab-separated, \\N for NULL, with backslash escapes where a value needs them."""
    texts = ["\\N" if v is None else v for v in values]
    text = "\t".join(texts)
    # Most rows hold no tab, newline or backslash of their own: then the only backslashes
    # are those of the \\N markers and the only tabs are the separators (one scan each
    # instead of one per value).
    if (
        text.count("\\") != values.count(None)
        or text.count("\t") != len(texts) - 1
        or "\n" in text
        or "\r" in text
    ):
        text = "\t".join("\\N" if v is None else v.translate(_ESCAPES) for v in values)
    return f"{line}\t{text}\n"


class BatchChecker:
    """Checks batches of (line, raw record text, error | None): a record with an error
    could not be read at all (over-long line, broken quoting) and is reported as is."""

    def __init__(self, spec: dict):
        self.checker = RowChecker(
            columns=[MappedColumn.from_dict(c) for c in spec["columns"]],
            width=spec["width"],
            dedupe=spec["dedupe"],
            phone_region=spec.get("phone_region", ""),
            header=spec.get("header", True),
        )
        self.separator = spec["separator"]
        # which of the staged values to output, after the line number
        names = STAGE_COLUMNS[1:]
        self.pick = [names.index(c) for c in spec["output"][1:]]
        self.full = self.pick == list(range(len(names)))

    def check(self, batch: list) -> Checked:
        check = self.checker.check
        raws = [raw for _line, raw, error in batch if error is None]
        parsed = iter(csv_reader(raws, self.separator))
        lines = []
        errors = []
        pick, full = self.pick, self.full
        for line, raw, error in batch:
            if error is not None:  # the record could not be read (over-long line...)
                errors.append((line, error, raw))
                continue
            cells = next(parsed, [])
            try:
                row = check(cells)
            except RowError as e:
                errors.append((line, str(e), raw))
                continue
            lines.append(copy_line(line, row if full else [row[i] for i in pick]))
        return Checked(
            copy_data="".join(lines).encode("utf-8"),
            rows=len(lines),
            errors=errors,
            records=len(batch),
        )


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_FRAME.pack(len(data)) + data)
    while view:  # an unbuffered pipe may take part of it at a time
        written = stream.write(view)
        view = view[written:]
    stream.flush()


def _read_exact(stream, size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(stream):
    (size,) = _FRAME.unpack(_read_exact(stream, _FRAME.size))
    return pickle.loads(_read_exact(stream, size))  # noqa: S301 - from our own helper


class Helper:
    """One helper process and the batches it holds, oldest first."""

    def __init__(self, spec: dict):
        self.alive = True
        self.waiting: deque = deque()  # pending entries whose result this helper owes
        self.process = subprocess.Popen(
            [sys.executable, "-m", "people.imports.helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered, so select() sees every result that has arrived
            cwd=_ROOT,
            env=os.environ.copy(),
        )
        _send(self.process.stdin, spec)

    def send(self, entry: list) -> bool:
        try:
            _send(self.process.stdin, entry[2])
        except (OSError, ValueError):
            self.alive = False
            return False
        self.waiting.append(entry)
        return True

    def ready(self) -> bool:
        """Whether a result can be read without waiting for the helper to work."""
        if not self.waiting:
            return False
        readable, _, _ = select.select([self.process.stdout], [], [], 0)
        return bool(readable)

    def receive(self) -> None:
        """Read the next result into the oldest waiting entry. If the helper died or
        failed, it is not used again and the entry is checked by the caller instead."""
        entry = self.waiting.popleft()
        try:
            result = _receive(self.process.stdout)
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            result = None
        if isinstance(result, Checked):
            entry[1] = result
            return
        if self.alive:
            logger.warning(
                "a row-checking helper process failed (%r, exit code %s); "
                "checking its batches in the importing process",
                result,
                self.process.poll(),
            )
        self.alive = False

    def close(self) -> None:
        try:
            _send(self.process.stdin, None)
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class CheckPool:
    """Batches in, Checked results out in submission order.

    A batch goes to the helper with the fewest unfinished batches, or is checked here when
    every helper already has IN_FLIGHT of them: this process reads the file much faster
    than a helper checks it, so it spends its spare time checking too.
    """

    def __init__(self, spec: dict, helpers: int):
        self.local = BatchChecker(spec)
        self.helpers = [Helper(spec) for _ in range(helpers)]
        # [helper or None, result or None, batch], in batch order
        self.pending: deque = deque()
        self.limit = helpers * IN_FLIGHT + 8

    def _collect(self) -> None:
        for helper in self.helpers:
            while helper.alive and helper.ready():
                helper.receive()

    def submit(self, batch: list) -> Iterator[Checked]:
        self._collect()
        entry = [None, None, batch]
        free = [h for h in self.helpers if h.alive and len(h.waiting) < IN_FLIGHT]
        helper = min(free, key=lambda h: len(h.waiting)) if free else None
        if helper is None or not helper.send(entry):
            entry[1] = self.local.check(batch)
        else:
            entry[0] = helper
        self.pending.append(entry)
        while self.pending and (self.pending[0][1] is not None or len(self.pending) > self.limit):
            yield self._pop()

    def drain(self) -> Iterator[Checked]:
        while self.pending:
            yield self._pop()

    def _pop(self) -> Checked:
        entry = self.pending[0]
        helper = entry[0]
        while entry[1] is None and helper is not None and helper.alive and helper.waiting:
            helper.receive()  # results come back in the order the helper got the batches
        if entry[1] is None:
            entry[1] = self.local.check(entry[2])
        self.pending.popleft()
        return entry[1]

    def close(self, *, failed: bool = False) -> None:
        for helper in self.helpers:
            helper.kill() if failed else helper.close()


def check_file(*, path, options: dict, width: int, output: list[str], helpers: int,
               on_result: Callable[[Checked], None]) -> int:  # fmt: skip
    """Read the file, check every data row, hand each Checked batch to on_result in file
    order. Returns the number of data rows read."""
    spec = {
        "columns": options["mapping"],
        "width": width,
        "dedupe": options["dedupe"],
        "phone_region": options.get("phone_region", ""),
        "header": options.get("header", True),
        "separator": options["separator"],
        "output": output,
    }
    records_read = 0
    try:
        pool = CheckPool(spec, helpers)
    except OSError:
        pool = CheckPool(spec, 0)  # no helper could start: check everything here
    failed = True
    try:
        with open_text(path, options["encoding"]) as stream:
            source = LineSource(stream)
            records = iter_records(stream, source, options["separator"])
            if options.get("header", True):
                next(records, None)  # the header row names the columns
            batch = []
            for record in records:
                batch.append((record.line, source.raw(), record.error))
                if len(batch) >= BATCH_ROWS:
                    records_read += len(batch)
                    for result in pool.submit(batch):
                        on_result(result)
                    batch = []
            if batch:
                records_read += len(batch)
                for result in pool.submit(batch):
                    on_result(result)
            for result in pool.drain():
                on_result(result)
        failed = False
    finally:
        pool.close(failed=failed)
    return records_read


def stage_file(*, path, options: dict, width: int, stage, report, progress,
               helpers: int, every: int = 50_000) -> int:  # fmt: skip
    """check_file() into a staging table and an error report, moving the progress bar
    every `every` rows (between two COPY statements). Returns the data rows read."""
    processed = 0
    next_progress = every

    def on_result(result: Checked) -> None:
        nonlocal processed, next_progress
        stage.write_data(result.copy_data, result.rows)
        for line, reason, raw in result.errors:
            report.add(line, reason, raw)
        processed += result.records
        if processed >= next_progress:
            stage.flush()
            progress(processed)
            next_progress = processed + every

    rows = check_file(
        path=path, options=options, width=width, output=stage.columns, helpers=helpers,
        on_result=on_result,
    )  # fmt: skip
    stage.flush()
    progress(rows)
    return rows


def helper_main() -> None:
    """The helper process: a spec frame, then batches until a None frame."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    spec = _receive(stdin)
    checker = BatchChecker(spec)
    # A reader thread drains stdin at once, so the parent never blocks writing a batch
    # while this process is blocked writing a result (the parent bounds what it sends).
    inbox: Queue = Queue()

    def read():
        while True:
            try:
                item = _receive(stdin)
            except EOFError:
                item = None
            inbox.put(item)
            if item is None:
                return

    threading.Thread(target=read, daemon=True).start()
    while (batch := inbox.get()) is not None:
        try:
            result = checker.check(batch)
        except Exception as e:  # the parent checks this batch itself and meets it there
            result = e
        _send(stdout, result)
