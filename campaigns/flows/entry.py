"""How people enter a live flow: all at once from an audience source when it is first
published, and from a real-time segment as they enter it, read from SegmentTransition
with the flow's stored cursor (segments.transitions: nothing missed after a restart or
when transactions commit out of order, nothing read twice)."""

from django.db import transaction
from django.utils import timezone

from campaigns.flows import engine
from campaigns.models import Flow, FlowStatus
from people.models import Person
from segments.transitions import Cursor, frontier, read_transitions


def source_people(workspace_id: int, source: dict):
    """The people of an entry's `from` (or POST /flows/{id}/people's body): a segment's
    members (a snapshot's rules evaluated now, frozen as runs), an audience's, people with
    any of the tags, of the companies, or by external id."""
    from audiences.models import AudienceMember
    from channels.selectors import segments_condition
    from segments.models import Segment

    people = Person.objects.for_workspace(workspace_id)
    if "segment" in source:
        segment = Segment.objects.for_workspace(workspace_id).get(pk=source["segment"])
        return people.filter(segments_condition([segment], workspace=segment.workspace,
                                                now=timezone.now()))  # fmt: skip
    if "audience" in source:
        return people.filter(pk__in=AudienceMember.objects.filter(
            audience_id=source["audience"], audience__workspace_id=workspace_id
        ).values("person_id"))  # fmt: skip
    if "tags" in source:
        return people.filter(person_tags__tag__name__in=list(source["tags"])).distinct()
    if "companies" in source:
        return people.filter(company__name__in=list(source["companies"]))
    return people.filter(external_id__in=list(source.get("people") or []))


def start_entry(flow: Flow, *, now) -> None:
    """At the first publish: an audience entry lets its people in; a segment entry its
    current members, and sets the cursor where the stream is now."""
    entry = flow.entry or {}
    if entry.get("type") == "audience":
        engine.enter(flow, source_people(flow.workspace_id, entry["from"]), now=now,
                     source="audience")  # fmt: skip
    elif entry.get("type") == "segment_entry":
        from segments.models import SegmentMember

        current = SegmentMember.objects.filter(segment_id=entry["segment"], exited_at__isnull=True)
        members = Person.objects.for_workspace(flow.workspace_id).filter(
            pk__in=current.values("person_id")
        )
        engine.enter(flow, members, now=now, source="segment")
        # from here on: the transitions of transactions still running now (not seen by the
        # members just read) are read later; every older one is in those members already
        start = Cursor(frontier() - 1, 2**63 - 1)
        Flow.objects.filter(pk=flow.pk).update(entry_cursor=str(start))


def read_entries(*, limit: int = 5_000) -> int:
    """Live segment-entry flows: the people who entered their segment since the cursor
    are let in, the cursor moved on in the same transaction. The runs started."""
    started = 0
    flows = Flow.objects.unscoped().filter(status=FlowStatus.LIVE, entry__type="segment_entry")
    for flow in flows:
        while True:
            cursor = Cursor.parse(flow.entry_cursor)
            rows, after = read_transitions(
                workspace=flow.workspace_id, after=cursor, limit=limit,
                segment_ids=[flow.entry["segment"]],
            )  # fmt: skip
            if not rows:
                break
            entered = list(dict.fromkeys(r.person_id for r in rows if r.kind == "entered"))
            with transaction.atomic():
                locked = Flow.objects.select_for_update().get(pk=flow.pk)
                if locked.entry_cursor != flow.entry_cursor:
                    break  # another reader moved it: it has these rows
                if entered:
                    started += engine.enter(locked, entered, source="segment")
                Flow.objects.filter(pk=flow.pk).update(entry_cursor=str(after))
            flow.entry_cursor = str(after)
            if len(rows) < limit:
                break
    return started
