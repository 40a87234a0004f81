"""Reads about contact imports."""

from django.db.models import QuerySet
from django.http import Http404

from people.models import AttributeDefinition, ContactImport


def contact_import_list(*, workspace, limit: int = 20) -> QuerySet[ContactImport]:
    """The workspace's latest imports, newest first."""
    return (
        ContactImport.objects.for_workspace(workspace)
        .select_related("created_by")
        .order_by("-created_at", "-id")[:limit]
    )


def get_contact_import_or_404(*, workspace, import_id: int) -> ContactImport:
    try:
        return ContactImport.objects.for_workspace(workspace).get(pk=import_id)
    except ContactImport.DoesNotExist:
        raise Http404("No such import.") from None


def attribute_types(*, workspace) -> dict[str, str]:
    """key -> type of the workspace's custom attributes."""
    return dict(
        AttributeDefinition.objects.for_workspace(workspace)
        .order_by("key")
        .values_list("key", "type")
    )


def contact_import_result(contact_import: ContactImport) -> dict:
    """What a finished import committed (written with the job in the merge transaction)."""
    return (contact_import.analysis or {}).get("result") or {}
