"""Reads about channels: the workspace's providers and its Sandbox inbox."""

from django.db.models import Count, QuerySet
from django.http import Http404

from channels.models import Provider, SandboxMessage


def find_provider(*, workspace, channel: str, platform: str = "") -> Provider | None:
    """The workspace's provider account of `channel` (push: of `platform`), or None."""
    return (
        Provider.objects.for_workspace(workspace)
        .filter(channel=channel, platform=platform)
        .select_related("workspace")
        .first()
    )


def provider_by_hook(*, hook_id: str, kind: str) -> Provider | None:
    """The provider account of `kind` a webhook URL names (its unguessable hook id): the
    one read not scoped by a signed-in workspace, since the caller is the provider."""
    return (
        Provider.objects.unscoped()
        .filter(hook_id=hook_id, kind=kind)
        .select_related("workspace")
        .first()
    )


def providers_by_channel(*, workspace) -> dict[tuple[str, str], Provider]:
    """{(channel, platform): provider} of the workspace (one query)."""
    return {(p.channel, p.platform): p for p in Provider.objects.for_workspace(workspace)}


def sandbox_messages(*, workspace, channel: str = "") -> QuerySet[SandboxMessage]:
    messages = SandboxMessage.objects.for_workspace(workspace)
    return messages.filter(channel=channel) if channel else messages


def sandbox_counts(*, workspace) -> dict[str, int]:
    """Messages in the Sandbox inbox per channel (one grouped query)."""
    rows = (
        SandboxMessage.objects.for_workspace(workspace)
        .values("channel")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["channel"]: row["n"] for row in rows}


def get_sandbox_message_or_404(*, workspace, pk) -> SandboxMessage:
    try:
        return SandboxMessage.objects.for_workspace(workspace).get(pk=pk)
    except (SandboxMessage.DoesNotExist, ValueError, TypeError):
        raise Http404("No such message in this workspace's Sandbox inbox.") from None
