"""Reads about people."""

from django.db.models import Q, QuerySet
from django.http import Http404

from people.models import Person


def person_list(*, workspace, q: str | None = None) -> QuerySet[Person]:
    """People of the workspace, newest first; `q` matches name, email, phone or external id."""
    people = (
        Person.objects.for_workspace(workspace).select_related("company").order_by("-id")
    )
    if q and q.strip():
        q = q.strip()
        people = people.filter(
            Q(external_id=q)
            | Q(email__iexact=q)
            | Q(phone=q)
            | Q(first_name__istartswith=q)
            | Q(last_name__istartswith=q)
        )
    return people


def person_count(*, workspace) -> int:
    return Person.objects.for_workspace(workspace).count()


def person_recent(*, workspace, limit: int = 5) -> list[Person]:
    return list(person_list(workspace=workspace)[:limit])


def get_person_or_404(*, workspace, external_id: str) -> Person:
    try:
        return Person.objects.for_workspace(workspace).get(external_id=external_id)
    except Person.DoesNotExist:
        raise Http404(f"No person with external_id {external_id!r}.") from None
