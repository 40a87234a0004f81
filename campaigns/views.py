"""The campaign pages: the list (filters, counts, a new draft), the editor (the message of
its channel with a preview for a chosen person, the targeting with a live estimate, a test
send, the schedule), the campaign's page (lifecycle, progress polled while it sends,
counts by status and skip reason, sends over time, the definition) and its per-recipient
log with a formula-safe CSV. Each view parses the request and calls the campaign
selectors and services; the services audit every change."""

import csv
from datetime import datetime

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.csp import CSP
from django.utils.http import urlencode
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import Actor
from accounts.csv_safe import Echo
from accounts.csv_safe import escape_cell as csv_safe
from accounts.models import role_at_least
from accounts.pages import keyset_page
from accounts.permissions import MANAGE_CAMPAIGNS, VIEW, role_required
from campaigns import selectors, services, variants
from campaigns.dispatch.freeze import NoRecipients, recipients
from campaigns.forms import (
    CONTENT_SPECS,
    TARGET_EVERYONE,
    WHEN_LATER,
    ContentForm,
    NewCampaignForm,
    ScheduleForm,
    TargetingForm,
    TestSendForm,
    VariantsForm,
    even_split,
)
from campaigns.models import (
    EDITABLE,
    FINISHED,
    Campaign,
    CampaignChannel,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    SkipReason,
)
from campaigns.templating import preview as render_preview
from campaigns.templating import sms_preview
from channels import selectors as channel_selectors
from people import selectors as people_selectors
from people.selection import page_key
from segments.rules import RuleError
from segments.selectors import segment_list

PAGE_SIZE = 50
LOG_PAGE_SIZE = 50
PICKER_LIMIT = 500  # segments a targeting picker offers (search narrows them in the page)
SAMPLE_PEOPLE = 20  # people offered by the preview's person picker
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "push": "Push", "banner": "Banner"}
CHANNEL_ICONS = {"email": "envelope", "sms": "chat-text", "push": "bell", "banner": "window"}
STATUS_CLASSES = {
    "draft": "text-bg-secondary",
    "scheduled": "text-bg-info",
    "sending": "text-bg-primary",
    "sent": "text-bg-success",
    "paused": "text-bg-warning",
    "cancelled": "text-bg-dark",
    "expired": "text-bg-light border",
    "failed": "text-bg-danger",
    "live": "text-bg-success",
    "ended": "text-bg-dark",
}
DELIVERY_CLASSES = {
    "queued": "text-bg-light border",
    "sending": "text-bg-primary",
    "sent": "text-bg-success",
    "delivered": "text-bg-success",
    "failed": "text-bg-danger",
    "bounced": "text-bg-danger",
    "skipped": "text-bg-secondary",
    "unknown": "text-bg-warning",
}
# the skip reasons an estimate counts (the others happen at send time or in the next issue)
ESTIMATED_SKIPS = ("dnc", "no_address", "duplicate_address")

EDITOR = "campaigns/campaign_edit.html"
DETAIL = "campaigns/campaign_detail.html"
LOG = "campaigns/campaign_log.html"
LIST = "campaigns/campaign_list.html"

# The email's HTML as the recipient's mail client would get it, for the editor's sandboxed
# iframe: its own inline styles and remote images may load; nothing may run, submit or
# navigate (the page's own policy refuses inline styles, so the HTML has a URL of its own).
PREVIEW_HTML_CSP = {
    "default-src": [CSP.NONE],
    "style-src": [CSP.UNSAFE_INLINE, "https:"],
    "img-src": ["https:", "http:", "data:"],
    "font-src": ["https:", "data:"],
    "frame-ancestors": [CSP.SELF],
    "form-action": [CSP.NONE],
    "sandbox": True,
}


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _can_edit(request) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership) and role_at_least(membership.role, MANAGE_CAMPAIGNS)


def _campaign(request, campaign_id) -> Campaign:
    campaign = (
        selectors.campaigns_for(request.workspace)
        .select_related("audience", "people_segment", "test_segment", "workspace")
        .filter(pk=campaign_id)
        .first()
    )
    if campaign is None:
        raise Http404("No such campaign in this workspace.")
    return campaign


def _errors_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        parts = []
        for key, texts in error.message_dict.items():
            for text in texts:
                field = key.removeprefix("content.")
                parts.append(text if key in ("include", "__all__") else f"{field}: {text}")
        return "; ".join(parts)
    return "; ".join(error.messages)


