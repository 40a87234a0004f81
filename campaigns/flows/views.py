"""The flow pages: the list, a flow's page (its entry, its steps as a tree with the
people at and through each, failures, publish / pause / resume / archive) and its run
log searchable by person."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import Actor
from accounts.models import role_at_least
from accounts.pages import keyset_page
from accounts.permissions import MANAGE_CAMPAIGNS, VIEW, role_required
from campaigns.flows import services
from campaigns.flows.selectors import flow_counts
from campaigns.flows.validation import successors
from campaigns.models import OPEN_RUN, Flow, FlowRun, RunStatus
from people.selection import page_key

STATUS_CLASSES = {"draft": "text-bg-secondary", "live": "text-bg-success",
                  "paused": "text-bg-warning", "archived": "text-bg-dark"}  # fmt: skip
RUN_CLASSES = {"active": "text-bg-primary", "waiting": "text-bg-info", "done": "text-bg-success",
               "exited": "text-bg-light border", "failed": "text-bg-danger"}  # fmt: skip


def _flow(request, flow_id) -> Flow:
    try:
        return Flow.objects.for_workspace(request.workspace).get(pk=flow_id)
    except Flow.DoesNotExist:
        raise Http404("No such flow in this workspace.") from None


def _can_edit(request) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership) and role_at_least(membership.role, MANAGE_CAMPAIGNS)


@require_GET
@role_required(VIEW)
def flow_list(request):
    flows = Flow.objects.for_workspace(request.workspace).annotate(
        open_runs=Count("runs", filter=Q(runs__status__in=OPEN_RUN)),
        failed_runs=Count("runs", filter=Q(runs__status=RunStatus.FAILED)),
    )  # fmt: skip
    return render(request, "flows/flow_list.html", {
        "flows": flows, "status_classes": STATUS_CLASSES,
    })  # fmt: skip


STEP_LABELS = {
    "send": "Send", "wait": "Wait", "wait_for_event": "Wait for an event", "branch": "Branch",
    "split": "Random split", "add_to_audience": "Add to audience",
    "remove_from_audience": "Remove from audience", "add_tag": "Add tag",
    "remove_tag": "Remove tag", "add_to_dnc": "Add to Do Not Contact",
    "set_attribute": "Set attribute", "exit": "Exit",
}  # fmt: skip


def _tree(steps: list[dict], counts: dict) -> list[dict]:
    """The steps in walking order from the first, each with its depth (a branch's paths
    indented under it) and its counts; a path joining a step shown above is a row naming
    it (`joins`)."""
    by_id = {s["id"]: s for s in steps}
    seen, rows = set(), []

    def walk(step_id, depth, label=""):
        if step_id not in by_id:
            return
        if step_id in seen:
            if label:  # a branch's path that joins a step shown already
                rows.append({"joins": by_id[step_id], "depth": min(depth, 6), "via": label})
            return
        seen.add(step_id)
        step = by_id[step_id]
        rows.append({"step": step, "depth": min(depth, 6), "via": label,
                     "kind": STEP_LABELS.get(step["type"], step["type"]),
                     "counts": counts.get(step_id, {"at": 0, "through": 0})})  # fmt: skip
        if step["type"] in ("branch", "wait_for_event"):
            walk(step.get("yes"), depth + 1, "yes")
            walk(step.get("no"), depth + 1, "no")
        elif step["type"] == "split":
            for i, path in enumerate(step.get("paths") or ()):
                walk(path["next"], depth + 1, f"path {i + 1} ({path['percent']}%)")
        else:
            for target in successors(step):
                walk(target, depth)

    if steps:
        walk(steps[0]["id"], 0)
    return rows


@require_GET
@role_required(VIEW)
def flow_detail(request, flow_id):
    flow = _flow(request, flow_id)
    version = flow.versions.order_by("-number").first()
    counts = {c["step"]: c for c in flow_counts(flow)}
    steps = version.steps if version else flow.steps
    runs = dict(FlowRun.objects.filter(flow=flow).values("status").annotate(n=Count("id"))
                .values_list("status", "n"))  # fmt: skip
    failures = list(FlowRun.objects.filter(flow=flow, status=RunStatus.FAILED)
                    .select_related("person").order_by("-updated_at")[:20])  # fmt: skip
    return render(request, "flows/flow_detail.html", {
        "flow": flow, "version": version, "tree": _tree(steps, counts), "runs": runs,
        "failures": failures, "can_edit": _can_edit(request),
        "open_runs": runs.get("active", 0) + runs.get("waiting", 0),
        "status_class": STATUS_CLASSES.get(flow.status, "text-bg-secondary"),
        "draft_differs": bool(version) and flow.steps != [
            {k: v for k, v in s.items() if k != "campaign"} for s in version.steps],
    })  # fmt: skip


def _lifecycle(service, done: str):
    @require_POST
    @role_required(MANAGE_CAMPAIGNS)
    def view(request, flow_id):
        flow = _flow(request, flow_id)
        try:
            service(flow=flow, actor=Actor.from_request(request))
        except services.FlowConflict as e:
            messages.error(request, str(e))
        except ValidationError as e:
            problems = "; ".join(f"{k}: {v[0]}" for k, v in e.message_dict.items())
            messages.error(request, f"Not published: {problems}")
        else:
            messages.success(request, done)
        return redirect("flow_detail", flow_id=flow.pk)

    return view


flow_publish = _lifecycle(services.flow_publish, "Published: new entrants take this version; "
                          "people already in keep theirs.")  # fmt: skip
flow_pause = _lifecycle(services.flow_pause, "Paused: people stay where they are until you "
                        "resume it.")  # fmt: skip
flow_resume = _lifecycle(services.flow_resume, "Resumed: people move on from where they were.")
flow_archive = _lifecycle(services.flow_archive, "Archived: nobody enters or moves on any more.")


@require_GET
@role_required(VIEW)
def flow_runs(request, flow_id):
    """The run log: who is where, with each step's time and outcome; by person (external
    id or email) and status."""
    flow = _flow(request, flow_id)
    runs = (FlowRun.objects.filter(flow=flow).select_related("person", "version")
            .prefetch_related("log"))  # fmt: skip
    search = request.GET.get("q", "").strip()[:200]
    status = request.GET.get("status", "")
    if search:
        runs = runs.filter(Q(person__external_id__istartswith=search)
                           | Q(person__email__istartswith=search))  # fmt: skip
    if status in RunStatus.values:
        runs = runs.filter(status=status)
    after = page_key(request.GET.get("after", ""))
    before = page_key(request.GET.get("before", "")) if after is None else None
    page = keyset_page(runs, order=("-id",), after=after, before=before, size=50)
    return render(request, "flows/flow_runs.html", {
        "flow": flow, "page": page, "q": search, "status": status,
        "statuses": RunStatus.choices, "run_classes": RUN_CLASSES,
    })  # fmt: skip

