"""A channel's Segments and Audiences tabs (Email, SMS, Push, Meta): the channel's segment
list (Herald segments added, CSV uploads, Klaviyo syncs) with its Klaviyo source and sync
jobs, and the channel's audiences (include and exclude segments, counted live), with
their exports to Meta. Each page parses the request and calls channels' selectors and
services (channels.list_services, sync_services, export_services)."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.audit import Actor
from accounts.jobs import FINISHED, MAX_ATTEMPTS
from accounts.models import role_at_least
from accounts.pages import keyset_page
from accounts.permissions import MANAGE_SEGMENTS, MANAGE_SETTINGS, VIEW, role_required
from audiences.import_services import ImportTooLarge, megabytes
from audiences.imports.uploads import limit_uploads
from channels import export_services, list_services, selectors, sync_services
from channels.list_forms import (
    ACTIVE_FILTERS,
    AudienceForm,
    CloneForm,
    EntryForm,
    MetaForm,
    SegmentAddForm,
    SegmentUploadForm,
    SourceForm,
    add_service_errors,
)
from channels.models import AUDIENCE_CHANNELS
from channels.secrets import SecretsUnreadable, unseal
from people.selection import page_key

CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "push": "Push", "meta": "Meta"}
# who of an audience can be reached on the channel (channels.selectors.reachable_condition)
REACHABLE = {
    "email": "have an email address and are not on the email Do Not Contact list",
    "sms": "have a phone number and are not on the SMS Do Not Contact list",
    "push": "have a push token and are not on the push Do Not Contact list",
    "meta": "have an email address or a phone number, on neither Do Not Contact list",
}
# A channel's lists are targeting, built by the people who build segments and campaigns.
MANAGE_LISTS = MANAGE_SEGMENTS
# The Klaviyo key is a workspace credential, like a provider account's secrets: set by the
# members who may change those (channels.views.MANAGE_PROVIDERS).
MANAGE_SOURCE = MANAGE_SETTINGS
PAGE_SIZE = 50
RECENT_SYNCS = 5
RECENT_EXPORTS = 10

SEGMENTS_PAGE = "channels/lists/segment_list.html"
UPLOAD_PAGE = "channels/lists/segment_upload.html"
ENTRY_PAGE = "channels/lists/segment_edit.html"
SOURCE_PAGE = "channels/lists/source.html"
SYNC_PAGE = "channels/lists/sync_detail.html"
AUDIENCES_PAGE = "channels/lists/audience_list.html"
AUDIENCE_FORM_PAGE = "channels/lists/audience_form.html"
AUDIENCE_PAGE = "channels/lists/audience_detail.html"
EXPORT_PAGE = "channels/lists/export_detail.html"


def _check_channel(channel: str) -> None:
    if channel not in AUDIENCE_CHANNELS:
        raise Http404("No such channel.")


def _can(request, minimum) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership) and role_at_least(membership.role, minimum)


def _base(request, channel: str, tab: str) -> dict:
    return {
        "channel": channel,
        "label": CHANNEL_LABELS[channel],
        "tab": tab,
        "channels": [(c, CHANNEL_LABELS[c]) for c in AUDIENCE_CHANNELS],
        "can_edit": _can(request, MANAGE_LISTS),
        "can_manage_source": _can(request, MANAGE_SOURCE),
    }


def _partial(request, target: str) -> bool:
    """An htmx request for one part of the page (a history restore wants the page)."""
    return (
        bool(request.htmx)
        and not request.htmx.history_restore_request
        and (request.htmx.target == target)
    )


def _segments_url(channel: str) -> str:
    return reverse("channel_segments", kwargs={"channel": channel})


def _audiences_url(channel: str) -> str:
    return reverse("channel_audiences", kwargs={"channel": channel})


def _audience_url(audience) -> str:
    return reverse(
        "channel_audience_detail",
        kwargs={"channel": audience.channel, "channel_audience_id": audience.pk},
    )


# --- the Segments tab ------------------------------------------------------------------


def _source_state(workspace, channel: str) -> dict:
    source = selectors.segment_source(workspace=workspace, channel=channel)
    key_set, unreadable = False, False
    if source is not None:
        try:
            key_set = bool(unseal(source.secrets).get("api_key"))
        except SecretsUnreadable:
            unreadable = True
    return {
        "source": source,
        "key_set": key_set,
        "key_unreadable": unreadable,
        "schedule": (source.settings or {}).get("schedule_minutes") if source else None,
        "syncs": list(selectors.channel_syncs(workspace=workspace, channel=channel)[:RECENT_SYNCS]),
    }


def _active_filter(value: str) -> tuple[str, bool | None]:
    return {"active": ("active", True), "inactive": ("inactive", False)}.get(value, ("", None))


def _segments_context(request, channel: str, *, add_form=None) -> dict:
    ws = request.workspace
    q = request.GET.get("q", "").strip()
    active_key, active = _active_filter(request.GET.get("active", ""))
    after = page_key(request.GET.get("after", ""))
    before = page_key(request.GET.get("before", "")) if after is None else None
    entries = selectors.channel_segments(workspace=ws, channel=channel, q=q, active=active)
    page = keyset_page(entries, order=("name", "id"), after=after, before=before, size=PAGE_SIZE)
    context = _base(request, channel, "segments")
    if context["can_edit"] and add_form is None:
        add_form = SegmentAddForm(workspace=ws, channel=channel)
    qs = {k: v for k, v in (("q", q), ("active", active_key)) if v}
    return (
        context
        | _source_state(ws, channel)
        | {
            "entries": page.items,
            "next_after": page.next_key,
            "prev_before": page.prev_key,
            "pager_labels": ("← Previous", "Next →"),
            "qs": urlencode(qs),
            "q": q,
            "active": active_key,
            "active_filters": ACTIVE_FILTERS,
            "filtered": bool(qs),
            "add_form": add_form,
            "page_url": _segments_url(channel),
        }
    )


@require_GET
@role_required(VIEW)
def channel_segments(request, channel):
    """The channel's segment list: search by ID or name (htmx swaps the results as one
    types), filter by the active flag, add a Herald segment, upload a CSV, the Klaviyo
    source and its last syncs."""
    context = _segments_context(request, channel)
    if _partial(request, "segment-results"):
        return render(request, f"{SEGMENTS_PAGE}#results", context)
    return render(request, SEGMENTS_PAGE, context)


@require_POST
@role_required(MANAGE_LISTS)
def channel_segment_add(request, channel):
    ws = request.workspace
    form = SegmentAddForm(request.POST, workspace=ws, channel=channel)
    if form.is_valid():
        segment = form.cleaned_data["segment"]
        try:
            entry = list_services.channel_segment_add(
                workspace=ws, channel=channel, segment=segment, actor=Actor.from_request(request)
            )
        except list_services.ListConflict as e:
            form.add_error("segment", str(e))
        except ValidationError as e:
            add_service_errors(form, e)
        else:
            messages.success(
                request, f"“{entry.name}” is now in the {CHANNEL_LABELS[channel]} list."
            )
            return redirect(_segments_url(channel))
    return render(request, SEGMENTS_PAGE, _segments_context(request, channel, add_form=form))


def _upload_context(request, channel, form) -> dict:
    limit = settings.AUDIENCE_IMPORT_MAX_BYTES
    return _base(request, channel, "segments") | {
        "form": form,
        "max_bytes": limit,
        "max_label": megabytes(limit),
    }


@role_required(MANAGE_LISTS)
@csrf_exempt  # checked by _segment_upload, after the upload limit is in place
@require_http_methods(["GET", "HEAD", "POST"])
def channel_segment_upload(request, channel):
    """A CSV of identifiers as a new static segment of the channel, imported by the
    audience import (its reader, its report and its job page, where this leads)."""
    if request.method == "POST":
        limit_uploads(request, settings.AUDIENCE_IMPORT_MAX_BYTES)
    return _segment_upload(request, channel)


@csrf_protect
def _segment_upload(request, channel):
    ws = request.workspace
    if request.method != "POST":
        return render(request, UPLOAD_PAGE, _upload_context(request, channel, SegmentUploadForm()))
    form = SegmentUploadForm(request.POST, request.FILES)
    over = getattr(request, "upload_over_limit", None)
    if over:
        form.is_valid()
        error = ImportTooLarge(over, settings.AUDIENCE_IMPORT_MAX_BYTES)
        form.add_service_errors(error)
        return render(request, UPLOAD_PAGE, _upload_context(request, channel, form), status=413)
    if form.is_valid():
        data = form.cleaned_data
        try:
            entry, job = list_services.channel_segment_upload(
                workspace=ws, channel=channel, file=data["file"], name=data["name"],
                identifier=data["identifier"], actor=Actor.from_request(request),
                uploaded_by=request.user,
            )  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(
                request,
                f"“{entry.name}” is in the {CHANNEL_LABELS[channel]} list; its people are "
                "added when this import is done.",
            )
            return redirect("audience_import_detail", audience_import_id=job.pk)
    return render(request, UPLOAD_PAGE, _upload_context(request, channel, form))


def _entry(request, channel, entry_id):
    _check_channel(channel)
    return selectors.get_channel_segment_or_404(
        workspace=request.workspace, channel=channel, pk=entry_id
    )


def _entry_context(request, entry, form) -> dict:
    return _base(request, entry.channel, "segments") | {"entry": entry, "form": form}


@require_http_methods(["GET", "HEAD", "POST"])
@role_required(VIEW, write_minimum=MANAGE_LISTS)
def channel_segment_edit(request, channel, entry_id):
    """One entry: what it is, and (for those who may) its name, ID and link."""
    entry = _entry(request, channel, entry_id)
    if request.method != "POST":
        form = EntryForm(
            initial={"name": entry.name, "external_id": entry.external_id, "link": entry.link}
        )
        return render(request, ENTRY_PAGE, _entry_context(request, entry, form))
    form = EntryForm(request.POST)
    if form.is_valid():
        try:
            list_services.channel_segment_update(
                entry=entry, changes=form.changes(), actor=Actor.from_request(request)
            )
        except ValidationError as e:
            form.add_service_errors(e)
            entry.refresh_from_db()
        else:
            messages.success(request, f"“{entry.name}” is saved.")
            return redirect(_segments_url(channel))
    return render(request, ENTRY_PAGE, _entry_context(request, entry, form))


@require_POST
@role_required(MANAGE_LISTS)
def channel_segment_active(request, channel, entry_id):
    """Turn an entry on or off (htmx: the row again). An inactive entry is hidden from the
    audience pickers and left alone by syncs."""
    entry = _entry(request, channel, entry_id)
    wanted = request.POST.get("active")
    if wanted not in ("0", "1"):
        return HttpResponseBadRequest("active is 1 (active) or 0 (inactive).")
    entry = list_services.channel_segment_update(
        entry=entry, changes={"active": wanted == "1"}, actor=Actor.from_request(request)
    )
    if request.htmx:
        context = _base(request, channel, "segments") | {"e": entry}
        return render(request, f"{SEGMENTS_PAGE}#row", context)
    state = "active" if entry.active else "inactive: hidden from the audience pickers"
    messages.success(request, f"“{entry.name}” is {state}.")
    if request.POST.get("back") == "entry":
        return redirect("channel_segment_edit", channel=channel, entry_id=entry.pk)
    return redirect(_segments_url(channel))


@require_POST
@role_required(MANAGE_LISTS)
def channel_segment_delete(request, channel, entry_id):
    entry = _entry(request, channel, entry_id)
    try:
        list_services.channel_segment_delete(entry=entry, actor=Actor.from_request(request))
    except list_services.ListConflict as e:
        messages.error(request, str(e))
        return redirect("channel_segment_edit", channel=channel, entry_id=entry.pk)
    back = " A later sync from Klaviyo may bring it back." if entry.source == "klaviyo" else ""
    messages.success(
        request,
        f"“{entry.name}” is out of the {CHANNEL_LABELS[channel]} list (its Herald segment "
        f"stays).{back}",
    )
    return redirect(_segments_url(channel))


# --- the Klaviyo source and its syncs --------------------------------------------------


def _source_context(request, channel, form=None) -> dict:
    state = _source_state(request.workspace, channel)
    context = _base(request, channel, "segments") | state
    if context["can_manage_source"] and form is None:
        form = SourceForm(initial={"schedule_minutes": state["schedule"]}, key_set=state["key_set"])
    return context | {"form": form}


@require_http_methods(["GET", "HEAD", "POST"])
@role_required(VIEW, write_minimum=MANAGE_SOURCE)
def channel_source(request, channel):
    """The channel's Klaviyo account: the key (write-only: "Set" once stored) and the sync
    schedule; its last syncs."""
    if request.method != "POST":
        return render(request, SOURCE_PAGE, _source_context(request, channel))
    state = _source_state(request.workspace, channel)
    form = SourceForm(request.POST, key_set=state["key_set"])
    if form.is_valid():
        data = form.cleaned_data
        try:
            list_services.segment_source_set(
                workspace=request.workspace, channel=channel, kind="klaviyo",
                settings={"schedule_minutes": data["schedule_minutes"]},
                secrets={"api_key": data["api_key"]} if data["api_key"] else {},
                actor=Actor.from_request(request),
            )  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(
                request,
                f"The {CHANNEL_LABELS[channel]} channel's Klaviyo source is saved. "
                "Press “Sync now” to bring its lists and segments in.",
            )
            return redirect(_segments_url(channel))
    return render(request, SOURCE_PAGE, _source_context(request, channel, form))


@require_POST
@role_required(MANAGE_LISTS)
def channel_sync_start(request, channel):
    """ "Sync now": a sync job, then its page."""
    try:
        job = sync_services.channel_sync_start(
            workspace=request.workspace, channel=channel, actor=Actor.from_request(request)
        )
    except list_services.ListConflict as e:
        messages.error(request, str(e))
        return redirect(_segments_url(channel))
    return redirect("channel_sync_detail", channel=channel, sync_id=job.pk)


@require_GET
@role_required(VIEW)
def channel_sync_detail(request, channel, sync_id):
    """A sync's page; its progress part is polled every 2 seconds until it is done."""
    _check_channel(channel)
    job = selectors.get_channel_sync_or_404(workspace=request.workspace, channel=channel,
                                            pk=sync_id)  # fmt: skip
    context = _base(request, channel, "segments") | {
        "job": job, "finished": job.status in FINISHED, "max_attempts": MAX_ATTEMPTS,
    }  # fmt: skip
    if _partial(request, "job-status"):
        return render(request, f"{SYNC_PAGE}#progress", context)
    return render(request, SYNC_PAGE, context)