def _base(campaign: Campaign) -> dict:
    return {
        "campaign": campaign,
        "channel_label": CHANNEL_LABELS.get(campaign.channel, campaign.channel),
        "channel_icon": CHANNEL_ICONS.get(campaign.channel, "send"),
        "status_class": STATUS_CLASSES.get(campaign.status, "text-bg-secondary"),
        "editable": campaign.status in EDITABLE,
        "finished": campaign.status in FINISHED,
    }


# --- The list ----------------------------------------------------------------------------


def _status_counts(workspace, channel: str) -> dict[str, int]:
    """How many campaigns are in each status (one GROUP BY), for the filter."""
    rows = (
        selectors.campaigns_for(workspace, channel=channel)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
    )
    return {row["status"]: row["n"] for row in rows}


def _row_stats(workspace, campaigns: list[Campaign]) -> dict[int, dict]:
    """Recipients and sent per campaign of the page, in one GROUP BY over the ledger."""
    if not campaigns:
        return {}
    sent = Q(status__in=(DeliveryStatus.SENT, DeliveryStatus.DELIVERED))
    rows = (
        Delivery.objects.for_workspace(workspace)
        .filter(campaign_id__in=[c.pk for c in campaigns], is_test=False)
        .order_by()
        .values("campaign_id")
        .annotate(
            recipients=Count("id", filter=~Q(status=DeliveryStatus.SKIPPED)),
            sent=Count("id", filter=sent),
        )  # fmt: skip
    )
    return {row["campaign_id"]: row for row in rows}


@role_required(VIEW, write_minimum=MANAGE_CAMPAIGNS)
def campaign_list(request):
    """The campaigns, newest first, filtered by status and channel; a new draft."""
    ws = request.workspace
    form = NewCampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(
                workspace=ws, name=form.cleaned_data["name"],
                channel=form.cleaned_data["channel"], content={},
                actor=Actor.from_request(request),
            )  # fmt: skip
        except ValidationError as e:
            for key, texts in e.message_dict.items():
                for text in texts:
                    form.add_error(key if key in form.fields else None, text)
        else:
            messages.success(request, f"Campaign “{campaign.name}” created: write its message.")
            return redirect("campaign_edit", campaign_id=campaign.pk)
    status = request.GET.get("status", "")
    status = status if status in CampaignStatus.values else ""
    channel = request.GET.get("channel", "")
    channel = channel if channel in CampaignChannel.values else ""
    campaigns = selectors.campaigns_for(ws, status=status, channel=channel).select_related(
        "audience"
    )
    after = page_key(request.GET.get("after", ""))
    before = page_key(request.GET.get("before", "")) if after is None else None
    page = keyset_page(campaigns, order=("-id",), after=after, before=before, size=PAGE_SIZE)
    stats = _row_stats(ws, page.items)
    for c in page.items:
        c.row = stats.get(c.pk, {"recipients": 0, "sent": 0})
        c.status_class = STATUS_CLASSES.get(c.status, "")
        c.channel_label = CHANNEL_LABELS.get(c.channel, c.channel)
        c.channel_icon = CHANNEL_ICONS.get(c.channel, "send")
    counts = _status_counts(ws, channel)
    qs = {k: v for k, v in (("status", status), ("channel", channel)) if v}
    return render(
        request,
        LIST,
        {
            "campaigns": page.items,
            "next_after": page.next_key,
            "prev_before": page.prev_key,
            "qs": urlencode(qs),
            "status": status,
            "channel": channel,
            "statuses": [(v, label, counts.get(v, 0)) for v, label in CampaignStatus.choices],
            "total": sum(counts.values()),
            "channels": [(v, CHANNEL_LABELS[v]) for v in ("email", "sms", "push")],
            "form": form,
            "can_edit": _can_edit(request),
            "show_form": request.method == "POST" or request.GET.get("new") == "1",
        },
    )


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def campaign_delete(request, campaign_id):
    campaign = _campaign(request, campaign_id)
    try:
        services.campaign_delete(campaign=campaign, actor=Actor.from_request(request))
    except services.CampaignConflict as e:
        messages.error(request, str(e))
        return redirect("campaign_detail", campaign_id=campaign.pk)
    messages.success(request, f"Campaign “{campaign.name}” deleted.")
    return redirect("campaign_list")


# --- The editor --------------------------------------------------------------------------


def _targeting_form(campaign, data=None) -> TargetingForm:
    ws = campaign.workspace
    audiences = channel_selectors.channel_audiences(workspace=ws, channel=campaign.channel)
    segments = segment_list(workspace=ws)
    if campaign.people_segment_id:  # the ad-hoc recipients are shown apart
        segments = segments.exclude(pk=campaign.people_segment_id)
    args = () if data is None else (data,)
    return TargetingForm(*args, campaign=campaign, audiences=audiences, segments=segments,
                         limit=PICKER_LIMIT)  # fmt: skip


