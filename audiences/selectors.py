"""Reads about target audiences and their members."""

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.http import Http404

from audiences.models import AudienceImport, AudienceMember, TargetAudience
from people.models import Person
from people.selectors import person_search


def audience_list(*, workspace, q: str | None = None) -> QuerySet[TargetAudience]:
    audiences = TargetAudience.objects.for_workspace(workspace)
    if q and q.strip():
        audiences = audiences.filter(name__icontains=q.strip())
    return audiences.order_by("name")


def get_audience_or_404(*, workspace, pk) -> TargetAudience:
    try:
        return TargetAudience.objects.for_workspace(workspace).get(pk=pk)
    except (TargetAudience.DoesNotExist, ValueError, TypeError):
        raise Http404("No such audience in this workspace.") from None


def get_audience_by_name(*, workspace, name: str) -> TargetAudience | None:
    return TargetAudience.objects.for_workspace(workspace).filter(name__iexact=name.strip()).first()


def audience_members(
    *,
    audience: TargetAudience,
    q: str | None = None,
    after: int | None = None,
    before: int | None = None,
) -> QuerySet[Person]:
    """People in the audience, newest Herald id first, each with its membership's
    `member_added_at` and `member_source`.

    `q` matches like the People page's search (exact external id, email or phone, or the
    start of a name). `after` / `before` keep only ids below / above that id (keyset
    pages; for the page before, order the result by "id" and reverse it).

    The membership table is joined once: the bounds and the annotations name the join of
    one filter() call (a later .filter() on `audience_memberships__...` would join it
    again). The bounds are put on both sides of the join: PostgreSQL does not carry a
    `<` across `person.id = member.person_id`, and without the member's own bound a deep
    page of a 500,000-member audience read the membership index from its top (~70 ms
    instead of ~1 ms at 1,000,000 people).
    """
    membership = Q(audience_memberships__audience=audience)
    if after is not None:
        membership &= Q(id__lt=after, audience_memberships__person_id__lt=after)
    if before is not None:
        membership &= Q(id__gt=before, audience_memberships__person_id__gt=before)
    people = (
        Person.objects.for_workspace(audience.workspace_id)
        .filter(membership)
        .annotate(
            member_added_at=F("audience_memberships__added_at"),
            member_source=F("audience_memberships__source"),
            member_source_segment_id=F("audience_memberships__source_segment_id"),
            # = id, on the membership's side: ordering and paging on it walk the
            # membership key (audience, person) from the cursor on (the API's pages)
            member_person_id=F("audience_memberships__person_id"),
        )
        .select_related("company")
        .order_by("-id")
    )
    if q and q.strip():
        people = person_search(people, q)
    return people


def people_in_audience(
    people: QuerySet[Person], *, workspace, name: str
) -> QuerySet[Person] | None:
    """`people` narrowed to the members of the audience `name` (any case), or None when
    the workspace has no such audience. One EXISTS on the membership key."""
    audience_id = (
        TargetAudience.objects.for_workspace(workspace)
        .filter(name__iexact=name)
        .values_list("id", flat=True)
        .first()
    )
    if audience_id is None:
        return None
    member = AudienceMember.objects.filter(audience_id=audience_id, person_id=OuterRef("pk"))
    return people.filter(Exists(member))


def person_audiences(*, person) -> list[TargetAudience]:
    return list(TargetAudience.objects.filter(members__person=person).order_by("name"))


def get_audience_import_or_404(*, workspace, pk) -> AudienceImport:
    try:
        return AudienceImport.objects.for_workspace(workspace).get(pk=pk)
    except (AudienceImport.DoesNotExist, ValueError, TypeError):
        raise Http404("No such audience import in this workspace.") from None