# --- the Audiences tab -----------------------------------------------------------------


@require_GET
@role_required(VIEW)
def channel_audiences(request, channel):
    """The channel's audiences: estimate, live counts (each row fetches its own, so the
    page does not wait for the slowest count) and the definition in words."""
    audiences = list(selectors.channel_audiences(workspace=request.workspace, channel=channel))
    for audience in audiences:
        audience.words = selectors.audience_in_words(audience)
    return render(
        request,
        AUDIENCES_PAGE,
        _base(request, channel, "audiences")
        | {"audiences": audiences, "reachable_means": REACHABLE[channel]},
    )


def _audience(request, channel, audience_id):
    _check_channel(channel)
    return selectors.get_channel_audience_or_404(
        workspace=request.workspace, channel=channel, pk=audience_id
    )


def _counts(audience) -> dict:
    counted = selectors.audience_count(audience=audience, now=timezone.now())
    return {"counted": counted, "reachable_means": REACHABLE[audience.channel]}


@require_GET
@role_required(VIEW)
def channel_audience_count(request, channel, channel_audience_id):
    """The live counts of one audience (the list's rows load them)."""
    audience = _audience(request, channel, channel_audience_id)
    context = _base(request, channel, "audiences") | {"a": audience} | _counts(audience)
    return render(request, f"{AUDIENCES_PAGE}#count", context)


