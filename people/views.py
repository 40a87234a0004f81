"""UI for people: the People page, profiles, tags, Do Not Contact and the attribute catalogue."""

import csv
import json
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.audit import Actor
from accounts.csv_safe import Echo
from accounts.csv_safe import escape_cell as csv_safe
from accounts.models import role_at_least
from accounts.pages import keyset_page
from accounts.permissions import (
    MANAGE_CAMPAIGNS,
    MANAGE_PEOPLE,
    MANAGE_SEGMENTS,
    VIEW,
    role_required,
)
from audiences import selectors as audience_selectors
from audiences.imports.uploads import limit_uploads
from campaigns import selectors as campaign_selectors
from campaigns import services as campaign_services
from people import selectors
from people.forms import AttributeForm, DncAddForm, DncImportForm, TagForm, whole_number
from people.models import (
    BUILTIN_FIELD_LABELS,
    AttributeType,
    ContactChannel,
    DncSource,
    TagSource,
)
from people.normalize import InvalidAddress
from people.selection import FilteredPeople, page_key, selected_people
from people.services import attributes as attribute_services
from people.services import dnc as dnc_services
from people.services import tags as tag_services
from people.services.people import PERSON_TEXT_FIELDS
from segments.explain import segment_explanations

PAGE_SIZE = 50
PEOPLE_SORT_CHOICES = [
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("name", "Name, A to Z"),
    ("-name", "Name, Z to A"),
    ("email", "Email, A to Z"),
    ("-email", "Email, Z to A"),
    ("external_id", "External ID, A to Z"),
    ("-external_id", "External ID, Z to A"),
    ("city", "City, A to Z"),
    ("-city", "City, Z to A"),
]
LARGE_SELECTION = 10_000
MESSAGES_SHOWN = 20  # on a profile: the newest; the API lists them all
# then one column per custom attribute, named by its key (as the contact import reads it)
EXPORT_FIELDS = ["external_id", *PERSON_TEXT_FIELDS, "company", "tags", "created_at"]


