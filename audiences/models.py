"""Target audiences: named groups of people, filled from segments, flows, the API, the People
page or CSV files uploaded by ops staff."""

from django.db import models
from django.db.models.functions import Lower

from accounts.jobs import ImportJob
from accounts.models import Workspace, WorkspaceOwned
from people.models import Person


class TargetAudience(WorkspaceOwned):
    name = models.CharField(max_length=200)
    # Kept current by every service that changes the membership (counting 500,000 rows on
    # each list view would not be).
    people_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, help_text="The date the audience was set.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="audience_unique_name_ci")
        ]
        ordering = ["name"]

    def __str__(self):
        return self.name


class MemberSource(models.TextChoices):
    IMPORT = "import", "Import"
    SEGMENT = "segment", "Segment"
    FLOW = "flow", "Flow"
    MANUAL = "manual", "Manual"
    API = "api", "API"


class AudienceMember(WorkspaceOwned):
    """One person in one audience. Keyed by (audience, person) with one more index, by
    person: a membership row is written by the hundred thousand in one INSERT ... SELECT,
    and every index (a surrogate id, a separate workspace or audience index) is paid for
    on each row of every such insert.

    No database foreign keys either: they would double the time of such an insert (one
    lookup per row and per key). The keys are kept by Django alone: rows are only ever
    written by the services from ids they have just selected, and deletes cascade through
    the ORM."""

    pk = models.CompositePrimaryKey("audience_id", "person_id")
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    # "members of audience A": the primary key (audience_id first)
    audience = models.ForeignKey(
        TargetAudience, on_delete=models.CASCADE, related_name="members", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    # "audiences of person P" (profiles, deleting a person): this column's own index
    person = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="audience_memberships", db_constraint=False
    )
    source = models.CharField(
        max_length=16, choices=MemberSource.choices, default=MemberSource.MANUAL
    )
    # For source "segment": which segment put them here (an id without a database key,
    # like the others; a deleted segment leaves the id, shown as "a deleted segment").
    source_segment_id = models.BigIntegerField(null=True, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)


class Identifier(models.TextChoices):
    ID = "id", "Herald ID"
    EXTERNAL_ID = "external_id", "External (partner system) ID"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"


class AudienceImport(ImportJob):
    """An audience CSV import job (shared/API.md: POST /audiences/imports)."""

    class Mode(models.TextChoices):
        SINGLE = "single", "One audience for every person in the file"
        PER_ROW = "per_row", "Each row: identifier; audience name"

    mode = models.CharField(max_length=16, choices=Mode.choices)
    identifier = models.CharField(max_length=16, choices=Identifier.choices)
    audience_name = models.CharField(max_length=200, blank=True, default="")
    replace = models.BooleanField(default=False, help_text="Replace the audiences' members.")
    dry_run = models.BooleanField(default=False)
    # The job's rows in error are counted apart: `invalid` lines could not be read,
    # `unmatched` identifiers name nobody (both are in the error report).
    error_count = None
    matched = models.BigIntegerField(default=0)
    unmatched = models.BigIntegerField(default=0)
    invalid = models.BigIntegerField(default=0)
    audiences_created = models.JSONField(default=list, blank=True)
    # Set when the stored upload and the error report were deleted, some days after the
    # job finished (settings.AUDIENCE_IMPORT_RETENTION_DAYS); `file` and `error_report`
    # are then empty.
    files_removed_at = models.DateTimeField(null=True, blank=True)

    class Meta(ImportJob.Meta):
        indexes = [models.Index(fields=["workspace", "-created_at"], name="audienceimport_ws")]