def _form_context(request, channel, form, audience=None) -> dict:
    return _base(request, channel, "audiences") | {
        "form": form,
        "audience": audience,
        "include_rows": form.picker_rows("include"),
        "exclude_rows": form.picker_rows("exclude"),
        "any_entries": bool(form.entries),
    }


@require_http_methods(["GET", "HEAD", "POST"])
@role_required(MANAGE_LISTS)
def channel_audience_new(request, channel):
    ws = request.workspace
    form = AudienceForm(request.POST or None, workspace=ws, channel=channel)
    if request.method == "POST" and form.is_valid():
        try:
            audience = list_services.channel_audience_create(
                workspace=ws, channel=channel, data=form.data_for_service(),
                actor=Actor.from_request(request),
            )  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, f"Audience “{audience.name}” created.")
            return redirect(_audience_url(audience))
    return render(request, AUDIENCE_FORM_PAGE, _form_context(request, channel, form))


@require_http_methods(["GET", "HEAD", "POST"])
@role_required(MANAGE_LISTS)
def channel_audience_edit(request, channel, channel_audience_id):
    audience = _audience(request, channel, channel_audience_id)
    ws = request.workspace
    if request.method != "POST":
        form = AudienceForm(workspace=ws, channel=channel, audience=audience)
        return render(request, AUDIENCE_FORM_PAGE, _form_context(request, channel, form, audience))
    form = AudienceForm(request.POST, workspace=ws, channel=channel, audience=audience)
    if form.is_valid():
        try:
            list_services.channel_audience_update(
                audience=audience, data=form.data_for_service(), actor=Actor.from_request(request)
            )
        except ValidationError as e:
            form.add_service_errors(e)
            audience = _audience(request, channel, channel_audience_id)
        else:
            messages.success(request, f"Audience “{form.cleaned_data['name']}” saved.")
            return redirect(_audience_url(audience))
    return render(request, AUDIENCE_FORM_PAGE, _form_context(request, channel, form, audience))


