"""Users, workspaces (the tenants), memberships with roles, API keys, and the tenancy base.

Every tenant-owned model inherits WorkspaceOwned: a non-null workspace and a manager
whose reads start from `for_workspace(ws)`. Crossing workspaces is `unscoped()`, rare
and loud.
"""

import hashlib
import hmac
import re
import secrets
import unicodedata
import zoneinfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in to Herald; reaches workspaces through memberships."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="May use the Django admin.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email

    def get_full_name(self):
        return self.full_name or self.email

    def get_short_name(self):
        return self.full_name.split(" ")[0] if self.full_name else self.email


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"“{value}” is not a known time zone.") from None


def one_line(value: str) -> str:
    """`value` on one line: every run of whitespace (newlines, tabs, Unicode line and
    paragraph separators) becomes one space, and the ends are trimmed."""
    return " ".join(value.split())


def validate_one_line(value: str) -> None:
    """A name that goes into email subjects and page titles: one line, no control codes."""
    if value != one_line(value):
        raise ValidationError("A name is one line, without tabs or line breaks.")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("A name cannot contain control characters.")


SMS_OPT_OUT_LINE_MAX = 70  # characters: under half of one GSM-7 segment (160)


def validate_opt_out_line(value: str) -> None:
    """The SMS opt-out line: one line (it is appended as the message's last line)."""
    if value != one_line(value) or any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("The opt-out line is one line, without tabs or line breaks.")


CAP_CHANNELS = ("email", "sms", "push", "any")
CAP_MAX_HOURS = 24 * 366
_CAP_LINE = re.compile(
    r"^\s*(?P<channel>[a-z]+)\s+(?P<max>-?\d+)\s*(?:messages?\s+)?(?:per|/|every|in)\s*"
    r"(?P<period>-?\d+)\s*(?P<unit>h|hours?|d|days?|w|weeks?)\s*$",
    re.IGNORECASE,
)
_CAP_UNIT_HOURS = {"h": 1, "d": 24, "w": 168}


def parse_frequency_caps(text: str) -> list[dict]:
    """Frequency caps written one per line, e.g. "email 1 per 16h", "any 3 per 7d", as
    rules {channel, max, period (hours)}. A line that does not read is an error naming it."""
    rules, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _CAP_LINE.match(line)
        if not match:
            errors.append(
                f"Line {number} (“{line.strip()}”): write a cap as “email 1 per "
                "16h” or “any 3 per 7d” (channel email, sms, push or any)."
            )
            continue
        channel = match["channel"].lower()
        maximum, period = int(match["max"]), int(match["period"])
        period *= _CAP_UNIT_HOURS[match["unit"][0].lower()]
        if channel not in CAP_CHANNELS:
            errors.append(
                f"Line {number}: “{match['channel']}” is not a channel: use "
                "email, sms, push or any."
            )
        elif maximum < 1:
            errors.append(
                f"Line {number}: a cap is at least 1 message (to send nothing, "
                "exclude the people instead)."
            )
        elif not 1 <= period <= CAP_MAX_HOURS:
            errors.append(f"Line {number}: the period is 1 hour to 366 days.")
        else:
            rules.append({"channel": channel, "max": maximum, "period": period})
    if errors:
        raise ValidationError(errors)
    return rules


def format_frequency_caps(rules: list[dict]) -> str:
    return "\n".join(f"{r['channel']} {r['max']} per {r['period']}h" for r in rules or [])


def validate_frequency_caps(value) -> None:
    """The stored rules: a list of {channel, max >= 1, period in hours}."""
    if not isinstance(value, list):
        raise ValidationError("Frequency caps are a list of rules.")
    for index, rule in enumerate(value, start=1):
        ok = (
            isinstance(rule, dict) and set(rule) == {"channel", "max", "period"}
            and rule["channel"] in CAP_CHANNELS
            and all(type(rule[k]) is int for k in ("max", "period"))
            and rule["max"] >= 1 and 1 <= rule["period"] <= CAP_MAX_HOURS
        )  # fmt: skip
        if not ok:
            raise ValidationError(
                f"Cap {index}: a rule is a channel (email, sms, push or any), "
                "a max of at least 1 and a period of 1 to 8784 hours."
            )