def _test_form(campaign, data=None) -> TestSendForm:
    segments = selectors.test_segments(campaign.workspace)
    if data is not None:
        return TestSendForm(data, segments=segments)
    return TestSendForm(segments=segments, initial_segment=campaign.test_segment_id)


def _targeting_context(campaign, form: TargetingForm) -> dict:
    return {
        "targeting_form": form,
        "include_rows": form.picker_rows("include"),
        "exclude_rows": form.picker_rows("exclude"),
        "definition": selectors.campaign_definition(campaign),
        "people_count": _people_count(campaign),
    }


def _people_count(campaign) -> int | None:
    segment = campaign.people_segment
    return segment.people_count if segment is not None else None


def _provider(campaign):
    """The channel's provider account (push: one of its platforms'), or None."""
    accounts = channel_selectors.providers_by_channel(workspace=campaign.workspace)
    return next((p for (channel, _), p in sorted(accounts.items()) if channel == campaign.channel),
                None)  # fmt: skip


def _editor_context(request, campaign, *, content_form=None, targeting_form=None,
                    test_form=None, schedule_form=None, test_result=None) -> dict:  # fmt: skip
    return (
        _base(campaign)
        | _targeting_context(campaign, targeting_form or _targeting_form(campaign))
        | {
            "content_form": content_form or ContentForm(campaign=campaign),
            "variants_form": VariantsForm(campaign=campaign),
            "test_form": test_form or _test_form(campaign),
            "schedule_form": schedule_form or ScheduleForm(campaign=campaign),
            "test_result": test_result,
            "provider": _provider(campaign),
            "time_zone": request.workspace.time_zone,
            "now": timezone.now(),
        }
    )


@require_GET
@role_required(MANAGE_CAMPAIGNS)
def campaign_edit(request, campaign_id):
    """One page per campaign: message, preview, audience, test send and schedule."""
    campaign = _campaign(request, campaign_id)
    return render(request, EDITOR, _editor_context(request, campaign))


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def campaign_content(request, campaign_id):
    """Save the name and the message (htmx: the message card again, and the preview told
    to reload); a refusal is shown at its field and Liquid line."""
    campaign = _campaign(request, campaign_id)
    form = ContentForm(request.POST, campaign=campaign)
    saved = False
    if form.is_valid():
        try:
            campaign = services.campaign_update(
                campaign=campaign, actor=Actor.from_request(request),
                name=form.cleaned_data["name"], content=form.to_content(),
            )  # fmt: skip
        except services.CampaignConflict as e:
            form.add_error(None, str(e))
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            saved = True
    if request.htmx:
        campaign = _campaign(request, campaign_id)
        if saved:
            form = ContentForm(campaign=campaign)
        context = _base(campaign) | {"content_form": form, "saved": saved, "now": timezone.now()}
        response = render(request, f"{EDITOR}#content", context)
        if saved:
            response["HX-Trigger"] = "campaign-saved"
        return response
    if saved:
        messages.success(request, "The message is saved.")
        return redirect("campaign_edit", campaign_id=campaign.pk)
    campaign = _campaign(request, campaign_id)
    return render(request, EDITOR, _editor_context(request, campaign, content_form=form))


