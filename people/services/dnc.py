"""Writes about Do Not Contact: one address, or a file imported set-based."""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql as psycopg_sql

from accounts.audit import Actor, audit_record
from accounts.jobs import UploadEmpty, UploadTooLarge, store_upload
from people.imports import staging
from people.imports.checking import copy_line
from people.imports.source import (
    LineSource,
    LineTooLong,
    SourceError,
    detect_separator,
    open_text,
    read_sample,
)
from people.models import ContactChannel, DncSource, DoNotContact
from people.normalize import InvalidAddress, normalize_address


def dnc_add(
    *,
    workspace,
    channel: str,
    address: str,
    reason: str = "",
    actor: Actor,
    source: str = DncSource.MANUAL,
):
    """One address onto Do Not Contact (dnc_import is the set-based way for a file, with
    the same normalization): (entry, created). Idempotent; raises InvalidAddress.
    audit: "dnc.add" (the entry's id and channel, never the address), when added."""
    if channel not in ContactChannel.values:
        raise InvalidAddress(f"“{channel}” is not a channel (email, sms or push).")
    normalized = normalize_address(channel, address)
    with transaction.atomic():
        entry, created = DoNotContact.objects.get_or_create(
            workspace=workspace,
            channel=channel,
            address=normalized,
            defaults={"reason": (reason or "")[:255], "source": source, "created_by": actor.user},
        )
        if created:
            audit_record(
                workspace=workspace,
                actor=actor,
                action="dnc.add",
                obj=entry,
                summary={"channel": channel, "source": source},
            )
    return entry, created