class Workspace(models.Model):
    """A tenant: everything a customer owns hangs off one workspace."""

    # One line: it is the subject of invitation emails (a line break there would end the
    # header) and the title of every page.
    name = models.CharField(max_length=100, validators=[validate_one_line])
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    # appended on its own line to every campaign SMS (campaigns.unsubscribe.sms_body),
    # e.g. "Reply STOP to opt out"; empty: nothing is added
    sms_opt_out_line = models.CharField(
        "SMS opt-out line", max_length=SMS_OPT_OUT_LINE_MAX, blank=True, default="",
        validators=[validate_opt_out_line],
    )  # fmt: skip
    # at most `max` messages per person per rolling `period` hours, on a channel or across
    # them ("any"): [{"channel": "email", "max": 1, "period": 16}, ...] (campaigns.dispatch)
    frequency_caps = models.JSONField(
        default=list, blank=True, validators=[validate_frequency_caps]
    )
    # campaign messages wait (or are skipped, as the campaign says) while it is between
    # these times in the recipient's time zone; may wrap midnight (21:00-08:00); both or
    # neither; equal is refused (the whole day)
    quiet_hours_start = models.TimeField("Quiet hours from", null=True, blank=True)
    quiet_hours_end = models.TimeField("Quiet hours until", null=True, blank=True)
    # the web origins ("https://shop.example.com") whose pages may call the public banner
    # API with this workspace's publishable key (CORS; campaigns.banners)
    banner_allowed_origins = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if (start is None) != (end is None):
            missing = "quiet_hours_end" if end is None else "quiet_hours_start"
            raise ValidationError({missing: "Give both ends of the quiet hours, or neither."})
        if start is not None and start == end:
            raise ValidationError(
                {
                    "quiet_hours_end": "Quiet hours that start and end at the "
                    "same time cover the whole day: nothing would be sent."
                }
            )
        if start is not None:  # minutes: the freeze compares wall-clock times
            self.quiet_hours_start = start.replace(second=0, microsecond=0)
            self.quiet_hours_end = end.replace(second=0, microsecond=0)

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class WorkspaceQuerySet(models.QuerySet):
    def for_workspace(self, workspace):
        if workspace is None:
            raise ValueError("for_workspace() needs a workspace; use unscoped() to cross them.")
        return self.filter(workspace=workspace)


class WorkspaceManager(models.Manager.from_queryset(WorkspaceQuerySet)):
    """Reads start from a workspace: `Model.objects.for_workspace(ws)`."""

    def unscoped(self):
        """Every workspace's rows. For operator commands, admin and migrations only."""
        return super().get_queryset()


class WorkspaceOwned(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")

    objects = WorkspaceManager()

    class Meta:
        abstract = True


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    OPS = "ops", "Ops"
    VIEWER = "viewer", "Viewer"


# Each role can do everything the roles below it can.
ROLE_RANK = {Role.VIEWER: 0, Role.OPS: 1, Role.MARKETER: 2, Role.ADMIN: 3, Role.OWNER: 4}
ROLE_DESCRIPTIONS = {
    Role.VIEWER: "Reads everything, changes nothing.",
    Role.OPS: "Manages people, tags, Do Not Contact, audiences and imports.",
    Role.MARKETER: "Also builds segments, campaigns and flows.",
    Role.ADMIN: "Also manages workspace settings, the team and API keys.",
    Role.OWNER: "Everything, including other owners.",
}


def role_at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(minimum)]


class Membership(WorkspaceOwned):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user")
        ]
        ordering = ["workspace", "user__email"]

    def __str__(self):
        return f"{self.user} in {self.workspace} ({self.role})"

    def can(self, minimum: str) -> bool:
        return role_at_least(self.role, minimum)