def _detail_context(request, audience, *, clone_form=None, meta_form=None) -> dict:
    context = (
        _base(request, audience.channel, "audiences")
        | _counts(audience)
        | {
            "audience": audience,
            "words": selectors.audience_in_words(audience),
            "include": list(audience.include.all()),
            "exclude": list(audience.exclude.all()),
            "clone_form": clone_form or CloneForm(initial={"name": f"{audience.name} (copy)"}),
        }
    )
    if audience.channel == "meta":
        context |= {
            "meta_form": meta_form
            or MetaForm(initial={"meta_audience_id": audience.meta_audience_id}),
            "meta_connected": selectors.find_provider(
                workspace=request.workspace, channel="meta"
            ) is not None,
            "exports": list(audience.exports.order_by("-created_at")[:RECENT_EXPORTS]),
        }  # fmt: skip
    return context


@require_GET
@role_required(VIEW)
def channel_audience_detail(request, channel, channel_audience_id):
    """One audience: its live counts beside the estimate, its definition in words and its
    segments; clone, edit, delete; on Meta, its custom audience and exports."""
    audience = _audience(request, channel, channel_audience_id)
    return render(request, AUDIENCE_PAGE, _detail_context(request, audience))


@require_POST
@role_required(MANAGE_LISTS)
def channel_audience_clone(request, channel, channel_audience_id):
    """A copy to vary: the same segments and estimate under another name; then its form."""
    audience = _audience(request, channel, channel_audience_id)
    form = CloneForm(request.POST)
    if form.is_valid():
        try:
            copy = list_services.channel_audience_clone(
                audience=audience, name=form.cleaned_data["name"],
                actor=Actor.from_request(request),
            )  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(
                request, f"“{copy.name}” is a copy of “{audience.name}”: change what differs."
            )
            return redirect("channel_audience_edit", channel=channel, channel_audience_id=copy.pk)
    return render(request, AUDIENCE_PAGE, _detail_context(request, audience, clone_form=form))


