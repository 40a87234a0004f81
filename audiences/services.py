"""Writes about target audiences. Membership changes are one set-based statement each,
followed by a recount of the audiences they touched."""

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.audit import Actor, audit_record
from audiences.models import AudienceMember, Identifier, MemberSource, TargetAudience
from people.changes import audience_key, gone_key, record_change
from people.models import Person
from people.normalize import InvalidAddress, normalize_email, normalize_phone
from people.sql import insert_for_people


class AudienceExists(ValueError):
    pass


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValueError("An audience needs a name.")
    if len(name) > 200:
        raise ValueError("An audience name has at most 200 characters.")
    return name


def _audit(*, audience, actor, action, **summary) -> None:
    audit_record(
        workspace=audience.workspace_id, actor=actor, action=action, obj=audience, summary=summary
    )


def audience_create(*, workspace, name: str, actor: Actor) -> TargetAudience:
    """audit: "audience.create" """
    name = _clean_name(name)
    if TargetAudience.objects.for_workspace(workspace).filter(name__iexact=name).exists():
        raise AudienceExists(f"An audience named “{name}” already exists.")
    try:
        with transaction.atomic():
            audience = TargetAudience.objects.create(workspace=workspace, name=name)
            _audit(audience=audience, actor=actor, action="audience.create")
            return audience
    except IntegrityError:
        raise AudienceExists(f"An audience named “{name}” already exists.") from None


def audience_get_or_create(*, workspace, name: str, actor: Actor) -> tuple[TargetAudience, bool]:
    """audit: "audience.create", when the audience is new."""
    with transaction.atomic():
        audience, created = get_or_create_unaudited(workspace=workspace, name=name)
        if created:
            _audit(audience=audience, actor=actor, action="audience.create")
    return audience, created


def get_or_create_unaudited(*, workspace, name: str) -> tuple[TargetAudience, bool]:
    """For a service that records the whole action in its own one entry."""
    name = _clean_name(name)
    existing = TargetAudience.objects.for_workspace(workspace).filter(name__iexact=name).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            return TargetAudience.objects.create(workspace=workspace, name=name), True
    except IntegrityError:
        return TargetAudience.objects.for_workspace(workspace).get(name__iexact=name), False


@transaction.atomic
def audience_rename(*, audience: TargetAudience, name: str, actor: Actor) -> TargetAudience:
    """audit: "audience.rename" """
    name = _clean_name(name)
    clash = (
        TargetAudience.objects.for_workspace(audience.workspace)
        .filter(name__iexact=name)
        .exclude(pk=audience.pk)
    )
    if clash.exists():
        raise AudienceExists(f"An audience named “{name}” already exists.")
    audience.name = name
    audience.save(update_fields=["name", "updated_at"])
    _audit(audience=audience, actor=actor, action="audience.rename")
    return audience


@transaction.atomic
def audience_delete(*, audience: TargetAudience, actor: Actor) -> int:
    """Deletes the audience and its memberships; returns how many memberships went.
    audit: "audience.delete" with that count."""
    count = AudienceMember.objects.filter(audience=audience).count()
    record_change(
        workspace=audience.workspace_id, keys=[gone_key(audience_key(audience.name))], everyone=True
    )
    _audit(audience=audience, actor=actor, action="audience.delete", people=count)
    audience.delete()
    return count


def audience_add_people(
    *, audience: TargetAudience, people: QuerySet[Person], actor: Actor,
    source: str = MemberSource.MANUAL, audit: bool = True, source_segment_id: int | None = None,
) -> int:  # fmt: skip
    """Add every person of `people` (any filter, "all N matching" included) in one
    INSERT ... SELECT; returns how many were not members yet. audit: one
    "audience.add_people" entry with the count (not with audit=False: for a service
    recording the whole action itself)."""
    with transaction.atomic():
        record_change(
            workspace=audience.workspace_id, keys=[audience_key(audience.name)], people=people
        )
        changed = insert_for_people(
            table="audiences_audiencemember",
            columns="workspace_id, audience_id, person_id, source, source_segment_id, added_at",
            values="%s, %s, p.id, %s, %s, %s",
            params=[audience.workspace_id, audience.pk, source, source_segment_id, timezone.now()],
            people=people,
            on_conflict="ON CONFLICT (audience_id, person_id) DO NOTHING",
        )
        if changed:
            # ON CONFLICT DO NOTHING counts exactly the new rows: no need to recount.
            TargetAudience.objects.filter(pk=audience.pk).update(
                people_count=F("people_count") + changed, updated_at=timezone.now()
            )
        if audit:
            _audit(audience=audience, actor=actor, action="audience.add_people", people=changed)
    audience.refresh_from_db(fields=["people_count", "updated_at"])
    return changed


def audience_remove_people(
    *, audience: TargetAudience, people: QuerySet[Person], actor: Actor, audit: bool = True
) -> int:
    """audit: one "audience.remove_people" entry with the count (see audience_add_people)."""
    with transaction.atomic():
        record_change(
            workspace=audience.workspace_id, keys=[audience_key(audience.name)], people=people
        )
        removed, _ = AudienceMember.objects.filter(
            audience=audience, person_id__in=people.order_by().values("id")
        ).delete()
        if removed:
            TargetAudience.objects.filter(pk=audience.pk).update(
                people_count=F("people_count") - removed, updated_at=timezone.now()
            )
        if audit:
            _audit(audience=audience, actor=actor, action="audience.remove_people", people=removed)
    audience.refresh_from_db(fields=["people_count", "updated_at"])
    return removed


def resolve_identifiers(*, workspace, identifier: str, values: list[str]):
    """(people queryset, unknown values in the order given) for identifiers of one type,
    normalized as they are stored (emails lower-cased, phones E.164, ids numeric)."""
    keys: dict[str, str | None] = {}
    for raw in values:
        text = str(raw).strip()
        if text in keys:
            continue
        try:
            if identifier == Identifier.EMAIL:
                keys[text] = normalize_email(text)
            elif identifier == Identifier.PHONE:
                keys[text] = normalize_phone(text)
            elif identifier == Identifier.ID:
                keys[text] = str(int(text))
            else:
                keys[text] = text
        except (InvalidAddress, ValueError):
            keys[text] = None
    field = {"id": "pk", "external_id": "external_id", "email": "email", "phone": "phone"}[
        identifier
    ]
    wanted = [k for k in keys.values() if k is not None]
    people = Person.objects.for_workspace(workspace).filter(**{f"{field}__in": wanted})
    found = {str(v) for v in people.values_list(field, flat=True)}
    unknown = [text for text, key in keys.items() if key is None or key not in found]
    return people, unknown


def audiences_forget_person(*, person: Person) -> None:
    """A person about to be erased leaves their audiences' counts (people.erasure), in the
    erasing transaction, before the cascade removes their membership rows."""
    TargetAudience.objects.filter(
        pk__in=AudienceMember.objects.filter(person=person).values("audience_id")
    ).update(people_count=F("people_count") - 1)
