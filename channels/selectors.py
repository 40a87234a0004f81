"""Reads about channels: the workspace's providers and its Sandbox inbox; each channel's
segment list and audiences (counted live, set-based), its segment source and jobs."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404

from channels.models import (
    ChannelAudience,
    ChannelSegment,
    ChannelSync,
    MetaExport,
    Provider,
    SandboxMessage,
    SegmentSource,
)
from people.models import DoNotContact, Person, PushToken
from people.selectors import blocked_condition
from segments.models import SegmentKind, SegmentMember
from segments.rules import compile_rules, parse_rules


def find_provider(*, workspace, channel: str, platform: str = "") -> Provider | None:
    """The workspace's provider account of `channel` (push: of `platform`), or None."""
    return (
        Provider.objects.for_workspace(workspace)
        .filter(channel=channel, platform=platform)
        .select_related("workspace")
        .first()
    )


def provider_by_hook(*, hook_id: str, kind: str) -> Provider | None:
    """The provider account of `kind` a webhook URL names (its unguessable hook id): the
    one read not scoped by a signed-in workspace, since the caller is the provider."""
    return (
        Provider.objects.unscoped()
        .filter(hook_id=hook_id, kind=kind)
        .select_related("workspace")
        .first()
    )


def providers_by_channel(*, workspace) -> dict[tuple[str, str], Provider]:
    """{(channel, platform): provider} of the workspace (one query)."""
    return {(p.channel, p.platform): p for p in Provider.objects.for_workspace(workspace)}


def sandbox_messages(*, workspace, channel: str = "") -> QuerySet[SandboxMessage]:
    messages = SandboxMessage.objects.for_workspace(workspace)
    return messages.filter(channel=channel) if channel else messages


def sandbox_counts(*, workspace) -> dict[str, int]:
    """Messages in the Sandbox inbox per channel (one grouped query)."""
    rows = (
        SandboxMessage.objects.for_workspace(workspace)
        .values("channel")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["channel"]: row["n"] for row in rows}


def get_sandbox_message_or_404(*, workspace, pk) -> SandboxMessage:
    try:
        return SandboxMessage.objects.for_workspace(workspace).get(pk=pk)
    except (SandboxMessage.DoesNotExist, ValueError, TypeError):
        raise Http404("No such message in this workspace's Sandbox inbox.") from None


# --- channel segment lists and channel audiences ---------------------------------------


def channel_segments(
    *, workspace, channel: str, q: str = "", active: bool | None = None
) -> QuerySet[ChannelSegment]:
    """The channel's segment list, by name; `q` searches the ID (external id) and the
    name, `active` filters on the flag."""
    entries = ChannelSegment.objects.for_workspace(workspace).filter(channel=channel)
    if q and q.strip():
        entries = entries.filter(Q(name__icontains=q.strip()) | Q(external_id__icontains=q.strip()))
    if active is not None:
        entries = entries.filter(active=active)
    return entries.select_related("segment").order_by("name", "id")