@require_POST
@role_required(MANAGE_LISTS)
def channel_audience_delete(request, channel, channel_audience_id):
    audience = _audience(request, channel, channel_audience_id)
    name = audience.name
    try:
        list_services.channel_audience_delete(audience=audience, actor=Actor.from_request(request))
    except list_services.ListConflict as e:
        messages.error(request, str(e))
        return redirect(_audience_url(audience))
    messages.success(request, f"Audience “{name}” deleted.")
    return redirect(_audiences_url(channel))


@require_POST
@role_required(MANAGE_LISTS)
def channel_audience_meta(request, channel, channel_audience_id):
    """A Meta audience's custom audience id, saved; with "Export", its people pushed there
    (added to it, or replacing who is in it): the export's job page."""
    audience = _audience(request, channel, channel_audience_id)
    if audience.channel != "meta":
        messages.error(request, "Only audiences of the Meta channel are exported to Meta.")
        return redirect(_audience_url(audience))
    form = MetaForm(request.POST)
    if not form.is_valid():
        return render(request, AUDIENCE_PAGE, _detail_context(request, audience, meta_form=form))
    actor = Actor.from_request(request)
    meta_id = form.cleaned_data["meta_audience_id"].strip()
    if meta_id != audience.meta_audience_id:
        try:
            list_services.channel_audience_set_meta_id(
                audience=audience, meta_audience_id=meta_id, actor=actor
            )
        except ValidationError as e:
            form.add_service_errors(e)
            audience.refresh_from_db()
            return render(
                request, AUDIENCE_PAGE, _detail_context(request, audience, meta_form=form)
            )
    action = form.cleaned_data["action"]
    if action == MetaForm.SAVE:
        messages.success(request, "The Meta custom audience ID is saved.")
        return redirect(_audience_url(audience))
    try:
        job = export_services.meta_export_start(
            audience=audience, actor=actor, replace=action == MetaForm.REPLACE
        )
    except list_services.ListConflict as e:
        messages.error(request, str(e))
        return redirect(_audience_url(audience))
    return redirect("meta_export_detail", export_id=job.pk)


@require_GET
@role_required(VIEW)
def meta_export_detail(request, export_id):
    """An export's page; its progress part is polled every 2 seconds until it is done."""
    job = selectors.get_meta_export_or_404(workspace=request.workspace, pk=export_id)
    context = _base(request, "meta", "audiences") | {
        "job": job, "finished": job.status in FINISHED, "max_attempts": MAX_ATTEMPTS,
    }  # fmt: skip
    if _partial(request, "job-status"):
        return render(request, f"{EXPORT_PAGE}#progress", context)
    return render(request, EXPORT_PAGE, context)
