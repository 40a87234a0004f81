"""Changes to a channel's targeting (shared/API.md "Channel audiences"): its segment list
(Herald segments added, CSV uploads that become static segments, entries synced from
Klaviyo), its audiences of include and exclude segments, and its segment source.

Every write is audited by ids and counts. An audience refers to entries of its own
channel and workspace only; an entry an audience uses cannot be deleted from under it,
nor an audience a campaign uses (the campaign's reference protects it: the refusal
names the campaigns, without channels knowing what a campaign is)."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.dispatch import receiver
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.jobs import job_finished
from accounts.text import has_forbidden_character
from audiences.import_services import audience_import_start
from audiences.models import AudienceImport, AudienceMember, TargetAudience
from channels.models import (
    AUDIENCE_CHANNELS,
    ChannelAudience,
    ChannelSegment,
    EntrySource,
    SegmentSource,
)
from channels.secrets import SecretsUnreadable, seal, unseal
from channels.selectors import audience_people
from people.models import Person
from segments.models import Segment, SegmentKind
from segments.rules.schema import RuleError
from segments.services import SegmentConflict, segment_create, static_members_replace

NAME_MAX = 200


class ListConflict(ValueError):
    """A change the channel's lists forbid (HTTP 409): the message says why."""


def _clean_name(name) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationError({"name": "Give it a name."})
    if len(name) > NAME_MAX or has_forbidden_character(name):
        raise ValidationError({"name": f"A name is one line of at most {NAME_MAX} characters."})
    return name


def _check_channel(channel: str) -> None:
    if channel not in AUDIENCE_CHANNELS:
        raise ValidationError(
            {"channel": f"“{channel}” is not a channel (email, sms, push, meta)."}
        )


# --- the segment list ------------------------------------------------------------------


def channel_segment_add(
    *, workspace, channel: str, segment: Segment, actor: Actor
) -> ChannelSegment:
    """An existing Herald segment into the channel's list (named as the segment is).
    audit: "channel_segment.add"."""
    _check_channel(channel)
    if segment.workspace_id != getattr(workspace, "pk", workspace):
        raise ValidationError({"segment": "No such segment in this workspace."})
    try:
        with transaction.atomic():
            entry = ChannelSegment.objects.create(
                workspace_id=segment.workspace_id, channel=channel, segment=segment,
                name=segment.name, source=EntrySource.HERALD,
            )  # fmt: skip
            _audit(entry, actor, "channel_segment.add", source=EntrySource.HERALD)
    except IntegrityError:
        raise ListConflict(f"“{segment.name}” is already in the {channel} list.") from None
    return entry


def channel_segment_upload(
    *, workspace, channel: str, file, name: str, identifier: str, actor: Actor, uploaded_by=None
) -> tuple[ChannelSegment, AudienceImport]:
    """A CSV of identifiers as a new entry of the channel: a static segment, filled by the
    audience import (its reader, line-numbered report and job page) through a target
    audience of the same name; when the import is done its people become the segment's
    members. A file the import refuses (not text, empty, too large) creates nothing.
    audit: "channel_segment.upload" (and the import's own entries)."""
    _check_channel(channel)
    name = _clean_name(name)
    label = f"{name} ({channel} upload)"[:NAME_MAX]
    if Segment.objects.for_workspace(workspace).filter(name__iexact=label).exists():
        raise ValidationError(
            {"name": f"There is already a segment “{label}”: choose another name."}
        )
    with transaction.atomic():
        job = audience_import_start(
            workspace=workspace, uploaded_by=uploaded_by, file=file, mode="single",
            identifier=identifier, audience_name=label, actor=actor,
        )  # fmt: skip
        try:
            segment = segment_create(workspace=workspace, name=label, kind=SegmentKind.STATIC,
                                     actor=actor)  # fmt: skip
        except SegmentConflict as e:
            raise ValidationError({"name": str(e)}) from None
        entry = ChannelSegment.objects.create(
            workspace=workspace, channel=channel, segment=segment, name=name,
            source=EntrySource.CSV, audience_import=job,
        )  # fmt: skip
        _audit(entry, actor, "channel_segment.upload", source=EntrySource.CSV, job=job.pk)
    return entry, job