def _variants_changed(campaign, action: str, form: VariantsForm | None) -> dict:
    """campaign_update's changes for an action of the A/B card: "start" (A and B, B a copy
    of the message's fields to edit), "off", "add" / "remove-<i>" (the shares split
    evenly again), "save"."""
    if action == "start":
        own = {spec.path: (campaign.content or {}).get(spec.path, "")
               for spec in CONTENT_SPECS[campaign.channel]
               if spec.path in variants.VARIANT_FIELDS.get(campaign.channel, ())}  # fmt: skip
        return {"variants": [{"percent": 50}, {"percent": 50, "content": {
            k: v for k, v in own.items() if v}}]}  # fmt: skip
    if action == "off":
        return {"variants": [], "ab_test": None}
    rows = form.to_variants()
    if action == "add" and len(rows) < variants.MAX_VARIANTS:
        rows.append({"percent": 1, "content": {}})
        for row, share in zip(rows, even_split(len(rows)), strict=True):
            row["percent"] = share
    elif action.startswith("remove-"):
        index = page_key(action.removeprefix("remove-")) or 0
        if 0 < index < len(rows):
            del rows[index]
            for row, share in zip(rows, even_split(len(rows)), strict=True):
                row["percent"] = share
    if len(rows) < 2:
        return {"variants": [], "ab_test": None}
    return {"variants": rows, "ab_test": form.to_ab_test()}


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def campaign_variants(request, campaign_id):
    """The A/B card: start, change, add or remove variants and the test phase (htmx: the
    card again, the preview told to reload); a refusal is shown at its field."""
    campaign = _campaign(request, campaign_id)
    action = request.POST.get("action", "save")
    if action not in ("start", "off", "add", "save") and not action.startswith("remove-"):
        action = "save"
    count = len(campaign.variants or [])
    form, error, saved = None, "", False
    if action not in ("start", "off"):
        form = VariantsForm(request.POST, campaign=campaign, count=count)
    if form is None or form.is_valid():
        try:
            services.campaign_update(campaign=campaign, actor=Actor.from_request(request),
                                     **_variants_changed(campaign, action, form))  # fmt: skip
        except services.CampaignConflict as e:
            error = str(e)
        except ValidationError as e:
            if form is None:
                error = _errors_text(e)
            else:
                form.add_service_errors(e)
        else:
            saved, form = True, None
    campaign = _campaign(request, campaign_id)
    if not request.htmx:
        if saved:
            messages.success(request, "The A/B test is saved.")
            return redirect(reverse("campaign_edit", kwargs={"campaign_id": campaign.pk})
                            + "#variants")  # fmt: skip
        if error:
            messages.error(request, error)
        context = _editor_context(request, campaign)
        if form is not None:
            context["variants_form"] = form
        return render(request, EDITOR, context)
    context = _base(campaign) | {
        "variants_form": form or VariantsForm(campaign=campaign), "variants_error": error,
        "variants_saved": saved, "now": timezone.now(),
    }  # fmt: skip
    response = render(request, f"{EDITOR}#variants", context)
    if saved:
        response["HX-Trigger"] = "campaign-saved"
    return response


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def campaign_targeting(request, campaign_id):
    """Save who gets the campaign. Choosing an audience (`pick=audience`) copies its lists
    in as the campaign's own; otherwise the ticked segments are the lists. htmx: the whole
    card after an audience was picked (the pickers show its lists first), else only the
    summary and the estimate, so the picker does not move under the pointer."""
    campaign = _campaign(request, campaign_id)
    form = _targeting_form(campaign, request.POST)
    pick_audience = request.POST.get("pick") == "audience"
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        changes = {"everyone": data["target"] == TARGET_EVERYONE}
        if pick_audience:
            changes["audience"] = data["audience"]
        else:
            changes |= {"include": list(data["include"]), "exclude": list(data["exclude"])}
            if data["audience"] != campaign.audience:
                changes["audience"] = data["audience"]
                if data["audience"] is not None:  # its lists, unless the ticks say otherwise
                    changes.pop("include")
                    changes.pop("exclude")
        try:
            campaign = services.campaign_update(
                campaign=campaign, actor=Actor.from_request(request), **changes
            )
        except services.CampaignConflict as e:
            error = str(e)
        except ValidationError as e:
            error = _errors_text(e)
    else:
        error = " ".join(str(m) for ms in form.errors.values() for m in ms)
    campaign = _campaign(request, campaign_id)
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, "Who gets the campaign is saved.")
        return redirect(reverse("campaign_edit", kwargs={"campaign_id": campaign.pk}) + "#audience")
    context = (
        _base(campaign)
        | _targeting_context(campaign, form if error else _targeting_form(campaign))
        | {"targeting_error": error}
    )
    if pick_audience or error:
        return render(request, f"{EDITOR}#targeting", context)
    return render(request, f"{EDITOR}#targeting_summary", context)


@require_GET
@role_required(VIEW)
def campaign_estimate(request, campaign_id):
    """The live estimate (htmx): who a launch now would reach, and who would be skipped."""
    campaign = _campaign(request, campaign_id)
    return render(request, f"{EDITOR}#estimate", _estimate_context(campaign))


def _estimate_context(campaign) -> dict:
    try:
        estimate = selectors.campaign_estimate(campaign)
    except NoRecipients:
        return {"estimate": None, "estimate_error": "No recipients chosen yet: pick an "
                "audience or segments, or choose Everyone."}  # fmt: skip
    except RuleError as e:
        return {"estimate": None, "estimate_error": f"A segment cannot be counted: {e.message}"}
    skipped = [
        (key, selectors.SKIP_LABELS.get(key, key), n)
        for key, n in estimate["skipped"].items()
        if n or key in ESTIMATED_SKIPS
    ]
    return {"estimate": estimate, "skipped": skipped,
            "skipped_total": sum(estimate["skipped"].values())}  # fmt: skip


# --- The preview -------------------------------------------------------------------------


