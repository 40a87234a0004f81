"""UI of the shell: dashboard, workspace switching and creation, settings, health."""

import logging
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts import degraded, selectors, services
from accounts.audit import Actor
from accounts.forms import ApiKeyForm, AuditFilterForm, InviteForm, RoleForm, WorkspaceForm
from accounts.glossary import TERMS
from accounts.middleware import SESSION_KEY
from accounts.models import ROLE_DESCRIPTIONS, Role, Workspace, role_at_least
from accounts.pages import keyset_page
from accounts.permissions import MANAGE_SETTINGS, VIEW, role_required
from audiences import selectors as audience_selectors
from people import selectors as people_selectors
from people.selection import page_key
from segments import selectors as segment_selectors
from segments import services as segment_services

log = logging.getLogger(__name__)


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


@require_GET
@role_required(VIEW)
def dashboard(request):
    ws = request.workspace
    people = people_selectors.count_people(people_selectors.person_list(workspace=ws))
    admin = role_at_least(request.membership.role, MANAGE_SETTINGS)
    # (label, value, icon, is an estimate, the page it opens: None when there is none or
    # the member's role may not open it)
    stats = [
        ("People", people.value, "people", not people.exact, "people_list"),
        ("Segments", segment_selectors.segment_list(workspace=ws).count(), "diagram-3", False,
         "segment_list"),
        ("Target audiences", audience_selectors.audience_list(workspace=ws).count(), "collection",
         False, "audience_list"),
        ("Events", people_selectors.event_total(workspace=ws), "activity", False, None),
        ("Tags", people_selectors.tag_count(workspace=ws), "tags", False, "tag_list"),
        ("Do Not Contact", people_selectors.dnc_list(workspace=ws).count(), "slash-circle", False,
         "dnc_list"),
        ("Team", selectors.member_list(workspace=ws).count(), "person-badge", False,
         "settings_members" if admin else None),
        ("Active API keys", selectors.api_key_list(workspace=ws).active().count(), "key", False,
         "settings_api_keys" if admin else None),
    ]  # fmt: skip
    return render(
        request,
        "accounts/dashboard.html",
        {"stats": stats, "recent_people": people_selectors.person_recent(workspace=ws)},
    )


@require_GET
@role_required(VIEW)
def glossary(request):
    return render(request, "accounts/glossary.html", {"terms": TERMS})


@require_POST
@login_required
def workspace_switch(request):
    """Switch to a workspace the user belongs to; any other slug is a 404."""
    slug = request.POST.get("workspace", "")
    workspace = selectors.workspaces_of(user=request.user).filter(slug=slug).first()
    if workspace is None:
        raise Http404("No such workspace.")
    request.session[SESSION_KEY] = workspace.id
    messages.success(request, f"You are now working in {workspace.name}.")
    return redirect("dashboard")


@login_required
def workspace_create(request):
    form = WorkspaceForm(request.POST or None, initial={"time_zone": "UTC"})
    if request.method == "POST" and form.is_valid():
        try:
            workspace = segment_services.workspace_setup(
                name=form.cleaned_data["name"],
                time_zone=form.cleaned_data["time_zone"],
                owner=request.user,
                actor=Actor.from_request(request),
            )
        except ValidationError as e:
            form.add_error(None, e)
        else:
            request.session[SESSION_KEY] = workspace.id
            messages.success(request, f"Workspace {workspace.name} created. You are its owner.")
            return redirect("dashboard")
    return render(request, "accounts/workspace_create.html", {"form": form})


@role_required(MANAGE_SETTINGS)
def settings_workspace(request):
    form = WorkspaceForm(request.POST or None, instance=request.workspace)
    if request.method == "POST" and form.is_valid():
        services.workspace_update(
            workspace=Workspace.objects.get(pk=request.workspace.pk),
            name=form.cleaned_data["name"],
            time_zone=form.cleaned_data["time_zone"],
            sms_opt_out_line=form.cleaned_data["sms_opt_out_line"],
            frequency_caps=form.cleaned_data["frequency_caps"],
            banner_allowed_origins=form.cleaned_data["banner_allowed_origins"],
            quiet_hours=(
                form.cleaned_data["quiet_hours_start"],
                form.cleaned_data["quiet_hours_end"],
            ),  # fmt: skip
            actor=Actor.from_request(request),
        )
        messages.success(request, "Workspace settings saved.")
        return redirect("settings_workspace")
    return render(request, "accounts/settings_workspace.html", {"form": form, "tab": "workspace"})


@role_required(MANAGE_SETTINGS)
def settings_members(request):
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.member_invite(
                workspace=request.workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=request.build_absolute_uri("/"),
                actor=Actor.from_request(request),
            )
        except ValidationError as e:
            form.add_error(None, e)
        else:
            email = result.membership.user.email
            if result.already_member:
                messages.info(request, f"{email} is already on the team; their role is unchanged.")
            else:
                messages.success(request, f"Invited {email}. They will receive an email.")
            return redirect("settings_members")
    return render(
        request,
        "accounts/settings_members.html",
        {
            "form": form,
            "members": _with_pending(selectors.member_list(workspace=request.workspace)),
            "roles": Role.choices,
            "role_descriptions": [(Role(r).label, d) for r, d in ROLE_DESCRIPTIONS.items()],
            "tab": "members",
        },
    )


