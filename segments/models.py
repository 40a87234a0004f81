"""Segments: who is in a group of people, by rules (snapshot, real-time, query), by hand
(static), or everybody. Membership of the stored kinds lives in SegmentMember."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from accounts.models import Workspace, WorkspaceOwned
from people.models import Person


class SegmentKind(models.TextChoices):
    SNAPSHOT = "snapshot", "Snapshot"
    REALTIME = "realtime", "Real-time"
    STATIC = "static", "Static list"
    QUERY = "query", "Scheduled query"
    EVERYONE = "everyone", "Everyone"


# Kinds whose members are stored (and refreshed) rather than computed when asked.
STORED_KINDS = {SegmentKind.REALTIME, SegmentKind.STATIC, SegmentKind.QUERY}
RULE_KINDS = {SegmentKind.SNAPSHOT, SegmentKind.REALTIME, SegmentKind.QUERY}


class RefreshStatus(models.TextChoices):
    NEVER = "never", "Never computed"
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Refreshing"
    OK = "ok", "Up to date"
    FAILED = "failed", "Failed"


class Segment(WorkspaceOwned):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SegmentKind.choices)
    rules = models.JSONField(null=True, blank=True)
    refresh_every_minutes = models.PositiveIntegerField(null=True, blank=True)
    predefined = models.CharField(
        max_length=40, blank=True, default="", help_text="Key of a built-in segment, or empty."
    )
    # a segment of the team's own people (staff, seed lists): campaign test pickers list
    # these first
    internal = models.BooleanField(default=False)
    people_count = models.BigIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    refresh_status = models.CharField(
        max_length=16, choices=RefreshStatus.choices, default=RefreshStatus.NEVER
    )
    refresh_error = models.TextField(blank=True, default="")
    next_refresh_at = models.DateTimeField(null=True, blank=True)
    # real-time segments whose rules hold for a time: up to when the clock has moved their
    # windows (segments.realtime.recheck_time_windows); null: never, re-check whole
    clock_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="segment_unique_name_ci"),
            models.UniqueConstraint(
                fields=["workspace", "predefined"],
                condition=~models.Q(predefined=""),
                name="segment_unique_predefined",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "next_refresh_at"], name="segment_due_refresh"),
        ]
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def stores_members(self) -> bool:
        return self.kind in STORED_KINDS


class SegmentMember(WorkspaceOwned):
    """A person's membership of a stored segment: entered and, once out, exited.

    Written by the hundred thousand in one statement, so the keys are kept by Django (no
    database foreign-key checks), as for audience members.
    """

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="memberships", db_constraint=False
    )
    person = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="segment_memberships", db_constraint=False
    )
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "person"], name="segmentmember_unique")
        ]
        indexes = [
            models.Index(
                fields=["segment", "person"],
                condition=models.Q(exited_at__isnull=True),
                name="segmentmember_current",
            ),
            models.Index(fields=["workspace", "person"], name="segmentmember_ws_person"),
        ]


class SegmentSnapshot(WorkspaceOwned):
    """The members of a snapshot segment frozen for one requester (a campaign or flow)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="snapshots")
    requester = models.CharField(max_length=100, help_text="e.g. campaign:12 or flow:3")
    rules = models.JSONField(help_text="The rules as they were when frozen.")
    people_count = models.BigIntegerField(default=0)
    frozen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "requester"], name="snapshot_unique_requester"
            )
        ]


class SnapshotMember(WorkspaceOwned):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    snapshot = models.ForeignKey(
        SegmentSnapshot, on_delete=models.CASCADE, related_name="members", db_constraint=False
    )
    person = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "person"], name="snapshotmember_unique")
        ]


# A refresh (or count) asked for and not finished yet.
PENDING = (RefreshStatus.QUEUED, RefreshStatus.RUNNING)


class SegmentRefresh(WorkspaceOwned):
    """One computation of a segment, a job row: a stored segment's refresh (its history is
    shown on its page) or a recount of a computed one. Queued by a save or "Refresh now"
    and run by a worker (segments.services.segment_recount_start), or run in the request
    by the API (segment_refresh)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="refreshes")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Deliveries that started it: a worker that died mid-refresh leaves it to be delivered
    # again (acks_late), at most accounts.jobs.MAX_ATTEMPTS times.
    attempts = models.PositiveSmallIntegerField(default=0)
    # When it was asked for, then when a worker began it (the same for inline runs).
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RefreshStatus.choices)
    entered = models.BigIntegerField(default=0)
    exited = models.BigIntegerField(default=0)
    people_count = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["segment", "-started_at"], name="segmentrefresh_recent")]
        constraints = [
            # One refresh waiting or running per segment: asking again joins it.
            models.UniqueConstraint(
                fields=["segment"],
                condition=models.Q(status__in=["queued", "running"]),
                name="segmentrefresh_one_pending",
            )
        ]


class TransitionKind(models.TextChoices):
    ENTERED = "entered", "Entered"
    EXITED = "exited", "Exited"


class CurrentTransactionId(models.Func):
    """pg_current_xact_id() as a bigint (an xid8 is 64 bits: the epoch and the xid)."""

    template = "(pg_current_xact_id()::text::bigint)"
    output_field = models.BigIntegerField()


class SegmentTransition(WorkspaceOwned):
    """A person entering or leaving a stored segment: the stream flows read with a cursor
    (segments.transitions.read_transitions).

    txid is the id of the transaction that wrote the row (pg_current_xact_id(), the
    column's database default). Ids are taken when a row is inserted, not when it
    commits, so a reader going by id alone could pass a row that commits later; a reader
    goes by (txid, id) and only below the oldest transaction still running, where no row
    can appear any more.
    """

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="transitions", db_constraint=False
    )
    person = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    kind = models.CharField(max_length=8, choices=TransitionKind.choices)
    at = models.DateTimeField()
    txid = models.BigIntegerField(editable=False, db_default=CurrentTransactionId())

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "txid", "id"], name="transition_ws_cursor"),
            models.Index(fields=["segment", "at"], name="transition_segment_at"),
            models.Index(fields=["person"], name="transition_person"),
        ]
