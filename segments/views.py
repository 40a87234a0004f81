"""UI of segments: the list, the builder (htmx: its structure and a live count), a segment's
page (members, rules in words, refresh history, into a target audience, why a person is
in or out), and the People page's selection into a static segment."""

import json
import re
from datetime import datetime

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import Actor
from accounts.models import role_at_least
from accounts.permissions import MANAGE_SEGMENTS, VIEW, role_required
from accounts.text import has_forbidden_character
from audiences import selectors as audience_selectors
from campaigns.selectors import campaigns_for
from people import selectors as people_selectors
from people.selection import FilteredPeople, selected_people
from people.selectors import Counted, count_people
from segments import selectors, services
from segments.explain import explain_segment
from segments.forms import (
    CONDITION_TYPES,
    COUNT_OPS,
    KIND_CHOICES,
    KIND_HELP,
    MATCHES,
    MEMBERSHIP_OPS,
    MESSAGE_CHANNELS,
    MESSAGE_OPS,
    PROPERTY_OP_CHOICES,
    RELATIVE_UNITS,
    TAG_OPS,
    TIME_OPS,
    WINDOW_UNITS,
    Catalogue,
    ListSegmentForm,
    RuleBuilder,
    SegmentForm,
    make_catalogue,
)
from segments.models import RULE_KINDS, RefreshStatus, Segment, SegmentKind
from segments.rules import RuleError, describe_rules, parse_rules
from segments.rules.schema import MAX_JSON_BYTES

_ID = re.compile(r"[0-9]{1,18}")
PAGE_SIZE = 50
SAMPLE_SIZE = 10
BUILDER = "segments/builder.html"
DETAIL = "segments/segment_detail.html"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _id(text: str) -> int | None:
    """A row id from a query string or a form: ASCII digits only (str.isdigit() also takes
    "²", which int() refuses), short enough for a bigint."""
    return int(text) if _ID.fullmatch(text) else None


def _can_edit(request) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership) and role_at_least(membership.role, MANAGE_SEGMENTS)


def _words(segment: Segment) -> tuple[str, str]:
    """(the rules in plain words, why they cannot be read)."""
    if not segment.rules:
        return "", ""
    try:
        return describe_rules(parse_rules(segment.rules), workspace=segment.workspace_id), ""
    except RuleError as e:
        return "", _capital(e.message)


# --- List -------------------------------------------------------------------------------------


@role_required(VIEW, write_minimum=MANAGE_SEGMENTS)
def segment_list(request):
    ws = request.workspace
    form = ListSegmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            segment = services.segment_create(
                workspace=ws,
                name=form.cleaned_data["name"],
                kind=form.cleaned_data["kind"],
                actor=Actor.from_request(request),
                compute=False,
            )
        except RuleError as e:
            form.add_error("name" if e.path == "name" else None, _capital(e.message))
        except services.SegmentConflict as e:
            form.add_error("name", str(e))
        else:
            messages.success(request, f"Segment “{segment.name}” created.")
            return redirect("segment_detail", segment_id=segment.pk)
    q = request.GET.get("q", "").strip()
    kind = request.GET.get("kind", "")
    kind = kind if kind in SegmentKind.values else ""
    segments = list(selectors.segment_list(workspace=ws, q=q, kind=kind or None))
    used_by = selectors.segment_users(workspace=ws)
    pending = selectors.pending_refreshes(workspace=ws)
    for segment in segments:
        segment.used_by = used_by.get(segment.pk, [])
        segment.pending = pending.get(segment.pk)
    return render(
        request,
        "segments/segment_list.html",
        {
            "segments": segments,
            "q": q,
            "kind": kind,
            "kinds": SegmentKind.choices,
            "form": form,
            "can_edit": _can_edit(request),
        },
    )


@require_GET
@role_required(VIEW)
def static_segment_options(request):
    """The static segments as <option>s, for the People page's "Static segment" picker."""
    segments = selectors.segment_list(workspace=request.workspace, kind=SegmentKind.STATIC)
    return render(request, "segments/segment_list.html#static_options", {"options": segments[:500]})


# --- Builder ----------------------------------------------------------------------------------


def _catalogue(workspace, *, exclude: Segment | None = None) -> Catalogue:
    segments = selectors.segment_list(workspace=workspace)[:500]
    return make_catalogue(
        definitions=people_selectors.attribute_catalogue(workspace=workspace),
        events=people_selectors.event_type_list(workspace=workspace).values_list("name", flat=True)[
            :1000
        ],
        tags=[t.name for t in people_selectors.tag_choices(workspace=workspace)],
        audiences=[a.name for a in audience_selectors.audience_list(workspace=workspace)[:500]],
        segments=[s for s in segments if exclude is None or s.pk != exclude.pk],
        campaigns=_campaign_choices(workspace),
    )