def _sample_people(campaign, limit: int = SAMPLE_PEOPLE) -> list:
    """People to preview for: the first recipients, or the newest people of the workspace
    when nobody is chosen yet."""
    try:
        people = recipients(campaign, now=timezone.now()).select_related("company")
        found = list(people.order_by("id")[:limit])
    except (NoRecipients, RuleError):
        found = []
    if not found:
        found = list(people_selectors.person_list(workspace=campaign.workspace)[:limit])
    return found


def _preview_person(request, campaign, sample: list | None = None):
    """(person, note): ?person_id=<id>, ?person=<external id, email or name>, else the
    first of the sample people (read when not given)."""
    ws = request.workspace
    person_id = page_key(request.GET.get("person_id", ""))
    text = request.GET.get("person", "").strip()[:200]
    people = people_selectors.person_list(workspace=ws)
    found, note = None, ""
    if person_id is not None:
        found = people.filter(pk=person_id).first()
    elif text:
        found = people.filter(external_id=text).first()
        if found is None:
            found = people_selectors.person_list(workspace=ws, q=text).first()
        if found is None:
            note = f"Nobody matches “{text}”."
    if found is None:
        sample = _sample_people(campaign, 1) if sample is None else sample
        found = sample[0] if sample else None
    return found, note


def _variant(request, campaign) -> str:
    """?variant= when the campaign has it, else "" (the message itself)."""
    key = request.GET.get("variant", "")
    return key if key in {v["key"] for v in campaign.variants or ()} else ""


def _rendered(campaign, person, variant: str = "") -> tuple[dict | None, str]:
    """(the content of `variant` rendered for `person`, why it cannot be)."""
    content = variants.contents(campaign).get(variant, campaign.content)
    try:
        return render_preview(campaign.channel, content, person,
                              workspace_time_zone=campaign.workspace.time_zone), ""  # fmt: skip
    except ValidationError as e:
        return None, _errors_text(e)


@require_GET
@role_required(VIEW)
def campaign_preview(request, campaign_id):
    """The saved message rendered for a person (htmx, reloaded after each save): the
    email's headers and its HTML in a sandboxed frame, an SMS bubble with its segments, a
    push as a phone shows it."""
    campaign = _campaign(request, campaign_id)
    sample = _sample_people(campaign)
    person, note = _preview_person(request, campaign, sample)
    variant = _variant(request, campaign)
    rendered, problem = (None, "") if person is None else _rendered(campaign, person, variant)
    if campaign.channel == "banner":  # the same for everyone: no person needed
        rendered, problem = dict(campaign.content or {}), ""
    context = _base(campaign) | {
        "variant": variant,
        "person": person,
        "person_note": note,
        "rendered": rendered,
        "problem": problem,
        "sample_people": sample,
        "version": int(campaign.updated_at.timestamp() * 1000),
    }
    if rendered and campaign.channel == "sms":
        context["sms"] = sms_preview(rendered.get("body", ""))
    return render(request, "campaigns/preview.html", context)


@require_GET
@role_required(VIEW)
@xframe_options_sameorigin
@csp_override(PREVIEW_HTML_CSP)
def campaign_preview_html(request, campaign_id):
    """The email's HTML rendered for ?person_id=, as the preview's sandboxed frame shows it."""
    campaign = _campaign(request, campaign_id)
    person, _ = _preview_person(request, campaign)
    html = ""
    if campaign.channel == "email" and person is not None:
        rendered, problem = _rendered(campaign, person, _variant(request, campaign))
        html = rendered.get("html", "") if rendered else ""
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Referrer-Policy"] = "no-referrer"
    return response


# --- Test send ---------------------------------------------------------------------------


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def campaign_test(request, campaign_id):
    """Send the saved message now to a test segment or people, through the channel's real
    provider, outside the stats; the outcome per person (sent, skipped and why, failed)."""
    campaign = _campaign(request, campaign_id)
    form = _test_form(campaign, request.POST)
    result = None
    if form.is_valid():
        segment = form.cleaned_data["segment"]
        ids = form.cleaned_data["people"]
        people = None
        if not segment:
            found = people_selectors.person_list(workspace=request.workspace).filter(
                external_id__in=ids
            )
            known = dict(found.values_list("external_id", "pk"))
            unknown = [i for i in ids if i not in known]
            if unknown:
                shown = ", ".join(f"“{i}”" for i in unknown[:10])
                form.add_error("people", f"No person with the ID {shown}.")
            people = list(known.values())
        if form.is_valid():
            try:
                answer = services.campaign_test_send(
                    campaign=campaign, actor=Actor.from_request(request),
                    segment=segment or None, people=people,
                )  # fmt: skip
            except services.TestSendRefused as e:
                form.add_error(None, str(e))
            except ValidationError as e:
                form.add_error(None, "The message is not ready to send: " + _errors_text(e))
            else:
                result = {
                    "sent": answer["sent"],
                    "skipped": [(p, selectors.SKIP_LABELS.get(r, r)) for p, r in answer["skipped"]],
                    "failed": answer["failed"],
                    "to": segment.name if segment else ", ".join(ids),
                }
    context = _base(campaign) | {"test_form": form, "test_result": result,
                                 "provider": _provider(campaign)}  # fmt: skip
    if request.htmx:
        return render(request, f"{EDITOR}#test", context)
    if result is not None:
        counts = (result["sent"], len(result["skipped"]), len(result["failed"]))
        messages.success(request, "Test sent: {} sent, {} skipped, {} failed.".format(*counts))
        return redirect(reverse("campaign_edit", kwargs={"campaign_id": campaign.pk}) + "#test")
    return render(request, EDITOR, _editor_context(request, campaign, test_form=form))


