"""Writes about target audiences. Membership changes are one set-based statement each,
followed by a recount of the audiences they touched."""

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from audiences.models import AudienceMember, Identifier, MemberSource, TargetAudience
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


def audience_create(*, workspace, name: str) -> TargetAudience:
    name = _clean_name(name)
    if TargetAudience.objects.for_workspace(workspace).filter(name__iexact=name).exists():
        raise AudienceExists(f"An audience named “{name}” already exists.")
    try:
        with transaction.atomic():
            return TargetAudience.objects.create(workspace=workspace, name=name)
    except IntegrityError:
        raise AudienceExists(f"An audience named “{name}” already exists.") from None


def audience_get_or_create(*, workspace, name: str) -> tuple[TargetAudience, bool]:
    name = _clean_name(name)
    existing = TargetAudience.objects.for_workspace(workspace).filter(name__iexact=name).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            return TargetAudience.objects.create(workspace=workspace, name=name), True
    except IntegrityError:
        return TargetAudience.objects.for_workspace(workspace).get(name__iexact=name), False


def audience_rename(*, audience: TargetAudience, name: str) -> TargetAudience:
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
    return audience


def audience_delete(*, audience: TargetAudience) -> int:
    """Deletes the audience and its memberships; returns how many memberships went."""
    count = AudienceMember.objects.filter(audience=audience).count()
    audience.delete()
    return count


def audience_add_people(
    *, audience: TargetAudience, people: QuerySet[Person], source: str = MemberSource.MANUAL
) -> int:
    """Add every person of `people` (any filter, "all N matching" included) in one
    INSERT ... SELECT; returns how many were not members yet."""
    with transaction.atomic():
        changed = insert_for_people(
            table="audiences_audiencemember",
            columns="workspace_id, audience_id, person_id, source, added_at",
            values="%s, %s, p.id, %s, %s",
            params=[audience.workspace_id, audience.pk, source, timezone.now()],
            people=people,
            on_conflict="ON CONFLICT (audience_id, person_id) DO NOTHING",
        )
        if changed:
            # ON CONFLICT DO NOTHING counts exactly the new rows: no need to recount.
            TargetAudience.objects.filter(pk=audience.pk).update(
                people_count=F("people_count") + changed, updated_at=timezone.now()
            )
    audience.refresh_from_db(fields=["people_count", "updated_at"])
    return changed


def audience_remove_people(*, audience: TargetAudience, people: QuerySet[Person]) -> int:
    with transaction.atomic():
        removed, _ = AudienceMember.objects.filter(
            audience=audience, person_id__in=people.order_by().values("id")
        ).delete()
        if removed:
            TargetAudience.objects.filter(pk=audience.pk).update(
                people_count=F("people_count") - removed, updated_at=timezone.now()
            )
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