def _campaign_choices(workspace) -> list[tuple[int, str]]:
    """The campaigns a message condition can name: the newest 500, sent ones first."""
    campaigns = campaigns_for(workspace).exclude(channel="banner").order_by("-created_at")
    return [
        (pk, f"{name} ({channel})")
        for pk, name, channel in campaigns.values_list("pk", "name", "channel")[:500]
    ]


def _rules_locked(segment: Segment | None) -> str:
    """Why the segment's rules cannot be edited ("" when they can)."""
    if segment is None:
        return ""
    if segment.kind not in RULE_KINDS:
        return "none"
    if segment.predefined:
        return "builtin"
    if segment.kind == SegmentKind.REALTIME:
        return "realtime"
    return ""


def _preview(request, builder: RuleBuilder) -> dict:
    """The live count's context: how many people the builder's complete conditions match,
    a sample of them and the rules in words, or why it cannot tell."""
    tree = builder.tree(strict=False)
    waiting = [f"condition {node.label}: {node.unfinished}" for node in builder.unfinished]
    context = {"count_ready": True, "waiting": waiting}
    if builder.has_errors:
        return context | {"preview_error": builder.first_error()}
    if tree is None:
        return context | {"preview_empty": True}
    ws = request.workspace
    try:
        parsed = parse_rules(tree, workspace=ws)
        people = selectors.rules_people(workspace=ws, rules=tree, now=timezone.now())
        count = count_people(people)
        sample = list(people.select_related("company").order_by("-id")[:SAMPLE_SIZE])
    except RuleError as e:
        builder.attach(e)
        return context | {"preview_error": builder.first_error()}
    words = describe_rules(parsed, workspace=ws)
    return context | {"count": count, "sample": sample, "words": words}


def _builder_context(request, *, form, builder, segment, source, locked, conflict=False):
    words, _ = _words(segment) if segment else ("", "")
    if segment:
        title = f"Edit “{segment.name}”"
    elif source:
        title = f"Duplicate “{source.name}”"
    else:
        title = "New segment"
    return {
        "form": form,
        "builder": builder.prepare(),
        "catalogue": builder.catalogue,
        "segment": segment,
        "source": source,
        "locked": locked,
        "conflict": conflict,
        "words": words,
        "title": title,
        "kind_choices": [(value, label, KIND_HELP[value]) for value, label in KIND_CHOICES],
        "hx_tree": format_html(
            'hx-post="{}" hx-target="#builder-tree" hx-swap="outerHTML"', request.path
        ),
        "condition_types": CONDITION_TYPES,
        "matches": MATCHES,
        "count_ops": COUNT_OPS,
        "time_ops": TIME_OPS,
        "window_units": WINDOW_UNITS,
        "relative_units": RELATIVE_UNITS,
        "tag_ops": TAG_OPS,
        "membership_ops": MEMBERSHIP_OPS,
        "message_ops": MESSAGE_OPS,
        "message_channels": MESSAGE_CHANNELS,
        "property_ops": PROPERTY_OP_CHOICES,
    }


def _save(request, form, builder, *, segment, locked) -> tuple[Segment | None, bool]:
    """(the saved segment or None, whether a conflict refused it)."""
    tree = builder.tree(strict=True)
    if not form.is_valid() or builder.has_errors:
        return None, False
    data = form.cleaned_data
    if tree is None and not locked:
        builder.error = "Add at least one complete condition: this kind of segment needs rules."
        return None, False
    try:
        if segment is None:
            saved = services.segment_create(
                workspace=request.workspace,
                name=data["name"],
                kind=data["kind"],
                rules=tree,
                refresh_every_minutes=data.get("refresh_every_minutes"),
                actor=Actor.from_request(request),
                compute=False,
            )
        else:
            saved = services.segment_update(
                segment=segment,
                name=data["name"],
                rules=tree,
                refresh_every_minutes=data.get("refresh_every_minutes"),
                actor=Actor.from_request(request),
                compute=False,
            )
    except RuleError as e:
        if e.path in form.fields:
            form.add_error(e.path, _capital(e.message))
        elif e.path in ("name", "kind", "refresh_every_minutes"):
            form.add_error(None, _capital(e.message))
        else:
            builder.attach(e)
        return None, False
    except services.SegmentConflict as e:
        form.add_error(None, str(e))
        return None, True
    return saved, False


