"""Reading SegmentTransition rows in order with a cursor, missing none: what flows (and
any other reader) use to react to people entering and leaving segments.

Ids are given when a row is inserted, and transactions commit in any order: a reader
going by id alone could read row 12 while row 11's transaction is still open, and never
see 11. So a reader goes by (txid, id), the transaction that wrote the row first, and
reads only rows of transactions older than the oldest one still running
(pg_snapshot_xmin of its snapshot): every transaction below that line has committed or
rolled back, so no row can appear there any more. A row written by a transaction still
running waits until it ends; then it is read, after any cursor already given out.
"""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q

from segments.models import SegmentTransition


@dataclass(frozen=True)
class Cursor:
    """Where a reader is: after the row `id` of the transaction `txid` (0, 0: the start)."""

    txid: int = 0
    id: int = 0

    def __str__(self) -> str:
        return f"{self.txid}.{self.id}"

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        txid, _, pk = (text or "").partition(".")
        try:
            return cls(int(txid), int(pk))
        except ValueError:
            return cls()


def frontier() -> int:
    """The oldest transaction still running (as a bigint txid): rows below are final."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return cursor.fetchone()[0]


def read_transitions(
    *, workspace, after: Cursor = Cursor(), limit: int = 1000, segment_ids=None
) -> tuple[list[SegmentTransition], Cursor]:
    """The next `limit` transitions of the workspace after `after` (of `segment_ids`
    only, when given), oldest first, and the cursor to read on from. Call it outside a
    transaction that wrote (its own rows would wait for it, like any other's)."""
    rows = (
        SegmentTransition.objects.for_workspace(workspace)
        .filter(txid__lt=frontier())
        .filter(Q(txid__gt=after.txid) | Q(txid=after.txid, id__gt=after.id))
        .order_by("txid", "id")
    )
    if segment_ids is not None:
        rows = rows.filter(segment_id__in=list(segment_ids))
    page = list(rows[:limit])
    return page, (Cursor(page[-1].txid, page[-1].pk) if page else after)
