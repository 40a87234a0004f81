"""Writes about tags: create, delete, assign to and remove from sets of people."""

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.audit import Actor, audit_record
from people.changes import gone_key, record_change, tag_key
from people.models import Person, PersonTag, Tag, TagSource
from people.sql import insert_for_people


class TagExists(ValueError):
    pass


def _clean_tag_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValueError("A tag needs a name.")
    if len(name) > 100:
        raise ValueError("A tag name has at most 100 characters.")
    return name


def _audit_tag(*, workspace, actor, action, tag, **summary) -> None:
    audit_record(workspace=workspace, actor=actor, action=action, obj=tag, summary=summary)


def tag_create(*, workspace, name: str, actor: Actor) -> Tag:
    """audit: "tag.create" """
    name = _clean_tag_name(name)
    if Tag.objects.for_workspace(workspace).filter(name__iexact=name).exists():
        raise TagExists(f"The tag “{name}” already exists.")
    try:
        with transaction.atomic():
            tag = Tag.objects.create(workspace=workspace, name=name)
            _audit_tag(workspace=workspace, actor=actor, action="tag.create", tag=tag)
            return tag
    except IntegrityError:
        raise TagExists(f"The tag “{name}” already exists.") from None


def _tag_get_or_create(*, workspace, name: str) -> tuple[Tag, bool]:
    name = _clean_tag_name(name)
    tag = Tag.objects.for_workspace(workspace).filter(name__iexact=name).first()
    if tag:
        return tag, False
    try:
        with transaction.atomic():
            return Tag.objects.create(workspace=workspace, name=name), True
    except IntegrityError:
        return Tag.objects.for_workspace(workspace).get(name__iexact=name), False


def tag_get_or_create(*, workspace, name: str, actor: Actor) -> Tag:
    """audit: "tag.create", when the tag is new."""
    with transaction.atomic():
        tag, created = _tag_get_or_create(workspace=workspace, name=name)
        if created:
            _audit_tag(workspace=workspace, actor=actor, action="tag.create", tag=tag)
    return tag


@transaction.atomic
def tag_delete(*, tag: Tag, actor: Actor) -> int:
    """Removes the tag from everyone and deletes it; returns how many people had it.
    audit: "tag.delete" with that count."""
    count = PersonTag.objects.filter(tag=tag).count()
    record_change(workspace=tag.workspace_id, keys=[gone_key(tag_key(tag.name))], everyone=True)
    _audit_tag(workspace=tag.workspace_id, actor=actor, action="tag.delete", tag=tag, people=count)
    tag.delete()
    return count


def _tags_assign(*, workspace, tag: Tag, people: QuerySet[Person], source: str) -> int:
    record_change(workspace=workspace, keys=[tag_key(tag.name)], people=people)
    return insert_for_people(
        table="people_persontag",
        columns="workspace_id, person_id, tag_id, source, created_at",
        values="%s, p.id, %s, %s, %s",
        params=[workspace.pk, tag.pk, source, timezone.now()],
        people=people,
        on_conflict="ON CONFLICT (person_id, tag_id) DO NOTHING",
    )


@transaction.atomic
def tags_assign(
    *, workspace, tag: Tag, people: QuerySet[Person], actor: Actor, source: str = TagSource.MANUAL
) -> int:
    """Give `tag` to every person of `people` in one INSERT ... SELECT; returns how many
    people newly got it. `people` may be a filter over millions ("all N matching").
    audit: one "tag.assign" entry with the count."""
    changed = _tags_assign(workspace=workspace, tag=tag, people=people, source=source)
    _audit_tag(workspace=workspace, actor=actor, action="tag.assign", tag=tag, people=changed)
    return changed


@transaction.atomic
def tag_assign_by_name(
    *, workspace, name: str, people: QuerySet[Person], actor: Actor,
    source: str = TagSource.MANUAL,
) -> tuple[Tag, int]:  # fmt: skip
    """The tag named `name` (created when new) given to `people`: (tag, newly tagged).
    One action, one "tag.assign" entry (saying whether the tag was created)."""
    tag, created = _tag_get_or_create(workspace=workspace, name=name)
    changed = _tags_assign(workspace=workspace, tag=tag, people=people, source=source)
    _audit_tag(workspace=workspace, actor=actor, action="tag.assign", tag=tag, people=changed,
               tag_created=created)  # fmt: skip
    return tag, changed


@transaction.atomic
def tags_unassign(*, workspace, tag: Tag, people: QuerySet[Person], actor: Actor) -> int:
    """audit: one "tag.unassign" entry with the count."""
    record_change(workspace=workspace, keys=[tag_key(tag.name)], people=people)
    deleted, _ = (
        PersonTag.objects.for_workspace(workspace)
        .filter(tag=tag, person_id__in=people.order_by().values("id"))
        .delete()
    )
    _audit_tag(workspace=workspace, actor=actor, action="tag.unassign", tag=tag, people=deleted)
    return deleted


def tag_people_by_external_ids(
    *, workspace, name: str, external_ids: list[str], actor: Actor, remove=False,
    source: str = TagSource.API,
) -> tuple[int, list[str]]:  # fmt: skip
    """API helper: (changed, unknown external ids). One "tag.assign" or "tag.unassign"
    entry (none when removing a tag that does not exist)."""
    wanted = list(dict.fromkeys(e for e in external_ids if isinstance(e, str)))
    people = Person.objects.for_workspace(workspace).filter(external_id__in=wanted)
    known = set(people.values_list("external_id", flat=True))
    unknown = [e for e in wanted if e not in known]
    if remove:
        tag = Tag.objects.for_workspace(workspace).filter(name__iexact=name.strip()).first()
        changed = (
            tags_unassign(workspace=workspace, tag=tag, people=people, actor=actor) if tag else 0
        )
    else:
        _tag, changed = tag_assign_by_name(
            workspace=workspace, name=name, people=people, actor=actor, source=source
        )
    return changed, unknown
