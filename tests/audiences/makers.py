"""Objects of the audience import for tests elsewhere (tests/urlwalk.py)."""

from django.core.files.base import ContentFile

from accounts.audit import Actor
from audiences.import_services import audience_import_run, audience_import_start


def finished_dry_run(workspace) -> int:
    """The id of a finished audience import dry run of `workspace` with an error report,
    so that every import URL (page, progress, report, import for real) has its object."""
    job = audience_import_start(
        workspace=workspace,
        uploaded_by=None,
        file=ContentFile(b"nobody;Walk\n", name="walk.csv"),
        mode="per_row",
        identifier="external_id",
        dry_run=True,
        actor=Actor(system="tests"),
    )
    return audience_import_run(import_id=job.id).id
