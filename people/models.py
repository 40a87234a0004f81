"""People: profiles, typed custom attributes, events, tags, companies, Do Not Contact.

Built-in fields are columns; custom attributes live in `attributes` (JSONB) and are typed by
the workspace's attribute catalogue (AttributeDefinition). Every composite index starts
with workspace_id (see ARCHITECTURE.md, Tenancy).
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import OpClass
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower, Now, Upper

from accounts.jobs import ImportJob
from accounts.models import Workspace, WorkspaceOwned
from people.normalize import validate_person_time_zone

# Person's built-in text fields and the words people read for them: the one list of them.
# Company is Company.name through the FK, so it stays last (people/imports/rows.py and
# people/admin.py count on that). With created_at they are the rule tree's built-in
# attributes, see people.attributes.BUILTIN_ATTRIBUTES.
BUILTIN_FIELD_LABELS = {
    "external_id": "External ID",
    "email": "Email",
    "phone": "Phone",
    "first_name": "First name",
    "last_name": "Last name",
    "gender": "Gender",
    "country": "Country",
    "city": "City",
    "address": "Address",
    "time_zone": "Time zone",
    "company": "Company",
}
BUILTIN_FIELDS = list(BUILTIN_FIELD_LABELS)


class AttributeType(models.TextChoices):
    STRING = "string", "Text"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Yes / no"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date and time"
    LIST = "list", "List of texts"


class AttributeDefinition(WorkspaceOwned):
    """One custom attribute of a workspace: its type is enforced on every write."""

    key = models.CharField(max_length=100)
    label = models.CharField(max_length=150, blank=True)
    type = models.CharField(max_length=16, choices=AttributeType.choices)
    inferred = models.BooleanField(
        default=True, help_text="Typed from the first value seen rather than declared."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="attrdef_unique_key")
        ]
        ordering = ["key"]

    def __str__(self):
        return self.label or self.key


class Company(WorkspaceOwned):
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="company_unique_name")
        ]
        ordering = ["name"]
        verbose_name_plural = "companies"

    def __str__(self):
        return self.name


class Person(WorkspaceOwned):
    # Every index of people starts with workspace_id; the key needs none of its own.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    external_id = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="", help_text="E.164")
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    gender = models.CharField(max_length=32, blank=True, default="")
    country = models.CharField(max_length=100, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    address = models.CharField(max_length=255, blank=True, default="")
    # An IANA name in its canonical spelling (people.normalize.normalize_time_zone), or ""
    # for the workspace's. db_default: set-based writers that predate the field (COPY,
    # INSERT ... SELECT) name only the columns they know.
    time_zone = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        validators=[validate_person_time_zone], help_text="IANA name; empty: the workspace's",
    )  # fmt: skip
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="people"
    )
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "external_id"], name="person_unique_external_id"
            )
        ]
        indexes = [
            # keyset pagination of the People page (newest first)
            models.Index(fields=["workspace", "-id"], name="person_ws_id_desc"),
            # text_pattern_ops: exact lookups and the search's prefix LIKE (migration 0008)
            models.Index(
                F("workspace"), OpClass(F("email"), name="text_pattern_ops"), name="person_ws_email"
            ),
            models.Index(fields=["workspace", "phone"], name="person_ws_phone"),
            # quick filters compare case-insensitively (UPPER(city) = UPPER(%s))
            # the city filter's index is PostgreSQL-only (migration 0004: covering, in id order)
            models.Index(F("workspace"), Upper("country"), name="person_ws_upper_country"),
            models.Index(F("workspace"), Upper("gender"), name="person_ws_upper_gender"),
            models.Index(fields=["workspace", "company"], name="person_ws_company"),
        ]
        verbose_name_plural = "people"

    def __str__(self):
        return self.full_name or self.email or self.external_id

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class PushPlatform(models.TextChoices):
    IOS = "ios", "iOS"
    ANDROID = "android", "Android"
    WEB = "web", "Web"


class PushToken(WorkspaceOwned):
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="push_tokens")
    platform = models.CharField(max_length=16, choices=PushPlatform.choices)
    token = models.CharField(max_length=512)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "platform", "token"], name="pushtoken_unique"
            )
        ]
        indexes = [models.Index(fields=["workspace", "person"], name="pushtoken_ws_person")]


class Event(WorkspaceOwned):
    """Something a person did. Built for tens of millions of rows per workspace."""

    # Every index of this table starts with workspace_id, so the foreign key needs no index
    # of its own (one less index to maintain on every ingested event).
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )

    id = models.BigAutoField(primary_key=True)
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=200)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # "events X of person P in a window" and the profile timeline
            models.Index(
                fields=["workspace", "person", "name", "-occurred_at"], name="event_person_name_at"
            ),
            models.Index(fields=["workspace", "person", "-occurred_at"], name="event_person_at"),
            # "people with at least N events X in a window"
            models.Index(
                fields=["workspace", "name", "occurred_at", "person"], name="event_name_at_person"
            ),
        ]


class EventType(WorkspaceOwned):
    """The event catalogue: every event name seen in the workspace (feeds the builder)."""

    name = models.CharField(max_length=200)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="eventtype_unique_name")
        ]
        ordering = ["name"]


class Tag(WorkspaceOwned):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="tag_unique_name_ci")
        ]
        ordering = ["name"]

    def __str__(self):
        return self.name


class TagSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    IMPORT = "import", "Import"
    API = "api", "API"
    FLOW = "flow", "Flow"
    SEGMENT = "segment", "Segment"


class PersonTag(WorkspaceOwned):
    # Written by the hundred thousand (imports, "all N matching"): as for audience members,
    # the keys are kept by Django alone (no database foreign-key checks at commit), and the
    # composite indexes below serve the lookups the single-column ones would.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    person = models.ForeignKey(
        Person,
        on_delete=models.CASCADE,
        related_name="person_tags",
        db_constraint=False,
        db_index=False,
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, related_name="person_tags", db_constraint=False
    )
    source = models.CharField(max_length=16, choices=TagSource.choices, default=TagSource.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["person", "tag"], name="persontag_unique")]
        indexes = [
            models.Index(fields=["workspace", "tag", "person"], name="persontag_ws_tag_person")
        ]


class ContactChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"


class DncSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    IMPORT = "import", "Import"
    FLOW = "flow", "Flow"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe link"
    BOUNCE = "bounce", "Bounce"
    API = "api", "API"


class DoNotContact(WorkspaceOwned):
    """An address that must never be contacted on a channel. Addresses are normalized."""

    channel = models.CharField(max_length=8, choices=ContactChannel.choices)
    address = models.CharField(max_length=512)
    reason = models.CharField(max_length=255, blank=True, default="")
    source = models.CharField(max_length=16, choices=DncSource.choices, default=DncSource.MANUAL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "channel", "address"], name="dnc_unique_address"
            )
        ]
        ordering = ["-created_at", "-id"]
        verbose_name = "Do Not Contact entry"
        verbose_name_plural = "Do Not Contact entries"


class ContactImport(ImportJob):
    """A contact CSV import: uploaded -> analyzed -> confirmed -> run by a Celery job. Each
    stage is a run of the job (queued -> running -> ...): attempts count per stage."""

    class Stage(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        ANALYZED = "analyzed", "Analyzed"
        CONFIRMED = "confirmed", "Confirmed"

    class Policy(models.TextChoices):
        SKIP = "skip", "Skip existing people"
        OVERWRITE = "overwrite", "Overwrite existing people"
        FILL_EMPTY = "fill_empty", "Fill empty fields only"

    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.UPLOADED)
    # What analysis found and what the user chose (encoding, separator, mapping, dedupe
    # key, policy, tags).
    analysis = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    created_count = models.BigIntegerField(default=0)
    updated_count = models.BigIntegerField(default=0)
    skipped_count = models.BigIntegerField(default=0)

    class Meta(ImportJob.Meta):
        indexes = [models.Index(fields=["workspace", "-created_at"], name="contactimport_ws")]


class PersonChange(WorkspaceOwned):
    """The outbox of real-time segments: which people changed and what changed, written
    in the transaction of the change (people.changes.record_change), so that a change
    committed is a change evaluated, whether the broker is up or not. segments.realtime
    re-checks the people against the real-time segments whose rules name what changed,
    then marks the row processed in the same transaction as the membership changes.

    keys name what changed: "attr:<key>", "event:<name>", "tag:<name, lower case>",
    "audience:<name, lower case>", "segment:<id>", or "*" (a person created: any rule,
    a negated one too, may now hold for them). everyone: too many people to list (an
    import, a bulk action over "all matching"): the named segments are re-checked whole.
    """

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    person_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    everyone = models.BooleanField(default=False)
    keys = ArrayField(models.CharField(max_length=300))
    created_at = models.DateTimeField(db_default=Now())
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(processed_at__isnull=True),
                name="personchange_pending",
            ),
            models.Index(fields=["workspace", "processed_at"], name="personchange_ws_done"),
        ]


class TrackedMessage(WorkspaceOwned):
    """A Segment-compatible message already taken (its messageId), so that a message sent
    twice counts once (people.tracking). Kept for TRACKED_MESSAGE_DAYS."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    message_id = models.CharField(max_length=255)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "message_id"], name="trackedmessage_unique"
            )
        ]
        indexes = [models.Index(fields=["received_at"], name="trackedmessage_received")]
