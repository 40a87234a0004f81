"""Reads for the pages and the API about audience import jobs."""

from dataclasses import dataclass

from django.db.models import QuerySet

from audiences.models import AudienceImport, TargetAudience


@dataclass(frozen=True)
class CreatedAudience:
    name: str
    audience: TargetAudience | None  # None for a dry run's would-be audience


def created_audiences(job: AudienceImport) -> list[CreatedAudience]:
    """The audiences the job created (or, for a dry run, would create), in file order,
    with the audience itself when it exists (one query)."""
    names = list(job.audiences_created or [])
    if not names or job.dry_run:
        return [CreatedAudience(name, None) for name in names]
    existing = {
        a.name.lower(): a
        for a in TargetAudience.objects.for_workspace(job.workspace_id).filter(name__in=names)
    }
    return [CreatedAudience(name, existing.get(name.lower())) for name in names]


def recent_imports(*, workspace, limit: int = 10) -> QuerySet[AudienceImport]:
    return AudienceImport.objects.for_workspace(workspace).order_by("-created_at", "-id")[:limit]
