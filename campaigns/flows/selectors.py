"""Reading flows: the people at and through each step (the API and the flow page)."""

from django.db.models import Count

from campaigns.models import OPEN_RUN, Flow, FlowRun, FlowRunStep


def flow_counts(flow: Flow) -> list[dict]:
    """People at and through each step of the newest version (two grouped counts)."""
    version = flow.versions.order_by("-number").first()
    if version is None:
        return []
    at = dict(
        FlowRun.objects.filter(flow=flow, status__in=OPEN_RUN, version=version)
        .values("step").annotate(n=Count("id")).values_list("step", "n")
    )  # fmt: skip
    through = dict(
        FlowRunStep.objects.filter(run__flow=flow, run__version=version)
        .values("step").annotate(n=Count("id")).values_list("step", "n")
    )  # fmt: skip
    return [{"step": s["id"], "type": s["type"], "at": at.get(s["id"], 0),
             "through": through.get(s["id"], 0)} for s in version.steps]  # fmt: skip
