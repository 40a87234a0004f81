"""Reads about users, workspaces, memberships and API keys."""

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from accounts.models import ApiKey, AuditEntry, Membership, Role, Workspace, api_key_hashes


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


_WORKSPACE_FIELDS = list(Workspace._meta.concrete_fields)
# The key and its workspace in one raw query by the unique prefix: every API call starts
# here, and the ORM's compiling of a select_related query cost more than the query.
_API_KEY_SQL = (
    "SELECT k.*, "  # noqa: S608 - column names from the model; values are parameters
    + ", ".join(f'w."{f.column}" AS "ws__{f.attname}"' for f in _WORKSPACE_FIELDS)
    + " FROM accounts_apikey k JOIN accounts_workspace w ON w.id = k.workspace_id"
    " WHERE k.prefix = %s AND k.revoked_at IS NULL AND k.key_hash = ANY(%s) LIMIT 1"
)


def _workspace_of(key: ApiKey) -> Workspace:
    """The Workspace from the ws__ columns of _API_KEY_SQL, as the ORM would load it."""
    values = []
    for f in _WORKSPACE_FIELDS:
        value = getattr(key, f"ws__{f.attname}")
        if hasattr(f, "from_db_value"):
            value = f.from_db_value(value, None, connection)
        values.append(value)
    return Workspace.from_db(key._state.db, [f.attname for f in _WORKSPACE_FIELDS], values)


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Touches last_used_at at most each minute.

    The key is looked up under every hash key of settings.API_KEY_HASH_KEYS; one found
    under an older hash key is re-hashed with the current one, so after a rotation the old
    hash key can be dropped once the keys still in use have been used.
    """
    if not raw_key or not raw_key.startswith(settings.API_KEY_PREFIX):
        return None
    prefix = raw_key[len(settings.API_KEY_PREFIX) :].split("_", 1)[0]
    hashes = api_key_hashes(raw_key)
    key = next(iter(ApiKey.objects.raw(_API_KEY_SQL, [prefix, hashes])), None)
    if key is None or not key.matches(raw_key):
        return None
    key.workspace = _workspace_of(key)
    changes = {}
    if key.key_hash != hashes[0]:
        changes["key_hash"] = key.key_hash = hashes[0]
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        changes["last_used_at"] = key.last_used_at = now
    if changes:
        ApiKey.objects.unscoped().filter(pk=key.pk).update(**changes)
    return key


def login_failure_limit(request, credentials=None) -> int:
    """AXES_FAILURE_LIMIT: gives each of AXES_LOCKOUT_PARAMETERS its own limit.

    Axes locks a sign-in when its failure count (the largest count over the lockout
    parameters) reaches one limit. The answer here is a limit that count reaches exactly
    when some parameter reached its own: LOGIN_FAILURE_LIMIT_PER_ADDRESS for one account
    from one address, LOGIN_FAILURE_LIMIT_PER_ACCOUNT for one account from anywhere.
    """
    from axes.handlers.proxy import AxesProxyHandler
    from axes.helpers import get_lockout_parameters

    per_address = settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
    own_limits = {
        ("ip_address", "username"): per_address,
        ("username",): settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT,
    }
    handler = AxesProxyHandler.get_implementation()
    if not hasattr(handler, "get_user_attempts"):  # not the database handler
        return per_address
    parameters = get_lockout_parameters(request, credentials)
    attempts = handler.get_user_attempts(request, credentials)
    counts, reached = [], []
    for parameter, queryset in zip(parameters, attempts, strict=True):
        names = tuple(sorted([parameter] if isinstance(parameter, str) else parameter))
        limit = own_limits.get(names, per_address)
        count = queryset.aggregate(n=Sum("failures_since_start"))["n"] or 0
        counts.append(count)
        if count >= limit:
            reached.append(limit)
    # Locked: a limit the largest count has reached. Not locked: one above every count.
    return min(reached, default=max(counts, default=0) + 1)


def audit_entries(
    *,
    workspace,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    since=None,
    until=None,
) -> QuerySet[AuditEntry]:
    """The workspace's audit entries, newest first, narrowed by the filters: `actor` is
    "user:<id>", "key:<id>" or "system"; `since` / `until` are aware datetimes (until
    excluded). Rides the (workspace, created_at desc, id desc) index."""
    entries = AuditEntry.objects.for_workspace(workspace).select_related(
        "actor_user", "actor_api_key"
    )
    kind, _, pk = actor.partition(":")
    if kind == "user" and pk.isdigit():
        entries = entries.filter(actor_user_id=int(pk))
    elif kind == "key" and pk.isdigit():
        entries = entries.filter(actor_api_key_id=int(pk))
    elif kind == "system":
        entries = entries.filter(actor_user__isnull=True, actor_api_key__isnull=True)
    if action:
        entries = entries.filter(action=action)
    if object_type:
        entries = entries.filter(object_type=object_type)
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        entries = entries.filter(created_at__lt=until)
    return entries.order_by("-created_at", "-id")


def audit_filter_choices(*, workspace) -> dict:
    """What the Audit log's filters offer: the actors (members, API keys, the system),
    the actions and the object types this workspace's log holds."""
    entries = AuditEntry.objects.for_workspace(workspace)
    actors = [("", "Anyone"), ("system", "System (tasks, commands)")]
    actors += [(f"user:{m.user_id}", str(m.user)) for m in member_list(workspace=workspace)]
    actors += [(f"key:{k.pk}", f"API key {k}") for k in api_key_list(workspace=workspace)]
    return {
        "actors": actors,
        "actions": list(entries.order_by().values_list("action", flat=True).distinct()),
        "object_types": [
            t for t in entries.order_by().values_list("object_type", flat=True).distinct() if t
        ],
    }