def _builder_page(request, *, segment: Segment | None = None, source: Segment | None = None):
    """New, edit and duplicate: one page. Its buttons (add, remove, AND / OR) post back
    here with `builder=<action>` and get the tree re-rendered; Save posts without one."""
    ws = request.workspace
    catalogue = _catalogue(ws, exclude=segment)
    locked = _rules_locked(segment)
    conflict = False
    if request.method == "POST":
        form = SegmentForm(request.POST, segment=segment)
        builder = RuleBuilder.from_post(request.POST, catalogue)
        action = request.POST.get("builder", "")
        if action:
            builder.apply(action)
            context = _builder_context(
                request, form=form, builder=builder, segment=segment, source=source, locked=locked
            )
            if request.htmx:
                context |= _preview(request, builder) | {"oob": True}
                builder.prepare()
                return render(request, f"{BUILDER}#structure", context)
            return render(request, BUILDER, context)
        saved, conflict = _save(request, form, builder, segment=segment, locked=locked)
        if saved is not None:
            verb = "saved" if segment else "created"
            messages.success(request, f"Segment “{saved.name}” {verb}.")
            return redirect("segment_detail", segment_id=saved.pk)
    else:
        origin = segment or source
        initial = {}
        if segment:
            initial = {"name": segment.name, "refresh_every_minutes": segment.refresh_every_minutes}
        elif source:
            initial = {
                "name": f"Copy of {source.name}"[:200],
                "kind": SegmentKind.SNAPSHOT if source.predefined else source.kind,
                "refresh_every_minutes": source.refresh_every_minutes or 60,
            }
        else:
            initial = {"refresh_every_minutes": 60}
        rules = origin.rules if origin else _posted_rules(request)
        form = SegmentForm(initial=initial, segment=segment)
        try:
            builder = RuleBuilder.from_rules(rules, catalogue)
        except RuleError as e:
            builder = RuleBuilder.empty(catalogue)
            builder.error = f"The stored rules cannot be shown: {e.message}"
    context = _builder_context(
        request,
        form=form,
        builder=builder,
        segment=segment,
        source=source,
        locked=locked,
        conflict=conflict,
    )
    return render(request, BUILDER, context)


def _posted_rules(request):
    """?rules=<a JSON rule tree>: a new segment from the People page's filters ("Save as
    segment"). Unreadable JSON starts an empty builder; bad rules are shown at their row."""
    text = request.GET.get("rules", "")
    if not text or len(text) > MAX_JSON_BYTES:
        return None
    try:
        rules = json.loads(text)
    except ValueError:
        return None
    return rules if isinstance(rules, dict) else None


@role_required(MANAGE_SEGMENTS)
def segment_new(request):
    return _builder_page(request)


@role_required(MANAGE_SEGMENTS)
def segment_edit(request, segment_id):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    return _builder_page(request, segment=segment)


@role_required(MANAGE_SEGMENTS)
def segment_duplicate(request, segment_id):
    """The builder filled with a segment's rules, saved as a new segment: how a real-time
    or built-in segment gets different rules."""
    source = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    if source.kind not in RULE_KINDS:
        messages.info(request, "Only segments with rules can be duplicated.")
        return redirect("segment_detail", segment_id=source.pk)
    return _builder_page(request, source=source)


@require_POST
@role_required(MANAGE_SEGMENTS)
def segment_preview(request):
    """The live count of the builder's form (htmx, debounced): a partial."""
    builder = RuleBuilder.from_post(request.POST, _catalogue(request.workspace))
    context = _preview(request, builder) | {"builder": builder, "oob_errors": True}
    return render(request, f"{BUILDER}#count", context)


# --- Why in or out ----------------------------------------------------------------------------


def _why(request, segment: Segment, now: datetime) -> dict | None:
    """The segment page's "why is this person in or out": ?person=<external id, email,
    phone or name> or ?person_id=<Herald id>."""
    ws = request.workspace
    text = request.GET.get("person", "").strip()[:200]
    person_id = request.GET.get("person_id", "").strip()
    if not text and not person_id:
        return None
    if has_forbidden_character(text + person_id):  # nobody's id or name holds a NUL
        return {"query": "", "error": "Nobody in this workspace matches that."}
    person = None
    try:
        if person_id:
            person = people_selectors.get_person_by_id_or_404(workspace=ws, pk=person_id)
        else:
            person = people_selectors.get_person_or_404(workspace=ws, external_id=text)
    except Http404:
        if text:
            matches = list(people_selectors.person_list(workspace=ws, q=text)[:2])
            if len(matches) > 1:
                return {"query": text, "error": f"Several people match “{text}”: use an ID."}
            person = matches[0] if matches else None
    if person is None:
        return {"query": text or person_id, "error": "Nobody in this workspace matches that."}
    return {
        "query": text or person.external_id,
        "person": person,
        "explanation": explain_segment(segment, person, workspace=ws, now=now),
    }