@receiver(job_finished, sender=AudienceImport)
def _fill_uploaded_segments(sender, pks, **kwargs) -> None:
    """An import of a channel upload is done (inside its final transaction): the people
    it put in its audience become the members of the entry's static segment."""
    for entry in (
        ChannelSegment.objects.unscoped()
        .filter(audience_import_id__in=pks)
        .select_related("segment", "audience_import")
    ):
        job = entry.audience_import
        if job.dry_run:
            continue
        audience = TargetAudience.objects.for_workspace(entry.workspace_id).filter(
            name__iexact=job.audience_name
        ).first()  # fmt: skip
        members = AudienceMember.objects.filter(audience=audience) if audience else None
        people = (
            Person.objects.filter(pk__in=members.values("person_id"))
            if members is not None
            else Person.objects.none()
        )
        static_members_replace(
            segment=entry.segment, people=people,
            actor=Actor.of_system("channel upload"),
        )  # fmt: skip


def channel_segment_update(*, entry: ChannelSegment, changes: dict, actor: Actor) -> ChannelSegment:
    """Name, ID (external id), link and the active flag, as the marketer knows the entry
    in this channel (the Herald segment keeps its own name). audit:
    "channel_segment.update" (the fields changed)."""
    allowed = {"name", "external_id", "link", "active"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({name: "This cannot be changed here." for name in unknown})
    if "name" in changes:
        entry.name = _clean_name(changes["name"])
    if "external_id" in changes:
        value = str(changes["external_id"] or "").strip()
        if len(value) > 255 or has_forbidden_character(value):
            raise ValidationError({"external_id": "An ID is one line of at most 255 characters."})
        entry.external_id = value
    if "link" in changes:
        link = str(changes["link"] or "").strip()
        if link and not link.startswith(("https://", "http://")):
            raise ValidationError({"link": "A link is a web address (https://…)."})
        if len(link) > 500:
            raise ValidationError({"link": "A link has at most 500 characters."})
        entry.link = link
    if "active" in changes:
        entry.active = bool(changes["active"])
    with transaction.atomic():
        entry.save()
        _audit(entry, actor, "channel_segment.update", fields=sorted(changes))
    return entry


def channel_segment_delete(*, entry: ChannelSegment, actor: Actor) -> None:
    """Out of the channel's list (its Herald segment stays; a later sync may bring a
    synced entry back). Refused while an audience of the channel uses it, naming them.
    audit: "channel_segment.delete"."""
    users = sorted(
        {a.name for a in entry.included_by.all()} | {a.name for a in entry.excluded_by.all()}
    )
    if users:
        raise ListConflict(
            f"“{entry.name}” is used by the audience{'s' if len(users) > 1 else ''} "
            + ", ".join(f"“{n}”" for n in users)
            + ": take it out of them first."
        )
    with transaction.atomic():
        _audit(entry, actor, "channel_segment.delete", source=entry.source)
        entry.delete()


def _audit(entry: ChannelSegment, actor: Actor, action: str, **summary) -> None:
    audit_record(
        workspace=entry.workspace_id, actor=actor, action=action, obj=entry,
        summary={"channel": entry.channel, "segment": entry.segment_id, **summary},
    )  # fmt: skip


# --- audiences -------------------------------------------------------------------------


def _entries(workspace, channel: str, ids, field: str) -> list[ChannelSegment]:
    if not isinstance(ids, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise ValidationError({field: "A list of the channel's segment ids."})
    found = {
        e.pk: e
        for e in ChannelSegment.objects.for_workspace(workspace).filter(channel=channel, pk__in=ids)
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError(
            {field: f"Not in the {channel} segment list: {', '.join(map(str, missing))}."}
        )
    return [found[i] for i in dict.fromkeys(ids)]


def _clean_audience(workspace, channel, data: dict, *, partial: bool, current=None) -> dict:
    cleaned = {}
    if not partial or "name" in data:
        cleaned["name"] = _clean_name(data.get("name"))
    if "estimated_volume" in data:
        volume = data["estimated_volume"]
        if volume is not None and (
            not isinstance(volume, int) or isinstance(volume, bool) or volume < 0
        ):
            raise ValidationError({"estimated_volume": "The estimate is a whole number, or empty."})
        cleaned["estimated_volume"] = volume
    for field in ("include", "exclude"):
        if not partial or field in data:
            cleaned[field] = _entries(workspace, channel, data.get(field) or [], field)
    include = cleaned.get("include", list(current.include.all()) if current else [])
    exclude = cleaned.get("exclude", list(current.exclude.all()) if current else [])
    both = {e.pk for e in include} & {e.pk for e in exclude}
    if both:
        names = ", ".join(f"“{e.name}”" for e in include if e.pk in both)
        raise ValidationError(
            {"exclude": f"{names} is both included and excluded: it would count nobody."}
        )
    return cleaned


def _check_compiles(audience: ChannelAudience) -> None:
    """The audience's definition compiles (a cycle through segments, a segment that
    cannot be read: a form error, never a 500 at count time)."""
    if not audience.include.exists():
        return  # nobody yet: nothing to compile
    try:
        str(audience_people(audience=audience, now=timezone.now()).query)
    except RuleError as e:
        raise ValidationError({"include": f"These segments cannot be combined: {e}"}) from None


def _save_audience(audience: ChannelAudience, cleaned: dict) -> None:
    for field in ("name", "estimated_volume"):
        if field in cleaned:
            setattr(audience, field, cleaned[field])
    try:
        with transaction.atomic():
            audience.save()
    except IntegrityError:
        raise ValidationError(
            {"name": f"There is already a {audience.channel} audience “{audience.name}”."}
        ) from None
    if "include" in cleaned:
        audience.include.set(cleaned["include"])
    if "exclude" in cleaned:
        audience.exclude.set(cleaned["exclude"])


def channel_audience_create(
    *, workspace, channel: str, data: dict, actor: Actor
) -> ChannelAudience:
    """audit: "channel_audience.create" (the counts of include and exclude segments)."""
    _check_channel(channel)
    cleaned = _clean_audience(workspace, channel, data, partial=False)
    with transaction.atomic():
        audience = ChannelAudience(workspace=workspace, channel=channel)
        _save_audience(audience, cleaned)
        _check_compiles(audience)
        _audit_audience(audience, actor, "channel_audience.create")
    return audience


def channel_audience_update(
    *, audience: ChannelAudience, data: dict, actor: Actor
) -> ChannelAudience:
    """audit: "channel_audience.update" (the fields changed)."""
    cleaned = _clean_audience(
        audience.workspace_id, audience.channel, data, partial=True, current=audience
    )
    with transaction.atomic():
        _save_audience(audience, cleaned)
        _check_compiles(audience)
        _audit_audience(audience, actor, "channel_audience.update", fields=sorted(cleaned))
    return audience


def channel_audience_clone(
    *, audience: ChannelAudience, name: str, actor: Actor
) -> ChannelAudience:
    """A copy to vary: the same segments and estimate under another name (the Meta
    custom audience id is not copied: the copy is a different audience there).
    audit: "channel_audience.clone" (the original's id)."""
    data = {
        "name": name, "estimated_volume": audience.estimated_volume,
        "include": [e.pk for e in audience.include.all()],
        "exclude": [e.pk for e in audience.exclude.all()],
    }  # fmt: skip
    cleaned = _clean_audience(audience.workspace_id, audience.channel, data, partial=False)
    with transaction.atomic():
        copy = ChannelAudience(workspace_id=audience.workspace_id, channel=audience.channel)
        _save_audience(copy, cleaned)
        _audit_audience(copy, actor, "channel_audience.clone", original=audience.pk)
    return copy


def channel_audience_delete(*, audience: ChannelAudience, actor: Actor) -> None:
    """Refused while a campaign uses it (its reference protects the row): the refusal
    names them. audit: "channel_audience.delete"."""
    try:
        with transaction.atomic():
            _audit_audience(audience, actor, "channel_audience.delete")
            audience.delete()
    except ProtectedError as e:
        names = sorted({str(obj) for obj in e.protected_objects})
        raise ListConflict(
            f"“{audience.name}” is used by "
            + ", ".join(f"“{n}”" for n in names)
            + ": choose another audience there first."
        ) from None


def channel_audience_set_meta_id(*, audience: ChannelAudience, meta_audience_id: str,
                                 actor: Actor) -> ChannelAudience:  # fmt: skip
    """Which Meta custom audience the audience exports to. audit: "channel_audience.update"."""
    value = str(meta_audience_id or "").strip()
    if value and not value.isdigit():
        raise ValidationError({"meta_audience_id": "A Meta custom audience id is a number."})
    audience.meta_audience_id = value
    with transaction.atomic():
        audience.save(update_fields=["meta_audience_id", "updated_at"])
        _audit_audience(audience, actor, "channel_audience.update", fields=["meta_audience_id"])
    return audience


def _audit_audience(audience: ChannelAudience, actor: Actor, action: str, **summary) -> None:
    audit_record(
        workspace=audience.workspace_id, actor=actor, action=action, obj=audience,
        summary={"channel": audience.channel, "include": audience.include.count(),
                 "exclude": audience.exclude.count(), **summary},
    )  # fmt: skip


# --- the segment source (Klaviyo) ------------------------------------------------------

SCHEDULE_MINUTES_MIN = 15


def segment_source_set(*, workspace, channel: str, kind: str, settings: dict, secrets: dict,
                       actor: Actor) -> SegmentSource:  # fmt: skip
    """The channel's segment source: Klaviyo with its API key (sealed like providers'
    secrets, never shown again; "" keeps the stored key) and a sync schedule in minutes
    (none: "Sync now" only). audit: "segment_source.set" (names, never the key)."""
    _check_channel(channel)
    if kind != "klaviyo":
        raise ValidationError({"kind": "The segment source is “klaviyo”."})
    unknown = set(settings) - {"schedule_minutes", "base_url"}
    if unknown:
        raise ValidationError({n: f"“{n}” is not a setting of a Klaviyo source." for n in unknown})
    schedule = settings.get("schedule_minutes")
    if schedule not in (None, "") and (
        not isinstance(schedule, int) or isinstance(schedule, bool)
        or not SCHEDULE_MINUTES_MIN <= schedule <= 7 * 24 * 60
    ):  # fmt: skip
        raise ValidationError({"schedule_minutes": f"Sync every {SCHEDULE_MINUTES_MIN} minutes "
                               "to 7 days (10080 minutes), or leave it empty."})  # fmt: skip
    unknown = set(secrets) - {"api_key"}
    if unknown:
        raise ValidationError({n: f"“{n}” is not a secret of a Klaviyo source." for n in unknown})
    with transaction.atomic():
        source = (
            SegmentSource.objects.for_workspace(workspace).select_for_update()
            .filter(channel=channel).first()
        )  # fmt: skip
        try:
            kept = unseal(source.secrets) if source else {}
        except SecretsUnreadable:
            kept = {}
        merged = {**kept, **{k: v for k, v in secrets.items() if v}}
        if not merged.get("api_key"):
            raise ValidationError({"api_key": "Give the Klaviyo private API key (read access)."})
        if source is None:
            source = SegmentSource(workspace=workspace, channel=channel, kind=kind)
        clean = {"schedule_minutes": schedule or None}
        if settings.get("base_url"):
            clean["base_url"] = str(settings["base_url"]).rstrip("/")
        source.settings = clean
        source.secrets = seal(merged)
        source.next_sync_at = timezone.now() if schedule else None
        source.save()
        audit_record(
            workspace=workspace, actor=actor, action="segment_source.set", obj=source,
            summary={"channel": channel, "kind": kind, "settings": sorted(clean),
                     "secrets_set": sorted(merged)},
        )  # fmt: skip
    return source