@require_POST
@role_required(MANAGE_SETTINGS)
def member_role(request, member_id):
    membership = selectors.get_membership_or_404(workspace=request.workspace, pk=member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("settings_members")
    try:
        services.member_change_role(
            membership=membership, role=form.cleaned_data["role"], actor=Actor.from_request(request)
        )
    except ValidationError as e:
        messages.error(request, _error_text(e))
    else:
        messages.success(
            request, f"{membership.user.email} is now {membership.get_role_display()}."
        )
    return redirect("settings_members")


def _with_pending(members):
    members = list(members)
    for membership in members:
        membership.pending = services.invitation_pending(membership)
    return members


@require_POST
@role_required(MANAGE_SETTINGS)
def member_invite_resend(request, member_id):
    membership = selectors.get_membership_or_404(workspace=request.workspace, pk=member_id)
    try:
        services.member_invite_resend(
            membership=membership,
            actor=Actor.from_request(request),
            base_url=request.build_absolute_uri("/"),
        )
    except ValidationError as e:
        messages.info(request, _error_text(e))
    else:
        messages.success(request, f"The invitation to {membership.user.email} was sent again.")
    return redirect("settings_members")


@require_POST
@role_required(MANAGE_SETTINGS)
def member_remove(request, member_id):
    membership = selectors.get_membership_or_404(workspace=request.workspace, pk=member_id)
    try:
        services.member_remove(membership=membership, actor=Actor.from_request(request))
    except ValidationError as e:
        messages.error(request, _error_text(e))
    else:
        messages.success(request, f"{membership.user.email} was removed from the workspace.")
    return redirect("settings_members")


_NEW_KEY = "herald_new_api_key"  # session: the raw key, until the page after the POST shows it


@never_cache
@role_required(MANAGE_SETTINGS)
def settings_api_keys(request):
    """Create a key, then redirect (post/redirect/get): the next page shows the raw key
    once, taken out of the session, so reloading it neither shows it again nor makes a
    second key."""
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key, raw = services.api_key_create(
            workspace=request.workspace,
            name=form.cleaned_data["name"],
            kind=form.cleaned_data["kind"],
            actor=Actor.from_request(request),
        )
        request.session[_NEW_KEY] = {"workspace": request.workspace.pk, "raw": raw}
        messages.success(request, f"API key “{key.name}” created. Copy it now: it is shown once.")
        return redirect("settings_api_keys")
    shown = request.session.pop(_NEW_KEY, None)
    new_key = shown["raw"] if shown and shown.get("workspace") == request.workspace.pk else None
    return render(
        request,
        "accounts/settings_api_keys.html",
        {
            "form": form,
            "new_key": new_key,
            "keys": selectors.api_key_list(workspace=request.workspace),
            "tab": "api_keys",
        },
    )


@require_POST
@role_required(MANAGE_SETTINGS)
def api_key_revoke(request, api_key_id):
    key = selectors.get_api_key_or_404(workspace=request.workspace, pk=api_key_id)
    services.api_key_revoke(api_key=key, actor=Actor.from_request(request))
    messages.success(request, f"API key “{key.name}” revoked. Calls using it now answer 401.")
    return redirect("settings_api_keys")


AUDIT_PAGE_SIZE = 50


@require_GET
@role_required(MANAGE_SETTINGS)
def settings_audit(request):
    """Settings -> Audit log: who changed what, newest first, filtered, keyset-paged;
    times in the workspace's time zone (the middleware makes it current)."""
    ws = request.workspace
    form = AuditFilterForm(
        request.GET or None, choices=selectors.audit_filter_choices(workspace=ws)
    )
    filters = form.cleaned_data if form.is_valid() else {}
    tz = ws.tzinfo

    def day_start(day):
        return datetime.combine(day, time.min, tzinfo=tz) if day else None

    until = filters.get("date_to")
    entries = selectors.audit_entries(
        workspace=ws,
        actor=filters.get("actor") or "",
        action=filters.get("action") or "",
        object_type=filters.get("object_type") or "",
        since=day_start(filters.get("date_from")),
        until=day_start(until + timedelta(days=1)) if until else None,
    )
    page = keyset_page(
        entries,
        order=("-created_at", "-id"),  # entries of one instant never fall between pages
        after=page_key(request.GET.get("after", "")),
        before=page_key(request.GET.get("before", "")),
        size=AUDIT_PAGE_SIZE,
    )
    kept = {k: v for k, v in request.GET.items() if k in form.fields and v}
    return render(
        request,
        "accounts/settings_audit.html",
        {
            "form": form,
            "rows": page.items,
            "qs": urlencode(kept),
            "next_after": page.next_key,
            "prev_before": page.prev_key,
            "tab": "audit",
        },
    )


@never_cache
@require_GET
def healthz(request):
    """200 when the database and the broker answer, else 503 naming the part that failed.

    Public: the answer names parts only ("error"); what went wrong (host names, users,
    versions in the exception) goes to the log.
    """
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure here means "database down"
        log.exception("Health check: the database does not answer.")
        checks["database"] = "error"
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception:  # noqa: BLE001
        log.exception("Health check: the broker does not answer.")
        checks["broker"] = "error"
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "error", "checks": checks}
    if checks["database"] == "ok":
        # what was served without Redis in the last hour (accounts.degraded), and the
        # real-time outbox: how many changes wait and since when
        body["degraded"] = degraded.degradations()
        body["outbox"] = people_selectors.outbox_lag()
    return JsonResponse(body, status=200 if healthy else 503)