def _export_value(value) -> str:
    """A custom attribute's value as a cell: lists joined by |, true/false, as stored."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "|".join(_export_value(item) for item in value)
    return str(value)


def _attribute_choices(view) -> list[tuple[str, str]]:
    """(key, label) for the advanced filters: built-in fields by their names, custom
    attributes by the label their catalogue gives them (else the key)."""
    catalogue = view.catalogue
    labelled = []
    for key in view.types:
        if key in BUILTIN_FIELD_LABELS:
            labelled.append((key, BUILTIN_FIELD_LABELS[key]))
        else:
            definition = catalogue.get(key)
            labelled.append((key, (definition.label if definition else "") or key))
    return sorted(labelled, key=lambda pair: pair[1].lower())


@role_required(VIEW)
def people_list(request):
    view = FilteredPeople(request, request.GET)
    people = view.people
    page = keyset_page(
        selectors.sorted_people(people, view.sort),
        order=view.sort.order,
        after=page_key(request.GET.get("after", "")),
        before=page_key(request.GET.get("before", "")),
        size=PAGE_SIZE,
    )
    rows = page.items
    tags = selectors.tag_names_by_person(people=rows)
    for person in rows:
        person.tag_names = tags[person.pk]
    context = {
        "view": view,
        "form": view.form,
        "rows": rows,
        "count": selectors.count_people(people),
        "next_after": page.next_key,
        "prev_before": page.prev_key,
        "qs": view.querystring,
        "sort": view.sort,
        "sort_links": view.sort_links(),
        "sort_choices": PEOPLE_SORT_CHOICES,
        "pager_labels": ("← Previous", "Next →")
        if view.sort is not selectors.DEFAULT_PERSON_SORT
        else ("← Newer", "Older →"),
        "attribute_choices": _attribute_choices(view),
        "segment_rules": json.dumps(view.segment_rules) if view.segment_rules else "",
        "can_save_segment": role_at_least(request.membership.role, MANAGE_SEGMENTS),
        "large_selection": LARGE_SELECTION,
        "all_tags": selectors.tag_choices(workspace=request.workspace),
        "all_audiences": audience_selectors.audience_list(workspace=request.workspace)[:500],
    }
    return render(request, "people/people_list.html", context)


BROADCAST_CHANNELS = {"email": "Email", "sms": "SMS", "push": "Push"}


@require_POST
@role_required(MANAGE_CAMPAIGNS)
def people_bulk_broadcast(request):
    """ "Add to communication -> Broadcast": a draft campaign of the chosen channel whose
    recipients are the selection (the rows, or all N matching), then its editor."""
    view = FilteredPeople(request, request.POST)
    people = selected_people(request, view)
    back = redirect(f"{reverse('people_list')}?{view.querystring}")
    channel = request.POST.get("channel", "")
    if channel not in BROADCAST_CHANNELS:
        messages.error(request, "Choose the channel of the broadcast: email, SMS or push.")
        return back
    if not people.exists():
        messages.error(request, "Select the people to send to first.")
        return back
    name = " ".join((request.POST.get("broadcast_name") or "").split())
    try:
        campaign = campaign_services.campaign_broadcast(
            workspace=request.workspace, channel=channel, people=people, name=name,
            actor=Actor.from_request(request),
        )  # fmt: skip
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return back
    messages.success(
        request,
        f"Draft “{campaign.name}” created for {campaign.people_segment.people_count:,} people: "
        "write the "
        "message, test it and send.",
    )
    return redirect(reverse("campaign_edit", kwargs={"campaign_id": campaign.pk}))


@require_POST
@role_required(MANAGE_PEOPLE)
def people_bulk_tags(request):
    view = FilteredPeople(request, request.POST)
    people = selected_people(request, view)
    name = (request.POST.get("tag") or "").strip()
    action = request.POST.get("action")
    back = f"{reverse('people_list')}?{view.querystring}"
    if action not in {"add", "remove"} or not name:
        messages.error(
            request, "Choose a tag (or type a new name) and whether to add or remove it."
        )
        return redirect(back)
    try:
        if action == "add":
            tag, changed = tag_services.tag_assign_by_name(
                workspace=request.workspace,
                name=name,
                people=people,
                source=TagSource.MANUAL,
                actor=Actor.from_request(request),
            )
            messages.success(request, f"Tagged {changed:,} people with “{tag.name}”.")
        else:
            tag = selectors.get_tag_or_404(workspace=request.workspace, name=name)
            changed = tag_services.tags_unassign(
                workspace=request.workspace,
                tag=tag,
                people=people,
                actor=Actor.from_request(request),
            )
            messages.success(request, f"Removed “{tag.name}” from {changed:,} people.")
    except ValueError as e:
        messages.error(request, str(e))
    return redirect(back)


@require_POST
@role_required(VIEW)
def people_export(request):
    view = FilteredPeople(request, request.POST)
    people = selected_people(request, view)

    keys = sorted(selectors.attribute_catalogue(workspace=request.workspace))

    def rows():
        writer = csv.writer(Echo())
        yield "\ufeff" + writer.writerow(EXPORT_FIELDS + keys)
        last_id = None
        while True:  # keyset batches: bounded memory however many people match
            batch_qs = people.order_by("-id")
            if last_id is not None:
                batch_qs = batch_qs.filter(id__lt=last_id)
            batch = list(batch_qs[:2000])
            if not batch:
                return
            tags = selectors.tag_names_by_person(people=batch)
            for p in batch:
                values = [
                    p.external_id,
                    *(getattr(p, name) for name in PERSON_TEXT_FIELDS),
                    p.company.name if p.company_id else "",
                    "|".join(tags[p.pk]),
                    p.created_at.isoformat(),
                    *(_export_value(p.attributes.get(key)) for key in keys),
                ]
                yield writer.writerow([csv_safe(v) for v in values])
            last_id = batch[-1].pk

    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="people-{stamp}.csv"'
    return response


# --- Profile ----------------------------------------------------------------------------


@role_required(VIEW)
def person_detail(request, person_id):
    ws = request.workspace
    person = selectors.get_person_by_id_or_404(workspace=ws, pk=person_id)
    event_name = request.GET.get("event", "")
    events = selectors.event_list(workspace=ws, person=person, name=event_name or None)
    cursor = request.GET.get("events_before", "")
    at, _, pk = cursor.rpartition("_")
    pk = whole_number(pk)
    if at and pk is not None:  # a mangled cursor shows the newest events
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            pass
        else:
            events = events.filter(occurred_at__lt=at) | events.filter(occurred_at=at, id__lt=pk)
    page = list(events[:26])
    next_cursor = f"{page[24].occurred_at.isoformat()}_{page[24].pk}" if len(page) > 25 else None
    catalogue = selectors.attribute_catalogue(workspace=ws)
    attributes = [
        (
            key,
            catalogue[key].label if key in catalogue else key,
            catalogue[key].type if key in catalogue else "",
            value,
        )
        for key, value in sorted(person.attributes.items())
    ]
    zone_name, zone, zone_note = _person_zone(person, ws)
    sent = list(campaign_selectors.person_messages(person)[: MESSAGES_SHOWN + 1])
    for delivery in sent:
        delivery.reason_label = campaign_selectors.SKIP_LABELS.get(delivery.reason, delivery.reason)
    context = {
        "person": person,
        "attributes": attributes,
        "tag_objects": list(selectors.tag_list(workspace=ws).filter(person_tags__person=person)),
        "dnc": selectors.dnc_status(workspace=ws, person=person),
        "events": page[:25],
        "events_next": next_cursor,
        "event_name": event_name,
        "event_names": list(
            selectors.event_type_list(workspace=ws).values_list("name", flat=True)[:300]
        ),
        "push_tokens": list(person.push_tokens.all()),
        "audiences": audience_selectors.person_audiences(person=person),
        "segment_explanations": segment_explanations(person, ws, timezone.now()),
        "messages_sent": sent,
        "flow_runs": campaign_selectors.person_flows(person),
        "messages_shown": MESSAGES_SHOWN,
        "zone_name": zone_name,
        "zone_note": zone_note,
        "local_now": timezone.now().astimezone(zone),
    }
    return render(request, "people/person_detail.html", context)


def _person_zone(person, workspace) -> tuple[str, ZoneInfo, str]:
    """(zone name, zone, note) the profile shows: the person's own zone, else the
    workspace's; a stored name this server's zone database no longer knows falls back to
    the workspace's too, and the note says which case it is."""
    if person.time_zone:
        try:
            return person.time_zone, ZoneInfo(person.time_zone), ""
        except (ZoneInfoNotFoundError, ValueError):
            note = f"“{person.time_zone}” is unknown here: the workspace's is used"
            return workspace.time_zone, workspace.tzinfo, note
    return workspace.time_zone, workspace.tzinfo, "the workspace's"