# --- Schedule, launch and the lifecycle --------------------------------------------------


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def campaign_launch(request, campaign_id):
    """Send now, or schedule at a time of the workspace's time zone, with an optional
    expiry; a refusal (nobody chosen, the message incomplete) is shown on the form."""
    campaign = _campaign(request, campaign_id)
    form = ScheduleForm(request.POST, campaign=campaign)
    if form.is_valid():
        data = form.cleaned_data
        actor = Actor.from_request(request)
        try:
            with transaction.atomic():
                changes = {key: data[key] for key in ("expires_at", "transactional",
                                                      "in_recipient_time_zone", "quiet_hours")
                           if data[key] != getattr(campaign, key)}  # fmt: skip
                if changes:
                    campaign = services.campaign_update(campaign=campaign, actor=actor,
                                                        **changes)  # fmt: skip
                send_at = data["send_at"] if data["when"] == WHEN_LATER else None
                campaign = services.campaign_launch(campaign=campaign, actor=actor,
                                                    send_at=send_at)  # fmt: skip
        except services.CampaignConflict as e:
            form.add_error(None, str(e))
        except ValidationError as e:
            if hasattr(e, "error_dict") and set(e.message_dict) <= {
                "send_at",
                "expires_at",
                "in_recipient_time_zone",
                "quiet_hours",
            }:
                for key, texts in e.message_dict.items():
                    for text in texts:
                        form.add_error(key, text)
            else:
                form.add_error(None, "Not launched: " + _errors_text(e))
        else:
            if campaign.status == CampaignStatus.SCHEDULED:
                when = timezone.localtime(campaign.send_at)
                messages.success(request, f"Scheduled for {when:%d %b %Y, %H:%M} "
                                 f"({request.workspace.time_zone}).")  # fmt: skip
            elif campaign.status == CampaignStatus.EXPIRED:
                messages.error(request, campaign.status_reason or "The campaign expired.")
            else:
                messages.success(request, "Launched: the recipients are being frozen, then "
                                 "the messages go out.")  # fmt: skip
            return redirect("campaign_detail", campaign_id=campaign.pk)
    campaign = _campaign(request, campaign_id)
    return render(request, EDITOR, _editor_context(request, campaign, schedule_form=form))


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def campaign_winner(request, campaign_id):
    """End the A/B test phase now: the variant picked (or the leader by the test's
    metric) is sent to the rest."""
    campaign = _campaign(request, campaign_id)
    variant = request.POST.get("variant") or None
    try:
        campaign = services.campaign_choose_winner(
            campaign=campaign, actor=Actor.from_request(request), variant=variant
        )
    except services.CampaignConflict as e:
        messages.error(request, str(e))
    except ValidationError as e:
        messages.error(request, _errors_text(e))
    else:
        messages.success(request, f"Variant {campaign.ab_winner} won: it is being sent to the "
                         f"rest ({campaign.ab_decision.get('rest', 0):,}).")  # fmt: skip
    return redirect(reverse("campaign_detail", kwargs={"campaign_id": campaign.pk}) + "#ab-test")


def _lifecycle(service, done: str):
    @require_POST
    @role_required(MANAGE_CAMPAIGNS)
    def view(request, campaign_id):
        campaign = _campaign(request, campaign_id)
        try:
            service(campaign=campaign, actor=Actor.from_request(request))
        except services.CampaignConflict as e:
            messages.error(request, str(e))
        else:
            messages.success(request, done)
        return redirect("campaign_detail", campaign_id=campaign.pk)

    return view


campaign_end = _lifecycle(services.banner_end, "Ended: the banner is no longer shown; its "
                          "stats are kept.")  # fmt: skip
campaign_pause = _lifecycle(services.campaign_pause, "Paused: nothing more goes out until "
                            "you resume it; nothing queued is lost.")  # fmt: skip
