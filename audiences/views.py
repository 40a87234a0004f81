"""UI of target audiences: the list, an audience's members (search, CSV download), rename,
delete, and adding or removing the People page's selection."""

import csv

from django.contrib import messages
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import Actor
from accounts.csv_safe import Echo
from accounts.csv_safe import escape_cell as csv_safe
from accounts.pages import keyset_page
from accounts.permissions import MANAGE_AUDIENCES, VIEW, role_required
from audiences import selectors, services
from audiences.forms import AudienceForm
from audiences.models import MemberSource
from people.selection import FilteredPeople, page_key, selected_people
from segments import selectors as segment_selectors

PAGE_SIZE = 50
# Rows read per query of the CSV download (tests make it small to cross batches).
EXPORT_BATCH_SIZE = 2000
EXPORT_FIELDS = [
    "herald_id",
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "added_at",
    "source",
]
SOURCE_LABELS = dict(MemberSource.choices)


@role_required(VIEW, write_minimum=MANAGE_AUDIENCES)
def audience_list(request):
    ws = request.workspace
    form = AudienceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            audience = services.audience_create(
                workspace=ws, name=form.cleaned_data["name"], actor=Actor.from_request(request)
            )
        except ValueError as e:
            form.add_error("name", str(e))
        else:
            messages.success(request, f"Audience “{audience.name}” created.")
            return redirect("audience_detail", audience_id=audience.pk)
    q = request.GET.get("q", "")
    return render(
        request,
        "audiences/audience_list.html",
        {"form": form, "audiences": selectors.audience_list(workspace=ws, q=q), "q": q},
    )


@role_required(VIEW)
def audience_detail(request, audience_id):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    q = request.GET.get("q", "").strip()
    after = page_key(request.GET.get("after", ""))
    before = page_key(request.GET.get("before", "")) if after is None else None
    # audience_members puts the bound on both sides of its join (see there): bounded.
    page = keyset_page(
        selectors.audience_members(audience=audience, q=q, after=after, before=before),
        after=after,
        before=before,
        size=PAGE_SIZE,
        bounded=True,
    )
    rows = page.items
    segment_names = segment_selectors.segment_names(
        workspace=request.workspace,
        ids={p.member_source_segment_id for p in rows if p.member_source_segment_id},
    )
    for person in rows:
        person.member_source_label = SOURCE_LABELS.get(person.member_source, person.member_source)
        # the segment that added them: its name, or None once it is deleted
        person.member_source_segment = segment_names.get(person.member_source_segment_id)
    return render(
        request,
        "audiences/audience_detail.html",
        {
            "audience": audience,
            "rows": rows,
            "q": q,
            "qs": urlencode({"q": q}) if q else "",
            "next_after": page.next_key,
            "prev_before": page.prev_key,
            "can_manage": request.membership.can(MANAGE_AUDIENCES),
            "rename_form": AudienceForm(initial={"name": audience.name}),
        },
    )


@require_GET
@role_required(VIEW)
def audience_export(request, audience_id):
    """The audience's members as a CSV file, streamed in keyset batches (bounded memory at
    any audience size); times in the workspace's time zone, with their offset."""
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    tz = request.workspace.tzinfo

    def rows():
        writer = csv.writer(Echo())
        yield "\ufeff" + writer.writerow(EXPORT_FIELDS)
        after = None
        while True:
            batch = list(
                selectors.audience_members(audience=audience, after=after).values_list(
                    "id",
                    "external_id",
                    "email",
                    "phone",
                    "first_name",
                    "last_name",
                    "member_added_at",
                    "member_source",
                )[:EXPORT_BATCH_SIZE]
            )
            for herald_id, external_id, email, phone, first, last, added_at, source in batch:
                values = [
                    herald_id,
                    external_id,
                    email,
                    phone,
                    first,
                    last,
                    added_at.astimezone(tz).isoformat(timespec="seconds"),
                    SOURCE_LABELS.get(source, source),
                ]
                yield writer.writerow([csv_safe(v) for v in values])
            if len(batch) < EXPORT_BATCH_SIZE:
                return
            after = batch[-1][0]

    day = timezone.localdate(timezone=tz).strftime("%Y%m%d")
    name = slugify(audience.name) or str(audience.pk)
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audience-{name}-{day}.csv"'
    return response


@require_POST
@role_required(MANAGE_AUDIENCES)
def audience_rename(request, audience_id):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    form = AudienceForm(request.POST)
    if form.is_valid():
        old = audience.name
        try:
            services.audience_rename(
                audience=audience, name=form.cleaned_data["name"], actor=Actor.from_request(request)
            )
        except ValueError as e:
            messages.error(request, str(e))
        else:
            messages.success(request, f"“{old}” is now “{audience.name}”.")
    else:
        messages.error(request, "Give the audience a name (at most 200 characters).")
    return redirect("audience_detail", audience_id=audience.pk)


@require_POST
@role_required(MANAGE_AUDIENCES)
def audience_delete(request, audience_id):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    count = services.audience_delete(audience=audience, actor=Actor.from_request(request))
    messages.success(request, f"Audience “{audience.name}” deleted with its {count:,} memberships.")
    return redirect("audience_list")


@require_POST
@role_required(MANAGE_AUDIENCES)
def people_bulk_audience(request):
    """Add or remove the People page's selection ("all N matching" included)."""
    view = FilteredPeople(request, request.POST)
    people = selected_people(request, view)
    back = f"{reverse('people_list')}?{view.querystring}"
    name = (request.POST.get("audience") or "").strip()
    action = request.POST.get("action")
    if action not in {"add", "remove"} or not name:
        messages.error(
            request, "Choose an audience (or type a new name) and whether to add or remove."
        )
        return redirect(back)
    try:
        if action == "add":
            audience, created = services.audience_get_or_create(
                workspace=request.workspace, name=name, actor=Actor.from_request(request)
            )
            changed = services.audience_add_people(
                audience=audience,
                people=people,
                source=MemberSource.MANUAL,
                actor=Actor.from_request(request),
            )
            kind = "new audience" if created else "audience"
            messages.success(
                request,
                f"Added {changed:,} people to {kind} “{audience.name}” "
                f"({audience.people_count:,} members).",
            )
        else:
            audience = selectors.get_audience_by_name(workspace=request.workspace, name=name)
            if audience is None:
                messages.error(request, f"There is no audience named “{name}”.")
                return redirect(back)
            changed = services.audience_remove_people(
                audience=audience, people=people, actor=Actor.from_request(request)
            )
            messages.success(request, f"Removed {changed:,} people from “{audience.name}”.")
    except ValueError as e:
        messages.error(request, str(e))
    return redirect(back)
