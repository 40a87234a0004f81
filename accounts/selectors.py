"""Reads about users, workspaces, memberships and API keys."""

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import ApiKey, Membership, Role, Workspace, hash_api_key


def workspaces_of(*, user) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def membership_for(*, user, workspace) -> Membership | None:
    if user is None or not user.is_authenticated or workspace is None:
        return None
    return Membership.objects.filter(user=user, workspace=workspace).first()


def default_membership(*, user, preferred_workspace_id=None) -> Membership | None:
    """The membership a signed-in user works in: the one in the session, else the first."""
    memberships = Membership.objects.filter(user=user).select_related("workspace")
    if preferred_workspace_id is not None:
        chosen = memberships.filter(workspace_id=preferred_workspace_id).first()
        if chosen:
            return chosen
    return memberships.order_by("workspace__name").first()


def member_list(*, workspace) -> QuerySet[Membership]:
    return (
        Membership.objects.for_workspace(workspace).select_related("user").order_by("user__email")
    )


def get_membership_or_404(*, workspace, pk) -> Membership:
    try:
        return member_list(workspace=workspace).get(pk=pk)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise Http404("No such member in this workspace.") from None


def owner_count(*, workspace) -> int:
    return Membership.objects.for_workspace(workspace).filter(role=Role.OWNER).count()


def api_key_list(*, workspace) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_workspace(workspace).select_related("created_by")


def get_api_key_or_404(*, workspace, pk) -> ApiKey:
    try:
        return api_key_list(workspace=workspace).get(pk=pk)
    except (ApiKey.DoesNotExist, ValueError, TypeError):
        raise Http404("No such API key in this workspace.") from None


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Touches last_used_at at most each minute."""
    from django.conf import settings

    if not raw_key or not raw_key.startswith(settings.API_KEY_PREFIX):
        return None
    prefix = raw_key[len(settings.API_KEY_PREFIX) :].split("_", 1)[0]
    key = (
        ApiKey.objects.unscoped()
        .select_related("workspace")
        .filter(prefix=prefix, revoked_at__isnull=True, key_hash=hash_api_key(raw_key))
        .first()
    )
    if key is None or not key.matches(raw_key):
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.unscoped().filter(pk=key.pk).update(last_used_at=now)
    return key