@require_POST
@role_required(MANAGE_PEOPLE)
def person_tag_add(request, person_id):
    ws = request.workspace
    person = selectors.get_person_by_id_or_404(workspace=ws, pk=person_id)
    form = TagForm(request.POST)
    if form.is_valid():
        tag, _changed = tag_services.tag_assign_by_name(
            workspace=ws,
            name=form.cleaned_data["name"],
            people=selectors.person_list(workspace=ws).filter(pk=person.pk),
            actor=Actor.from_request(request),
        )
        messages.success(request, f"Tagged with “{tag.name}”.")
    else:
        messages.error(request, "Give the tag a name (at most 100 characters).")
    return redirect("person_detail", person_id=person.pk)


@require_POST
@role_required(MANAGE_PEOPLE)
def person_tag_remove(request, person_id, tag_id):
    ws = request.workspace
    person = selectors.get_person_by_id_or_404(workspace=ws, pk=person_id)
    tag = selectors.get_tag_by_id_or_404(workspace=ws, pk=tag_id)
    tag_services.tags_unassign(
        workspace=ws,
        tag=tag,
        people=selectors.person_list(workspace=ws).filter(pk=person.pk),
        actor=Actor.from_request(request),
    )
    messages.success(request, f"Removed “{tag.name}”.")
    return redirect("person_detail", person_id=person.pk)


@require_POST
@role_required(MANAGE_PEOPLE)
def person_dnc_add(request, person_id):
    """Put the person's address for a channel on Do Not Contact."""
    ws = request.workspace
    person = selectors.get_person_by_id_or_404(workspace=ws, pk=person_id)
    channel = request.POST.get("channel")
    addresses = {
        ContactChannel.EMAIL: [person.email],
        ContactChannel.SMS: [person.phone],
        ContactChannel.PUSH: [t.token for t in person.push_tokens.all()],
    }.get(channel)
    if addresses is None:
        return HttpResponseBadRequest("Unknown channel.")
    addresses = [a for a in addresses if a]
    if not addresses:
        messages.error(
            request, f"{person} has no {ContactChannel(channel).label} address to block."
        )
    for address in addresses:
        try:
            dnc_services.dnc_add(
                workspace=ws,
                channel=channel,
                address=address,
                reason=request.POST.get("reason", "")[:255] or "Added from the profile",
                source=DncSource.MANUAL,
                actor=Actor.from_request(request),
            )
        except InvalidAddress as e:
            messages.error(request, str(e))
        else:
            messages.success(
                request, f"{address} is on the {ContactChannel(channel).label} Do Not Contact list."
            )
    return redirect("person_detail", person_id=person.pk)


# --- Tags -------------------------------------------------------------------------------


@role_required(VIEW, write_minimum=MANAGE_PEOPLE)
def tag_list(request):
    ws = request.workspace
    form = TagForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tag = tag_services.tag_create(
                workspace=ws, name=form.cleaned_data["name"], actor=Actor.from_request(request)
            )
        except ValueError as e:
            form.add_error("name", str(e))
        else:
            messages.success(request, f"Tag “{tag.name}” created.")
            return redirect("tag_list")
    q = request.GET.get("q", "")
    return render(
        request,
        "people/tag_list.html",
        {"form": form, "tags": selectors.tag_list(workspace=ws, q=q), "q": q},
    )