# --- A segment's page -------------------------------------------------------------------------


@role_required(VIEW)
def segment_detail(request, segment_id):
    ws = request.workspace
    segment = selectors.get_segment_or_404(workspace=ws, pk=segment_id)
    now = timezone.now()
    why = _why(request, segment, now)
    if request.htmx and request.htmx.target == "why":
        return render(request, f"{DETAIL}#why", {"segment": segment, "why": why})
    words, rules_error = _words(segment)
    rows, next_after, count, members_error = [], None, Counted(segment.people_count, True), ""
    try:
        people = selectors.segment_people(segment=segment, now=now)
        if not segment.stores_members:
            count = count_people(people)
        after = _id(request.GET.get("after", ""))
        if after is not None:
            people = people.filter(id__lt=after)
        rows = list(people.select_related("company").order_by("-id")[: PAGE_SIZE + 1])
    except RuleError as e:
        members_error = f"The members cannot be listed: {e.message}"
    if len(rows) > PAGE_SIZE:
        rows, next_after = rows[:PAGE_SIZE], rows[PAGE_SIZE - 1].pk
    history = selectors.refresh_history(segment=segment) if segment.stores_members else []
    realtime = {}
    if segment.kind == SegmentKind.REALTIME:
        realtime = {
            "freshness": selectors.realtime_freshness(segment=segment),
            "chart": selectors.transitions_per_hour(segment=segment, now=now),
        }
    return render(
        request,
        DETAIL,
        {
            "segment": segment,
            "words": words,
            "rules_error": rules_error,
            "rows": rows,
            "next_after": next_after,
            "count": count,
            "members_error": members_error,
            "history": history,
            "realtime": realtime,
            "used_by": selectors.segment_users(workspace=ws).get(segment.pk, []),
            "why": why,
            "can_edit": _can_edit(request),
            "locked": _rules_locked(segment),
            "failed": segment.refresh_status == RefreshStatus.FAILED,
            "pending": selectors.pending_refresh(segment=segment),
            "now": now,
            "audiences": audience_selectors.audience_list(workspace=ws)[:500],
        },
    )


@require_POST
@role_required(MANAGE_SEGMENTS)
def segment_to_audience(request, segment_id):
    """Add the segment's people to a target audience (created if new), or remove them: one
    statement whatever their number, reporting how many memberships changed."""
    ws = request.workspace
    segment = selectors.get_segment_or_404(workspace=ws, pk=segment_id)
    name = " ".join((request.POST.get("audience") or "").split())
    action = request.POST.get("action")
    back = redirect("segment_detail", segment_id=segment.pk)
    if action not in {"add", "remove"} or not name:
        messages.error(request, "Choose an audience (or type a new name) and add or remove.")
        return back
    try:
        changed = services.segment_to_audience(
            segment=segment, audience_name=name, action=action, actor=Actor.from_request(request)
        )
    except RuleError as e:
        messages.error(request, _capital(e.message) + ".")
        return back
    except ValueError as e:
        messages.error(request, str(e))
        return back
    audience = audience_selectors.get_audience_by_name(workspace=ws, name=name)
    label = audience.name if audience else name
    if action == "add":
        messages.success(
            request,
            f"Added {changed:,} people to the audience “{label}” "
            f"({audience.people_count:,} members now).",
        )
    else:
        messages.success(request, f"Removed {changed:,} people from the audience “{label}”.")
    return back


@require_POST
@role_required(MANAGE_SEGMENTS)
def segment_members_remove(request, segment_id):
    """Take the ticked people out of a static segment."""
    ws = request.workspace
    segment = selectors.get_segment_or_404(workspace=ws, pk=segment_id)
    ids = [i for i in map(_id, request.POST.getlist("person")) if i is not None]
    if not ids:
        messages.error(request, "Tick the people to remove first.")
        return redirect("segment_detail", segment_id=segment.pk)
    people = people_selectors.person_list(workspace=ws).filter(id__in=ids)
    try:
        changed = services.static_members_change(
            segment=segment, people=people, add=False, actor=Actor.from_request(request)
        )
    except services.SegmentConflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Removed {changed:,} people from “{segment.name}”.")
    return redirect("segment_detail", segment_id=segment.pk)


