"""Reads about target audiences and their members."""

from django.db.models import QuerySet
from django.http import Http404

from audiences.models import AudienceImport, TargetAudience
from people.models import Person


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


def audience_members(*, audience: TargetAudience) -> QuerySet[Person]:
    """People in the audience, newest member first."""
    return (
        Person.objects.for_workspace(audience.workspace)
        .filter(audience_memberships__audience=audience)
        .select_related("company")
        .order_by("-id")
    )


def person_audiences(*, person) -> list[TargetAudience]:
    return list(TargetAudience.objects.filter(members__person=person).order_by("name"))


def get_audience_import_or_404(*, workspace, pk) -> AudienceImport:
    try:
        return AudienceImport.objects.for_workspace(workspace).get(pk=pk)
    except (AudienceImport.DoesNotExist, ValueError, TypeError):
        raise Http404("No such audience import in this workspace.") from None