def dnc_add_many(
    *, workspace, channel: str, addresses, reason: str = "", source: str, actor: Actor
) -> int:
    """Addresses onto Do Not Contact in one INSERT ... ON CONFLICT DO NOTHING (a webhook's
    batch of bounces): the number added. Addresses that do not normalize are skipped (a
    provider's report is not the place to refuse a batch). audit: one "dnc.add_many"
    (channel, source, count), when any was added."""
    if channel not in ContactChannel.values:
        raise InvalidAddress(f"“{channel}” is not a channel (email, sms or push).")
    normalized = set()
    for address in addresses:
        try:
            normalized.add(normalize_address(channel, address))
        except InvalidAddress:
            continue
    if not normalized:
        return 0
    workspace_id = getattr(workspace, "pk", workspace)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO people_donotcontact
                (workspace_id, channel, address, reason, source, created_by_id, created_at)
            SELECT %s, %s, a, %s, %s, %s, now() FROM unnest(%s::text[]) AS a
            ON CONFLICT (workspace_id, channel, address) DO NOTHING
            """,
            [workspace_id, channel, (reason or "")[:255], source, actor.user_id,
             sorted(normalized)],
        )  # fmt: skip
        added = cursor.rowcount
        if added:
            audit_record(
                workspace=workspace,
                actor=actor,
                action="dnc.add_many",
                object_type="do not contact",
                summary={"channel": channel, "source": source, "added": added},
            )
    return added


@transaction.atomic
def dnc_remove(*, entry: DoNotContact, actor: Actor) -> None:
    """audit: "dnc.remove" """
    audit_record(
        workspace=entry.workspace_id,
        actor=actor,
        action="dnc.remove",
        obj=entry,
        summary={"channel": entry.channel},
    )
    entry.delete()


# Addresses COPYed into the staging table at a time: the most the import holds in memory.
DNC_IMPORT_BATCH = 5000
DNC_INVALID_LISTED = 500  # invalid lines kept for the report; the others are counted
_DNC_HEADERS = {"address", "email", "phone", "token"}
_DNC_STAGE = "dnc_import_stage"
NOT_UTF8 = "The file is not UTF-8 text. Save it as CSV UTF-8 and try again."


@dataclass
class DncImportResult:
    added: int = 0
    already: int = 0
    # The first DNC_INVALID_LISTED invalid lines (line, raw, reason); invalid_count is all.
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    invalid_count: int = 0

    def refuse(self, line: int, raw: str, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < DNC_INVALID_LISTED:
            self.invalid.append((line, raw[:200], reason))


def dnc_import(
    *,
    workspace,
    channel: str,
    stream,
    actor: Actor,
    reason: str = "",
    source: str = DncSource.IMPORT,
    separator: str = ",",
) -> DncImportResult:
    """Import addresses from a text stream: one per line, or the first column of a file
    separated by `separator` (dnc_import_file detects it, as the contact import does).
    Each physical line is read on its own: an address never spans lines, so a stray quote
    cannot swallow the lines after it.

    Streamed with bounded memory (the contact import's reader: one physical line of at
    most MAX_LINE_CHARS at a time): valid addresses are COPYed DNC_IMPORT_BATCH at a time
    into a TEMP table, then added with one INSERT ... SELECT ... ON CONFLICT DO NOTHING.
    A line that cannot be imported (bad address, over-long line or cell, broken quoting)
    is reported with its number and reason, and the rest goes on. All or nothing: one
    transaction; a file that is not UTF-8 raises SourceError and adds nothing.
    audit: one "dnc.import" entry with the counts."""
    if channel not in ContactChannel.values:
        raise InvalidAddress(f"“{channel}” is not a channel (email, sms or push).")
    result = DncImportResult()
    lines = LineSource(stream)
    with transaction.atomic(), connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # psycopg's own cursor, for COPY
        stage = staging.Stage(cursor, _DNC_STAGE, ["line", "key"])
        stage.create()
        batch: list[str] = []
        for line, raw, error in _address_lines(lines, separator):
            if error:
                result.refuse(line, raw, error)
                continue
            if not raw or (line == 1 and raw.lower() in _DNC_HEADERS):
                continue
            try:
                address = normalize_address(channel, raw)
            except InvalidAddress as e:
                result.refuse(line, raw, str(e))
                continue
            batch.append(copy_line(line, [address]))
            if len(batch) >= DNC_IMPORT_BATCH:
                _dnc_stage_batch(stage, batch)
                batch = []
        _dnc_stage_batch(stage, batch)
        table = psycopg_sql.Identifier(_DNC_STAGE)
        # In address order: concurrent imports of the same addresses wait for each other
        # rather than deadlock.
        cursor.execute(
            psycopg_sql.SQL(
                "INSERT INTO people_donotcontact "
                "(workspace_id, channel, address, reason, source, created_by_id, created_at) "
                "SELECT %s, %s, s.key, %s, %s, %s, %s "
                "FROM (SELECT DISTINCT key FROM {} ) s ORDER BY s.key "
                "ON CONFLICT (workspace_id, channel, address) DO NOTHING"
            ).format(table),
            [
                workspace.pk,
                channel,
                (reason or "")[:255],
                source,
                actor.user_id,
                timezone.now(),
            ],
        )
        result.added = cursor.rowcount
        cursor.execute(psycopg_sql.SQL("SELECT count(DISTINCT key) FROM {}").format(table))
        result.already = cursor.fetchone()[0] - result.added
        stage.drop()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="dnc.import",
            object_type="donotcontact",
            summary={
                "channel": channel,
                "added": result.added,
                "already": result.already,
                "invalid": result.invalid_count,
            },
        )
    return result


def _dnc_stage_batch(stage, batch: list[str]) -> None:
    """One COPY per batch: the rows leave Python memory here."""
    if batch:
        stage.write_data("".join(batch).encode(), len(batch))
        stage.flush()


def _address_lines(lines: LineSource, separator: str):
    """(line number, the address cell, error) for each physical line: the first cell,
    with the quotes a spreadsheet puts around it taken off."""
    while True:
        try:
            text = next(lines)
        except StopIteration:
            return
        except LineTooLong as e:
            yield e.line, lines.raw(), str(e)
            continue
        except UnicodeDecodeError:
            raise SourceError(NOT_UTF8) from None
        lines.current = []
        cell = text.rstrip("\r\n").split(separator, 1)[0].strip()
        if len(cell) >= 2 and cell[0] == cell[-1] == '"':
            cell = cell[1:-1].replace('""', '"').strip()
        elif cell.startswith('"'):
            yield lines.line, text.rstrip("\r\n"), "a quote opens the address and never closes"
            continue
        yield lines.line, cell, None


def dnc_import_too_large(size: int | None) -> ValidationError:
    """The error for an upload over the limit, which is the contact import's
    (CONTACT_IMPORT_MAX_BYTES): both take lists of addresses of the same size."""
    limit = settings.CONTACT_IMPORT_MAX_BYTES
    megabytes = f"{limit / (1024 * 1024):,.1f} MB"
    if size:
        return ValidationError(
            f"The file is {size / (1024 * 1024):,.1f} MB; a Do Not Contact import takes files "
            f"up to {megabytes}. Split it into smaller files."
        )
    return ValidationError(
        f"The file is over {megabytes}, the largest a Do Not Contact import takes. "
        "Split it into smaller files."
    )


def dnc_import_file(*, workspace, channel: str, file, **kwargs) -> DncImportResult:
    """Import an uploaded file (see dnc_import). The upload is first put on disk, streamed,
    refused past CONTACT_IMPORT_MAX_BYTES; ValidationError for an empty file, one over the
    limit, or one that is not UTF-8 text (nothing is added then)."""
    with tempfile.TemporaryDirectory(prefix="herald-dnc-") as folder:
        path = Path(folder) / "upload.csv"
        try:
            store_upload(file, path, limit=settings.CONTACT_IMPORT_MAX_BYTES)
        except UploadEmpty:
            raise ValidationError("The file is empty.") from None
        except UploadTooLarge as e:
            raise dnc_import_too_large(e.size) from None
        separator = detect_separator(read_sample(str(path)).decode("utf-8-sig", "replace"))
        with open_text(str(path), "utf-8-sig") as stream:
            try:
                return dnc_import(
                    workspace=workspace,
                    channel=channel,
                    stream=stream,
                    separator=separator,
                    **kwargs,
                )
            except SourceError:
                raise ValidationError(NOT_UTF8) from None
