"""UI of target audiences: the list, an audience's members, rename, delete, and adding or
removing the People page's selection."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.permissions import MANAGE_AUDIENCES, VIEW, role_required
from audiences import selectors, services
from audiences.forms import AudienceForm
from audiences.models import MemberSource
from people.views import FilteredPeople, selected_people

PAGE_SIZE = 50


@role_required(VIEW, write_minimum=MANAGE_AUDIENCES)
def audience_list(request):
    ws = request.workspace
    form = AudienceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            audience = services.audience_create(workspace=ws, name=form.cleaned_data["name"])
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
    members = selectors.audience_members(audience=audience)
    after = request.GET.get("after", "")
    if after.isdigit():
        members = members.filter(id__lt=int(after))
    rows = list(members[: PAGE_SIZE + 1])
    return render(
        request,
        "audiences/audience_detail.html",
        {
            "audience": audience,
            "rows": rows[:PAGE_SIZE],
            "next_after": rows[PAGE_SIZE - 1].pk if len(rows) > PAGE_SIZE else None,
            "rename_form": AudienceForm(initial={"name": audience.name}),
        },
    )


@require_POST
@role_required(MANAGE_AUDIENCES)
def audience_rename(request, audience_id):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    form = AudienceForm(request.POST)
    if form.is_valid():
        old = audience.name
        try:
            services.audience_rename(audience=audience, name=form.cleaned_data["name"])
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
    count = services.audience_delete(audience=audience)
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
                workspace=request.workspace, name=name
            )
            changed = services.audience_add_people(
                audience=audience, people=people, source=MemberSource.MANUAL
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
            changed = services.audience_remove_people(audience=audience, people=people)
            messages.success(request, f"Removed {changed:,} people from “{audience.name}”.")
    except ValueError as e:
        messages.error(request, str(e))
    return redirect(back)