def get_channel_segment_or_404(*, workspace, channel: str, pk) -> ChannelSegment:
    try:
        return (
            ChannelSegment.objects.for_workspace(workspace)
            .select_related("segment")
            .get(channel=channel, pk=pk)
        )
    except (ChannelSegment.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No such segment in this workspace's {channel} list.") from None


def channel_audiences(*, workspace, channel: str) -> QuerySet[ChannelAudience]:
    return (
        ChannelAudience.objects.for_workspace(workspace)
        .filter(channel=channel)
        .select_related("workspace")
        .prefetch_related("include__segment", "exclude__segment")
        .order_by("name", "id")
    )


def get_channel_audience_or_404(*, workspace, channel: str, pk) -> ChannelAudience:
    try:
        return (
            ChannelAudience.objects.for_workspace(workspace)
            .select_related("workspace")
            .prefetch_related("include__segment", "exclude__segment")
            .get(channel=channel, pk=pk)
        )
    except (ChannelAudience.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No such {channel} audience in this workspace.") from None


def _on_dnc(channel: str, column: str) -> Exists:
    """On the channel's Do Not Contact list, matched on the person's own workspace (an
    outer reference, not a constant: PostgreSQL then plans the count in parallel)."""
    return Exists(
        DoNotContact.objects.filter(
            workspace=OuterRef("workspace_id"), channel=channel, address=OuterRef(column)
        )
    )


def reachable_condition(*, workspace, channel: str) -> Q:
    """People who can be sent to on `channel`: an address (or a push token) and not on Do
    Not Contact there (as people.selectors.blocked_condition decides). Meta: an email
    or a phone, on neither's Do Not Contact list."""
    if channel == "email":
        return ~Q(email="") & ~Q(_on_dnc("email", "email"))
    if channel == "sms":
        return ~Q(phone="") & ~Q(_on_dnc("sms", "phone"))
    if channel == "push":
        tokens = PushToken.objects.filter(workspace=workspace, person=OuterRef("pk"))
        return Q(Exists(tokens)) & ~Q(blocked_condition(workspace=workspace, channel="push"))
    return (
        (~Q(email="") | ~Q(phone="")) & ~Q(_on_dnc("email", "email")) & ~Q(_on_dnc("sms", "phone"))
    )


def segments_condition(segments, *, workspace, now: datetime) -> Q:
    """A condition over people: in any of `segments`. Stored segments (static, real-time,
    query) are read together in one EXISTS over their current memberships, as an expert
    would write it (one semi-join, not one per segment); a snapshot's rules are compiled
    by the segment compiler; Everyone is everybody. (Campaigns target with it too.)"""
    stored = [s.pk for s in segments if s.stores_members]
    condition = Q(pk__in=[])
    if stored:
        members = SegmentMember.objects.filter(
            person=OuterRef("pk"), segment_id__in=stored, exited_at__isnull=True
        )
        condition |= Q(Exists(members))
    for segment in segments:
        if segment.kind == SegmentKind.EVERYONE:
            return Q()
        if segment.kind == SegmentKind.SNAPSHOT:
            condition |= compile_rules(parse_rules(segment.rules or {}), workspace=workspace,
                                       now=now)  # fmt: skip
    return condition


def _entries_condition(entries: list[ChannelSegment], *, workspace, now: datetime) -> Q:
    return segments_condition([e.segment for e in entries], workspace=workspace, now=now)


def audience_people(*, audience: ChannelAudience, now: datetime) -> QuerySet[Person]:
    """The audience's people now (one query): in any include segment, in no exclude.
    Raises RuleError when a snapshot's rules cannot be compiled (a segment they name was
    deleted, a cycle)."""
    include, exclude = list(audience.include.all()), list(audience.exclude.all())
    if not include:
        return Person.objects.none()
    workspace = audience.workspace
    people = Person.objects.for_workspace(workspace).filter(
        _entries_condition(include, workspace=workspace, now=now)
    )
    if exclude:
        people = people.exclude(_entries_condition(exclude, workspace=workspace, now=now))
    return people


@dataclass(frozen=True)
class AudienceCount:
    people: int  # in the audience
    reachable: int  # of them, with an address on the channel and not on Do Not Contact


def audience_count(*, audience: ChannelAudience, now: datetime) -> AudienceCount:
    """Both counts in one query (one pass over the audience's people)."""
    people = audience_people(audience=audience, now=now)
    reachable = reachable_condition(workspace=audience.workspace_id, channel=audience.channel)
    counts = people.aggregate(people=Count("id"), reachable=Count("id", filter=reachable))
    return AudienceCount(people=counts["people"] or 0, reachable=counts["reachable"] or 0)


def audience_in_words(audience: ChannelAudience) -> str:
    """ "People in Newsletter or VIP, and not in Bounced" (the entries' channel names)."""
    include = [entry.name for entry in audience.include.all()]
    exclude = [entry.name for entry in audience.exclude.all()]
    if not include:
        return "Nobody yet: add a segment to include."
    words = "People in " + _either(include, "or")
    if exclude:
        words += ", and not in " + _either(exclude, "or")
    return words + "."


def _either(names: list[str], word: str) -> str:
    quoted = [f"“{n}”" for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"


def segment_source(*, workspace, channel: str) -> SegmentSource | None:
    return SegmentSource.objects.for_workspace(workspace).filter(channel=channel).first()


def channel_syncs(*, workspace, channel: str) -> QuerySet[ChannelSync]:
    return ChannelSync.objects.for_workspace(workspace).filter(channel=channel)


def get_channel_sync_or_404(*, workspace, channel: str, pk) -> ChannelSync:
    try:
        return ChannelSync.objects.for_workspace(workspace).get(channel=channel, pk=pk)
    except (ChannelSync.DoesNotExist, ValueError, TypeError):
        raise Http404("No such sync of this channel.") from None


def get_meta_export_or_404(*, workspace, pk) -> MetaExport:
    try:
        return MetaExport.objects.for_workspace(workspace).select_related("audience").get(pk=pk)
    except (MetaExport.DoesNotExist, ValueError, TypeError):
        raise Http404("No such export in this workspace.") from None