def hash_api_key(raw_key: str, hash_key: str | None = None) -> str:
    """The stored form of `raw_key`, under `hash_key` (default: the first of
    settings.API_KEY_HASH_KEYS, the one new keys are hashed with)."""
    # API keys carry 256 bits of randomness, so a fast keyed hash is enough (a slow
    # password hash would cost milliseconds on every API call for no gain). Keyed with
    # API_KEY_HASH_KEYS rather than SECRET_KEY, so that rotating SECRET_KEY need not
    # revoke every API key (the default, SECRET_KEY and its fallbacks, is what keys made
    # before the setting were hashed with).
    key = hash_key if hash_key is not None else settings.API_KEY_HASH_KEYS[0]
    return hmac.new(key.encode(), raw_key.encode(), hashlib.sha256).hexdigest()


def api_key_hashes(raw_key: str) -> list[str]:
    """`raw_key` hashed under every key of settings.API_KEY_HASH_KEYS, current first."""
    return [hash_api_key(raw_key, key) for key in settings.API_KEY_HASH_KEYS]


class ApiKeyKind(models.TextChoices):
    """What a key may do (shared/API.md, "Auth")."""

    FULL = "full", "Full access"
    READ = "read", "Read-only"
    # Sends tracking data to the Segment-compatible /v1/ endpoints and nothing else: safe
    # to put in a web page or an app (people.tracking).
    WRITE = "write", "Write key (tracking only)"
    # Reads the workspace's banners and records their impressions, clicks and dismissals
    # through /public/v1/ and nothing else: safe to ship in an app (campaigns.banners).
    PUBLISHABLE = "publishable", "Publishable key (banners only)"


# Methods that change nothing (RFC 9110 safe methods): all a read-only key may call.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiKeyQuerySet(WorkspaceQuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(WorkspaceOwned):
    """A bearer key for the HTTP API. The key itself is shown once and stored hashed."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    kind = models.CharField(
        max_length=16,
        choices=ApiKeyKind.choices,
        default=ApiKeyKind.FULL,
        help_text="Full access reads and writes; a read-only key gets 403 on every write; "
        "a write key only sends tracking data to /v1/.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = WorkspaceManager.from_queryset(ApiKeyQuerySet)()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="apikey_ws_created")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate() -> tuple[str, str]:
        """A new (prefix, raw key). The prefix is public and finds the row."""
        prefix = secrets.token_hex(4)
        return prefix, f"{settings.API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"

    def matches(self, raw_key: str) -> bool:
        """Whether `raw_key` is this key, under any of the hash keys."""
        return any(hmac.compare_digest(self.key_hash, h) for h in api_key_hashes(raw_key))

    def allows(self, method: str) -> bool:
        """Whether this key may call an API operation of HTTP `method`."""
        if self.kind == ApiKeyKind.FULL:
            return True
        return self.kind == ApiKeyKind.READ and method.upper() in SAFE_METHODS


class AuditEntry(WorkspaceOwned):
    """One action of the audit log (accounts.audit.audit_record writes it). Append-only:
    a trigger refuses UPDATE and DELETE. The foreign keys have no database constraint and
    do nothing on delete, so a deleted workspace, user or key keeps its entries (a cascade
    would be a DELETE the trigger refuses)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=64)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_system = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    # ids, field names and counts only: never a personal value
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                models.F("workspace"),
                models.F("created_at").desc(),
                models.F("id").desc(),
                name="audit_ws_created",
            )
        ]

    def __str__(self):
        return f"{self.action} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def actor_label(self) -> str:
        if self.actor_api_key_id:
            return f"API key {self.actor_api_key or f'#{self.actor_api_key_id}'}"
        if self.actor_user_id:
            return str(self.actor_user or f"user #{self.actor_user_id}")
        return self.actor_system or "system"


class Degradation(models.Model):
    """How often Herald failed open for `kind` (accounts.degraded): counted, not per
    workspace (Redis is down for everybody)."""

    kind = models.CharField(max_length=40, primary_key=True)
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")

    def __str__(self):
        return f"{self.kind}: {self.count}"