@require_POST
@role_required(MANAGE_SEGMENTS)
def segment_refresh(request, segment_id):
    """Recompute as a job: stored rule segments refresh (entries and exits), others
    recount; the page shows it waiting and running, then the new count."""
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    services.segment_recount_start(segment=segment, actor=Actor.from_request(request))
    return redirect("segment_detail", segment_id=segment.pk)


def _finished_message(request, refresh) -> None:
    if refresh.status == RefreshStatus.FAILED:
        messages.error(request, f"The refresh of “{refresh.segment.name}” failed: {refresh.error}")
    elif refresh.segment.stores_members and refresh.segment.rules:
        messages.success(
            request,
            f"Refreshed “{refresh.segment.name}”: {refresh.entered:,} entered, "
            f"{refresh.exited:,} left, {refresh.people_count:,} people.",
        )
    else:
        messages.success(
            request, f"Counted “{refresh.segment.name}”: {refresh.people_count:,} people."
        )


@require_GET
@role_required(VIEW)
def segment_refresh_status(request, segment_id):
    """The polled state of a segment's pending refresh: the segment page's banner (which
    reloads the page once the refresh ends, with its outcome as a message) or, with
    ?row=1, the segment list's row."""
    ws = request.workspace
    segment = selectors.get_segment_or_404(workspace=ws, pk=segment_id)
    pending = selectors.pending_refresh(segment=segment)
    if request.GET.get("row"):
        segment.used_by = selectors.segment_users(workspace=ws).get(segment.pk, [])
        segment.pending = pending
        return render(request, "segments/segment_list.html#row", {"s": segment})
    if pending is None:
        refresh = selectors.last_refresh(segment=segment)
        if refresh is not None:
            _finished_message(request, refresh)
        response = render(request, f"{DETAIL}#pending", {"segment": segment, "pending": None})
        response["HX-Refresh"] = "true"
        return response
    return render(
        request,
        f"{DETAIL}#pending",
        {"segment": segment, "pending": pending, "now": timezone.now()},
    )


@require_POST
@role_required(MANAGE_SEGMENTS)
def segment_delete(request, segment_id):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    try:
        services.segment_delete(segment=segment, actor=Actor.from_request(request))
    except services.SegmentConflict as e:
        messages.error(request, str(e))
        return redirect("segment_detail", segment_id=segment.pk)
    messages.success(request, f"Segment “{segment.name}” deleted.")
    return redirect("segment_list")


# --- People page: the selection into a static segment -----------------------------------------


def _segment_named(workspace, name: str) -> Segment | None:
    # All segments for a name that reads as an id, which the list would search by id.
    candidates = selectors.segment_list(
        workspace=workspace, q=None if _ID.fullmatch(name) else name
    )
    return next((s for s in candidates if s.name.lower() == name.lower()), None)


@require_POST
@role_required(MANAGE_SEGMENTS)
def people_bulk_segment(request):
    """Add the People page's selection ("all N matching" included) to a static segment,
    created if the name is new, or remove it from one."""
    ws = request.workspace
    view = FilteredPeople(request, request.POST)
    people = selected_people(request, view)
    back = redirect(f"{reverse('people_list')}?{view.querystring}")
    name = " ".join((request.POST.get("segment") or "").split())
    action = request.POST.get("action")
    if action not in {"add", "remove"} or not name:
        messages.error(request, "Choose a static segment (or type a new name) and add or remove.")
        return back
    segment = _segment_named(ws, name)
    if segment is not None and segment.kind != SegmentKind.STATIC:
        messages.error(
            request,
            f"“{segment.name}” is a {segment.get_kind_display().lower()} segment: its members "
            "follow its rules. Choose a static segment or a new name.",
        )
        return back
    if action == "remove":
        if segment is None:
            messages.error(request, f"There is no static segment named “{name}”.")
            return back
        changed = services.static_members_change(
            segment=segment, people=people, add=False, actor=Actor.from_request(request)
        )
        messages.success(request, f"Removed {changed:,} people from “{segment.name}”.")
        return back
    created = segment is None
    if created:
        try:
            segment = services.segment_create(
                workspace=ws, name=name, kind=SegmentKind.STATIC, actor=Actor.from_request(request)
            )
        except (RuleError, services.SegmentConflict) as e:
            messages.error(request, _capital(getattr(e, "message", str(e))))
            return back
    changed = services.static_members_change(
        segment=segment, people=people, add=True, actor=Actor.from_request(request)
    )
    messages.success(
        request,
        f"Added {changed:,} people to the {'new ' if created else ''}static segment "
        f"“{segment.name}” ({segment.people_count:,} members).",
    )
    return back
