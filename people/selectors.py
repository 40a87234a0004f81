"""Reads about people."""

from django.db.models import QuerySet

from people.models import Person


def person_list(*, workspace) -> QuerySet[Person]:
    return Person.objects.for_workspace(workspace).order_by("-created_at", "-id")


def person_count(*, workspace) -> int:
    return Person.objects.for_workspace(workspace).count()


def person_recent(*, workspace, limit: int = 5) -> list[Person]:
    return list(person_list(workspace=workspace)[:limit])
