"""The audit log: who changed what, one entry per action, written by the service that
made the change inside its own transaction (STYLE rule 16).

An entry holds ids, field names and counts, never personal values (no email, name or
attribute value): erasing a person never needs the log edited. The table is append-only
(a trigger refuses UPDATE and DELETE, see migration 0004); its foreign keys have no
database constraint, so deleting a workspace, user or key keeps their entries.
"""

from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class Actor:
    """Who makes a write: a signed-in user (with the client's IP), an API key, or the
    system (a task, beat job or management command, named)."""

    user: object = None
    api_key: object = None
    system: str = ""
    ip: str = ""

    def __post_init__(self):
        if self.user is None and self.api_key is None and not self.system:
            raise ValueError("An actor is a user, an API key or a named system job.")

    @classmethod
    def from_request(cls, request) -> "Actor":
        """The UI's signed-in user or the API's key, with the client address as the
        sign-in lockout (django-axes) sees it, through TRUSTED_PROXY_COUNT proxies."""
        from axes.helpers import get_client_ip_address

        ip = get_client_ip_address(request) or ""
        api_key = getattr(request, "api_key", None)
        if api_key is not None:
            return cls(api_key=api_key, ip=ip)
        return cls(user=request.user, ip=ip)

    @classmethod
    def of_system(cls, name: str) -> "Actor":
        return cls(system=name)

    @property
    def user_id(self):
        return getattr(self.user, "pk", None)

    @property
    def api_key_id(self):
        return getattr(self.api_key, "pk", None)


def audit_record(
    *,
    workspace,
    actor: Actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: int | None = None,
    summary: dict | None = None,
):
    """One entry for one action. Call it inside the action's transaction, so the entry
    exists exactly when the change committed. `summary` holds ids, field names and
    counts only."""
    from accounts.models import AuditEntry

    if not isinstance(actor, Actor):
        raise TypeError(f"actor must be an accounts.audit.Actor, not {type(actor).__name__}")
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = obj.pk if object_id is None else object_id
    return AuditEntry.objects.create(
        workspace_id=getattr(workspace, "pk", workspace),
        action=action,
        actor_user_id=actor.user_id,
        actor_api_key_id=actor.api_key_id,
        actor_system=actor.system[:100],
        ip=actor.ip or None,
        object_type=object_type[:50],
        object_id=object_id,
        summary=summary or {},
    )