@require_POST
@role_required(MANAGE_PEOPLE)
def tag_delete(request, tag_id):
    tag = selectors.get_tag_by_id_or_404(workspace=request.workspace, pk=tag_id)
    count = tag_services.tag_delete(tag=tag, actor=Actor.from_request(request))
    messages.success(request, f"Tag “{tag.name}” deleted and removed from {count:,} people.")
    return redirect("tag_list")


# --- Do Not Contact ---------------------------------------------------------------------


@role_required(VIEW, write_minimum=MANAGE_PEOPLE)
def dnc_list(request):
    ws = request.workspace
    channel = request.GET.get("channel", "")
    channel = channel if channel in ContactChannel.values else ""
    q = request.GET.get("q", "")
    form = DncAddForm(request.POST or None, initial={"channel": channel or ContactChannel.EMAIL})
    if request.method == "POST" and form.is_valid():
        try:
            entry, created = dnc_services.dnc_add(
                workspace=ws,
                channel=form.cleaned_data["channel"],
                address=form.cleaned_data["address"],
                reason=form.cleaned_data["reason"],
                source=DncSource.MANUAL,
                actor=Actor.from_request(request),
            )
        except InvalidAddress as e:
            form.add_error("address", str(e))
        else:
            messages.success(
                request,
                f"{entry.address} added."
                if created
                else f"{entry.address} was already on the list.",
            )
            return redirect(f"{reverse('dnc_list')}?channel={entry.channel}")
    entries = selectors.dnc_list(workspace=ws, channel=channel or None, q=q)
    page = keyset_page(entries, after=page_key(request.GET.get("after", "")), size=100)
    return render(
        request,
        "people/dnc_list.html",
        {
            "form": form,
            "import_form": DncImportForm(initial={"channel": channel or ContactChannel.EMAIL}),
            "entries": page.items,
            "next_after": page.next_key,
            "channel": channel,
            "q": q,
            "channels": ContactChannel.choices,
        },
    )


@require_POST
@role_required(MANAGE_PEOPLE)  # refuses without reading the body
@csrf_exempt  # checked by _dnc_import, once the upload limit is in place
def dnc_import(request):
    """The role is checked before the body is read: CsrfViewMiddleware would read (and
    store) the whole upload to find its token, so the CSRF check comes after the size
    limit, which applies while the body is read (the audience import's handler). The
    limit is the contact import's, CONTACT_IMPORT_MAX_BYTES."""
    limit_uploads(request, settings.CONTACT_IMPORT_MAX_BYTES)
    return _dnc_import(request)


@csrf_protect
def _dnc_import(request):
    ws = request.workspace
    form = DncImportForm(request.POST, request.FILES)
    over = getattr(request, "upload_over_limit", None)
    if over:
        form.is_valid()
        form.add_error("file", dnc_services.dnc_import_too_large(None))
        context = {"form": form, "report": None}
        return render(request, "people/dnc_import_result.html", context, status=413)
    report = None
    if form.is_valid():
        try:
            report = dnc_services.dnc_import_file(
                workspace=ws,
                channel=form.cleaned_data["channel"],
                file=form.cleaned_data["file"],
                reason=form.cleaned_data["reason"],
                actor=Actor.from_request(request),
            )
        except ValidationError as e:
            form.add_error("file", e)
    return render(request, "people/dnc_import_result.html", {"form": form, "report": report})


@require_POST
@role_required(MANAGE_PEOPLE)
def dnc_remove(request, dnc_id):
    entry = selectors.get_dnc_or_404(workspace=request.workspace, pk=dnc_id)
    dnc_services.dnc_remove(entry=entry, actor=Actor.from_request(request))
    messages.success(
        request, f"{entry.address} removed from Do Not Contact ({entry.get_channel_display()})."
    )
    return redirect(f"{reverse('dnc_list')}?channel={entry.channel}")


# --- Attribute catalogue ----------------------------------------------------------------


@role_required(VIEW, write_minimum=MANAGE_PEOPLE)
def attribute_list(request):
    ws = request.workspace
    form = AttributeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = attribute_services.attribute_declare(
            workspace=ws,
            key=form.cleaned_data["key"],
            type=form.cleaned_data["type"],
            label=form.cleaned_data["label"],
            actor=Actor.from_request(request),
        )
        messages.success(request, f"Attribute “{d.key}” is now of type {d.get_type_display()}.")
        return redirect("attribute_list")
    return render(
        request,
        "people/attribute_list.html",
        {
            "form": form,
            "attributes": selectors.attribute_catalogue(workspace=ws).values(),
            "types": AttributeType.choices,
        },
    )