campaign_resume = _lifecycle(services.campaign_resume, "Resumed: sending from where it "
                             "stopped; nobody gets it twice.")  # fmt: skip
campaign_cancel = _lifecycle(services.campaign_cancel, "Cancelled: nothing more is sent; "
                             "whoever was still waiting is recorded as skipped.")  # fmt: skip


# --- The campaign's page -----------------------------------------------------------------


def _progress_context(campaign) -> dict:
    progress = selectors.campaign_progress(campaign)
    stats = progress["stats"]
    total = progress["total"]
    parts = []
    for key, css in (("sent", "bg-success"), ("failed", "bg-danger"), ("bounced", "bg-danger"),
                     ("unknown", "bg-warning")):  # fmt: skip
        n = stats[key]
        if n and total:
            parts.append({"key": key, "n": n, "css": css, "percent": max(1, n * 100 // total)})
    polling = campaign.status == CampaignStatus.SENDING or progress["freezing"]
    return {"progress": progress, "stats": stats, "bar_parts": parts, "polling": polling}


@require_GET
@role_required(VIEW)
def campaign_detail(request, campaign_id):
    campaign = _campaign(request, campaign_id)
    context = _base(campaign) | _progress_context(campaign)
    stats = context["stats"]
    skipped = [(key, selectors.SKIP_LABELS.get(key, key), n)
               for key, n in stats["skipped"].items() if n]  # fmt: skip
    chart = selectors.sends_over_time(campaign) if campaign.launched_at else None
    engaged = campaign.launched_at and campaign.channel in ("email", "push")
    context |= {
        "engagement": selectors.campaign_engagement(campaign, stats) if engaged else None,
        "links": selectors.top_links(campaign) if engaged else [],
        "engagement_chart": selectors.engagement_over_time(campaign) if engaged else None,
        "ab": selectors.variant_stats(campaign),
        "banner": (banner := selectors.banner_stats(campaign)
                   if campaign.channel == "banner" else None),
        "ab_choosable": bool(
            campaign.variants and campaign.ab_test_percent and not campaign.ab_winner
            and campaign.status in (CampaignStatus.SENDING, CampaignStatus.PAUSED)
        ),
        "definition": selectors.campaign_definition(campaign),
        "people_count": _people_count(campaign),
        "skipped_rows": skipped,
        "chart": chart if chart and chart["labels"] else None,
        "can_edit": _can_edit(request),
        "time_zone": request.workspace.time_zone,
        "tests_sent": selectors.deliveries_for(campaign, tests=True).count(),
        "provider": _provider(campaign),
    }
    if banner is not None:
        context["engagement_chart"] = banner["chart"]
    return render(request, DETAIL, context)


@require_GET
@role_required(VIEW)
def campaign_progress(request, campaign_id):
    """The polled progress (htmx, every 2 s while sending). When the status has changed
    since the page was drawn, the page reloads (its counts, chart and buttons follow)."""
    campaign = _campaign(request, campaign_id)
    shown = request.GET.get("shown", "")
    context = _base(campaign) | _progress_context(campaign)
    response = render(request, f"{DETAIL}#progress", context)
    if shown and shown != campaign.status:
        response["HX-Refresh"] = "true"
    return response


# --- The per-recipient log ---------------------------------------------------------------


def _log_filters(request) -> dict:
    status = request.GET.get("status", "")
    reason = request.GET.get("reason", "")
    return {
        "status": status if status in DeliveryStatus.values else "",
        "reason": reason if reason in SkipReason.values else "",
        "q": request.GET.get("q", "").strip()[:200],
        "tests": request.GET.get("tests") == "1",
    }


def _log_rows(campaign, filters: dict):
    return selectors.deliveries_for(campaign, status=filters["status"], reason=filters["reason"],
                                    search=filters["q"], tests=filters["tests"])  # fmt: skip


@require_GET
@role_required(VIEW)
def campaign_log(request, campaign_id):
    """Who was sent what: each recipient's status, skip reason or the provider's answer,
    the provider's message id and times; search, filters and pages; CSV of the same."""
    campaign = _campaign(request, campaign_id)
    filters = _log_filters(request)
    after = page_key(request.GET.get("after", ""))
    before = page_key(request.GET.get("before", "")) if after is None else None
    page = keyset_page(_log_rows(campaign, filters), order=("id",), after=after, before=before,
                       size=LOG_PAGE_SIZE)  # fmt: skip
    for d in page.items:
        d.status_class = DELIVERY_CLASSES.get(d.status, "")
        d.reason_label = selectors.SKIP_LABELS.get(d.reason, d.reason)
    qs = {k: v for k, v in (("status", filters["status"]), ("reason", filters["reason"]),
                            ("q", filters["q"]), ("tests", "1" if filters["tests"] else ""))
          if v}  # fmt: skip
    return render(
        request,
        LOG,
        _base(campaign) | {
            "rows": page.items,
            "next_after": page.next_key,
            "prev_before": page.prev_key,
            "pager_labels": ("← Previous", "Next →"),
            "qs": urlencode(qs),
            "filters": filters,
            "filtered": bool(qs),
            "statuses": DeliveryStatus.choices,
            "reasons": SkipReason.choices,
            "csv_url": reverse("campaign_log_csv", kwargs={"campaign_id": campaign.pk})
            + (f"?{urlencode(qs)}" if qs else ""),
        },
    )  # fmt: skip


LOG_COLUMNS = ["person", "address", "status", "reason", "error", "provider_message_id", "test",
               "created_at", "sent_at", "delivered_at", "opened_at", "clicked_at"]  # fmt: skip


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


@require_GET
@role_required(VIEW)
def campaign_log_csv(request, campaign_id):
    """The log as CSV (the page's filters), streamed in keyset batches; every cell
    formula-safe (accounts.csv_safe)."""
    campaign = _campaign(request, campaign_id)
    rows = _log_rows(campaign, _log_filters(request))

    def lines():
        writer = csv.writer(Echo())
        yield "\ufeff" + writer.writerow(LOG_COLUMNS)
        last = 0
        while True:
            batch = list(rows.filter(id__gt=last)[:2000])
            if not batch:
                return
            for d in batch:
                values = [d.person.external_id, d.address, d.status, d.reason, d.error,
                          d.provider_message_id, "yes" if d.is_test else "", _iso(d.created_at),
                          _iso(d.sent_at), _iso(d.delivered_at), _iso(d.opened_at),
                          _iso(d.clicked_at)]  # fmt: skip
                yield writer.writerow([csv_safe(v) for v in values])
            last = batch[-1].pk

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-log.csv"'
    return response


# --- Banners: placements and the demo page ------------------------------------------------


@role_required(VIEW)
def placement_list(request):
    """The workspace's placements (the built-in ones and those made here), with the banners
    live in each; a new one by its key; one no banner uses is deleted."""
    from campaigns.banners import placements_for
    from campaigns.forms import PlacementForm
    from campaigns.models import Placement

    form = PlacementForm(request.POST or None, workspace=request.workspace)
    can_edit = _can_edit(request)
    if request.method == "POST":
        if not can_edit:
            raise Http404("Not allowed")
        if request.POST.get("delete"):
            placement = Placement.objects.for_workspace(request.workspace).filter(
                pk=page_key(request.POST["delete"]) or 0).first()  # fmt: skip
            if placement is None:
                raise Http404("No such placement in this workspace.")
            try:
                services.placement_delete(placement=placement, actor=Actor.from_request(request))
            except services.CampaignConflict as e:
                messages.error(request, str(e))
            else:
                messages.success(request, f"Placement “{placement.key}” deleted.")
            return redirect("placement_list")
        if form.is_valid():
            try:
                placement = services.placement_create(
                    workspace=request.workspace, actor=Actor.from_request(request),
                    **form.cleaned_data,
                )  # fmt: skip
            except ValidationError as e:
                form.add_error(None, _errors_text(e))
            else:
                messages.success(request, f"Placement “{placement.key}” created.")
                return redirect("placement_list")
    placements = placements_for(request.workspace)
    live = dict(
        Campaign.objects.for_workspace(request.workspace)
        .filter(channel="banner", status=CampaignStatus.LIVE)
        .values("content__placement").annotate(n=Count("id"))
        .values_list("content__placement", "n")
    )  # fmt: skip
    rows = [{"placement": p, "live": live.get(p.key, 0)} for p in placements]
    return render(request, "campaigns/placements.html",
                  {"rows": rows, "form": form, "can_edit": can_edit})  # fmt: skip


@require_GET
@role_required(VIEW)
def banner_demo(request):
    """A page of the customer's app, as the snippet sees it: the workspace's placements,
    filled live by static/herald-banners.js with a preview token (this workspace's banners,
    for an hour) for the person typed in."""
    from campaigns.banners import placements_for, preview_token

    person = request.GET.get("person", "").strip()[:255]
    return render(request, "campaigns/banner_demo.html", {
        "placements": placements_for(request.workspace), "person": person,
        "token": preview_token(request.workspace.pk),
        "endpoint": request.build_absolute_uri("/").rstrip("/"),
        "sample": people_selectors.person_list(workspace=request.workspace)[:5],
    })  # fmt: skip
