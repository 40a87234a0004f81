"""The forms of the campaign pages: a new campaign, the message editor of each channel, the
targeting (a channel audience, include and exclude segments, or Everyone), the test send
and the schedule.

The services validate content and targeting (campaigns.templating.clean_content, the
campaign services); a ValidationError they raise is put back at the field it names
("subject", "buttons.1.title", "ios.badge"), with the Liquid line it names shown under the
field, so a refusal reads beside what caused it."""

import re
from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import CampaignChannel, QuietHours, WinnerMetric
from campaigns.variants import KEYS, MAX_DECIDE_HOURS, VARIANT_FIELDS

# the channels a campaign is created for on these pages
NEW_CHANNELS = [
    (CampaignChannel.EMAIL, "Email"),
    (CampaignChannel.SMS, "SMS"),
    (CampaignChannel.PUSH, "Push notification"),
    (CampaignChannel.BANNER, "In-app banner"),
]
MAX_PUSH_BUTTONS = 3
TEST_PEOPLE_MAX = 100  # external ids typed into the test send form


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


class StyledForm(forms.Form):
    """A form styled for Bootstrap like config.forms.StyledFormMixin, but once its fields
    are complete (querysets, added fields: styling reads form.errors, which validates):
    a form finishes its fields in complete(), from what its __init__ stored first."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.complete()
        self.style()

    def complete(self) -> None:
        """Finish the fields before the form is styled."""

    def style(self) -> None:
        for name, field in self.fields.items():
            widget = field.widget
            if isinstance(widget, forms.RadioSelect | forms.CheckboxSelectMultiple):
                continue  # drawn by the templates
            css = "form-select" if isinstance(widget, forms.Select) else "form-control"
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            if getattr(getattr(field, "spec", None), "code", False):
                css += " font-monospace"
            if self.is_bound and name in self.errors:
                css += " is-invalid"
            widget.attrs["class"] = css


class NewCampaignForm(StyledForm):
    name = forms.CharField(
        label="Name", max_length=200, help_text="For you and your team; recipients never see it."
    )
    channel = forms.ChoiceField(
        label="Channel", choices=NEW_CHANNELS, initial="email", widget=forms.RadioSelect
    )


# --- The message editor ------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One field of a channel's content: its path in the content ("ios.badge",
    "buttons.0.title"), its label and how it is typed in."""

    path: str
    label: str
    kind: str = "text"  # text | textarea | email | url | int | choice
    help: str = ""
    rows: int = 3
    choices: tuple = ()
    code: bool = False  # monospace (HTML)
    placeholder: str = ""
    liquid: bool = False  # a Liquid template

    @property
    def name(self) -> str:
        return self.path.replace(".", "__")


LIQUID_HELP = 'Liquid: {{ person.first_name | default: "there" }}, {{ person.attributes.plan }}.'

EMAIL_SPECS = (
    Spec("subject", "Subject", liquid=True, help=LIQUID_HELP),
    Spec("preheader", "Preheader", liquid=True,
         help="The line inbox lists show after the subject."),
    Spec("from_name", "From name", liquid=True,
         help="Empty: the provider's from name."),
    Spec("reply_to", "Reply-to address", kind="email", placeholder="support@example.com"),
    Spec("text", "Text body", kind="textarea", rows=8, liquid=True,
         help="The plain-text part, for mail clients that show no HTML."),
    Spec("html", "HTML body", kind="textarea", rows=14, code=True, liquid=True,
         help="Sanitized when saved (no scripts, forms or event handlers); CSS in <style> is "
              "inlined into the elements, what cannot be inlined (media queries) is dropped."),
)  # fmt: skip
SMS_SPECS = (
    Spec("body", "Message", kind="textarea", rows=5, liquid=True,
         help=LIQUID_HELP + " GSM-7 fits 160 characters in one segment (153 each when "
              "longer); one character outside it (an emoji, “ç”) makes it UCS-2: 70 (67)."),
)  # fmt: skip
PUSH_SPECS = (
    Spec("title", "Title", liquid=True),
    Spec("body", "Body", kind="textarea", rows=3, liquid=True, help=LIQUID_HELP),
    Spec("image_url", "Image URL", kind="url", placeholder="https://…",
         help="A picture shown in the expanded notification (https)."),
    Spec("url", "Opens", liquid=True, placeholder="myapp://offers or https://…",
         help="A deep link or a web address opened when the notification is tapped."),
    *(
        spec
        for i in range(MAX_PUSH_BUTTONS)
        for spec in (
            Spec(f"buttons.{i}.title", f"Button {i + 1}: title", liquid=True),
            Spec(f"buttons.{i}.url", f"Button {i + 1}: opens", liquid=True,
                 placeholder="myapp://… or https://…"),
            Spec(f"buttons.{i}.id", f"Button {i + 1}: action ID", placeholder=f"button-{i + 1}",
                 help="What the app receives when it is tapped; empty: button-N."),
        )
    ),
    Spec("ios.sound", "Sound", placeholder="default"),
    Spec("ios.badge", "Badge", kind="int", help="The number on the app icon (0 clears it)."),
    Spec("ios.category", "Category", help="The notification category the app registered."),
    Spec("ios.interruption_level", "Interruption level", kind="choice",
         choices=(("", "— default (active) —"), ("passive", "Passive"), ("active", "Active"),
                  ("time-sensitive", "Time sensitive"), ("critical", "Critical"))),
    Spec("ios.thread_id", "Thread", help="Notifications of a thread are grouped."),
    Spec("android.channel_id", "Notification channel", placeholder="offers"),
    Spec("android.priority", "Priority", kind="choice",
         choices=(("", "— default (normal) —"), ("normal", "Normal"), ("high", "High"))),
    Spec("android.ttl_seconds", "Time to live (seconds)", kind="int",
         help="How long FCM keeps it for an offline device: at most 28 days (2419200)."),
    Spec("android.icon", "Small icon", placeholder="ic_notification"),
    Spec("android.color", "Colour", placeholder="#4F46E5", help="#RRGGBB"),
)  # fmt: skip
BANNER_SPECS = (
    Spec("placement", "Placement", kind="choice",
         help="Where it shows in your app (Campaigns, Placements)."),
    Spec("title", "Title", help="Shown to everyone it targets, as written (no Liquid)."),
    Spec("body", "Text", kind="textarea", rows=3),
    Spec("image_url", "Image URL", kind="url", placeholder="https://…"),
    Spec("cta_label", "Button label", placeholder="Shop now"),
    Spec("cta_url", "Button link", kind="url", placeholder="https://…",
         help="An http:// or https:// address."),
    Spec("priority", "Priority weight", kind="int",
         help="1-100: banners competing for a placement are shown in proportion to it."),
    Spec("dismissible", "People can dismiss it", kind="bool",
         help="A dismissed banner is never shown to that person again."),
)  # fmt: skip
CONTENT_SPECS = {"email": EMAIL_SPECS, "sms": SMS_SPECS, "push": PUSH_SPECS,
                 "banner": BANNER_SPECS}  # fmt: skip

_LINE = re.compile(r"^line (\d+):")


def _field(spec: Spec) -> forms.Field:
    attrs = {"placeholder": spec.placeholder} if spec.placeholder else {}
    if spec.code:
        attrs["class"] = "font-monospace"
        attrs["spellcheck"] = "false"
    if spec.kind == "textarea":
        widget = forms.Textarea(attrs={"rows": spec.rows, **attrs})
        return forms.CharField(label=spec.label, required=False, strip=False, widget=widget)
    if spec.kind == "int":
        return forms.IntegerField(label=spec.label, required=False, widget=forms.NumberInput(attrs))
    if spec.kind == "choice":
        return forms.ChoiceField(label=spec.label, required=False, choices=spec.choices)
    if spec.kind == "bool":
        return forms.BooleanField(label=spec.label, required=False)
    widget = {"email": forms.EmailInput, "url": forms.URLInput}.get(spec.kind, forms.TextInput)
    return forms.CharField(label=spec.label, required=False, strip=False, widget=widget(attrs))


def _get(content: dict, path: str):
    value = content
    for key in path.split("."):
        if isinstance(value, list):
            index = int(key)
            value = value[index] if index < len(value) else None
        elif isinstance(value, dict):
            value = value.get(key)
        else:
            return None
        if value is None:
            return None
    return value


class ContentForm(StyledForm):
    """The campaign's name and its channel's content fields. to_content() is the content
    the services take; add_service_errors() puts their refusals at the fields."""

    name = forms.CharField(label="Campaign name", max_length=200)

    def __init__(self, *args, campaign, **kwargs):
        self.campaign = campaign
        self.specs = CONTENT_SPECS[campaign.channel]
        self.error_lines: dict[str, tuple[int, str]] = {}
        if not args and "data" not in kwargs:
            content = campaign.content or {}
            initial = {"name": campaign.name}
            for spec in self.specs:
                value = _get(content, spec.path)
                if value not in (None, ""):
                    initial[spec.name] = value
            if campaign.channel == "banner":
                initial.setdefault("priority", 50)
                initial.setdefault("dismissible", content.get("dismissible", True))
            kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)

    def complete(self) -> None:
        for spec in self.specs:
            self.fields[spec.name] = field = _field(spec)
            field.help_text = spec.help
            field.spec = spec
        if self.campaign.channel == "sms":
            self.fields["body"].widget.attrs["data-sms-count"] = "#sms-count"
        if self.campaign.channel == "banner":
            from campaigns.banners import placements_for

            self.fields["placement"].choices = [("", "— choose a placement —")] + [
                (p.key, f"{p.name} ({p.key})") for p in placements_for(self.campaign.workspace)
            ]

    # The rows of the template, in order: {"field": bound field, "line": (number, text)
    # of the Liquid line an error names, or None}.
    def _row(self, name: str) -> dict:
        return {"field": self[name], "line": self.error_lines.get(name)}

    def group(self, prefix: str) -> list[dict]:
        return [self._row(s.name) for s in self.specs if s.path.startswith(prefix)]

    @property
    def name_row(self) -> dict:
        return self._row("name")

    @property
    def main_rows(self) -> list[dict]:
        return [self._row(s.name) for s in self.specs if "." not in s.path]

    @property
    def button_rows(self) -> list[list[dict]]:
        return [self.group(f"buttons.{i}.") for i in range(MAX_PUSH_BUTTONS)]

    @property
    def ios_rows(self) -> list[dict]:
        return self.group("ios.")

    @property
    def android_rows(self) -> list[dict]:
        return self.group("android.")

    @property
    def options_open(self) -> bool:
        """Show the iOS and Android options: some are set, or refused."""
        names = [s.name for s in self.specs if s.path.startswith(("ios.", "android."))]
        if self.is_bound:
            return any(self.data.get(n) for n in names) or any(n in self.errors for n in names)
        return any(self.initial.get(n) not in (None, "") for n in names)

    def to_content(self) -> dict:
        """The content as the services take it, from the cleaned fields: empty options
        left out, a button row with nothing in it dropped, the push data kept."""
        data = self.cleaned_data
        channel = self.campaign.channel
        if channel == "banner":
            content = {s.path: data.get(s.name) or "" for s in self.specs
                       if s.kind not in ("int", "bool")}  # fmt: skip
            content["priority"] = data.get("priority") or 50
            content["dismissible"] = bool(data.get("dismissible"))
            return content
        if channel != "push":
            return {s.path: data.get(s.name) or "" for s in self.specs}
        content = {s.path: data.get(s.name) or "" for s in self.specs if "." not in s.path}
        buttons = []
        for i in range(MAX_PUSH_BUTTONS):
            title = data.get(f"buttons__{i}__title") or ""
            url = data.get(f"buttons__{i}__url") or ""
            button_id = (data.get(f"buttons__{i}__id") or "").strip()
            if not (title or url or button_id):
                continue
            buttons.append({"id": button_id or f"button-{i + 1}", "title": title, "url": url})
        content["buttons"] = buttons
        for part in ("ios", "android"):
            options = {}
            for spec in self.specs:
                if spec.path.startswith(f"{part}."):
                    value = data.get(spec.name)
                    if value not in (None, ""):
                        options[spec.path.split(".", 1)[1]] = value
            content[part] = options
        content["data"] = dict((self.campaign.content or {}).get("data") or {})
        return content

    def _field_for(self, path: str) -> str | None:
        """The form field of a content path; a button's index is the row it was typed in
        (rows left empty are dropped before the content is checked)."""
        match = re.match(r"^buttons\.(\d+)\.(\w+)$", path)
        if match:
            rows = [i for i in range(MAX_PUSH_BUTTONS) if any(
                self.data.get(f"buttons__{i}__{k}") for k in ("title", "url", "id"))]  # fmt: skip
            index = int(match[1])
            if index < len(rows):
                return f"buttons__{rows[index]}__{match[2]}"
            return None
        name = path.replace(".", "__")
        return name if name in self.fields else None

    def add_service_errors(self, error: ValidationError) -> None:
        messages = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for path, texts in messages.items():
            name = self._field_for(path) if path else None
            if path == "name":
                name = "name"
            for text in texts:
                if name is None and path and path not in ("__all__", "content"):
                    self.add_error(None, f"{path}: {text}")
                    continue
                self.add_error(name, _capital(text))
                if name and (match := _LINE.match(text)):
                    self._remember_line(name, int(match[1]))
        self.style()

    def _remember_line(self, name: str, number: int) -> None:
        source = str(self.data.get(name) or "")
        lines = source.splitlines()
        if 0 < number <= len(lines):
            self.error_lines[name] = (number, lines[number - 1])


# --- Targeting ---------------------------------------------------------------------------


class AudienceChoice(forms.ModelChoiceField):
    def label_from_instance(self, audience):
        return audience.name


class SegmentChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, segment):
        return segment.name


TARGET_LISTS, TARGET_EVERYONE = "lists", "everyone"


class TargetingForm(StyledForm):
    """Who gets the campaign: a channel audience of its channel (its lists fill in as the
    campaign's own), segments added or removed, or Everyone (an explicit choice)."""

    target = forms.ChoiceField(
        label="Who gets it",
        choices=[
            (TARGET_LISTS, "An audience and segments"),
            (TARGET_EVERYONE, "Everyone in the workspace"),
        ],  # fmt: skip
        widget=forms.RadioSelect,
        initial=TARGET_LISTS,
    )
    audience = AudienceChoice(
        label="Channel audience", queryset=None, required=False,
        empty_label="— no audience —",
    )  # fmt: skip
    include = SegmentChoices(queryset=None, required=False, widget=forms.CheckboxSelectMultiple)
    exclude = SegmentChoices(queryset=None, required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, campaign, audiences, segments, limit: int = 500, **kwargs):
        self.campaign, self.audiences, self.all_segments = campaign, audiences, segments
        self.segments = list(segments[:limit])
        if not args and "data" not in kwargs:
            kwargs.setdefault("initial", {
                "target": TARGET_EVERYONE if campaign.everyone else TARGET_LISTS,
                "audience": campaign.audience_id,
                "include": [s.pk for s in campaign.include.all()],
                "exclude": [s.pk for s in campaign.exclude.all()],
            })  # fmt: skip
        super().__init__(*args, **kwargs)

    def complete(self) -> None:
        self.fields["audience"].queryset = self.audiences
        self.fields["audience"].error_messages["invalid_choice"] = (
            f"Choose one of the {self.campaign.get_channel_display()} audiences listed."
        )
        for name in ("include", "exclude"):
            self.fields[name].queryset = self.all_segments
            self.fields[name].error_messages["invalid_choice"] = (
                "%(value)s is not a segment of this workspace."
            )

    def checked(self, name: str) -> set[str]:
        if self.is_bound:
            return set(self.data.getlist(self.add_prefix(name)))
        return {str(pk) for pk in self.initial.get(name) or []}

    def picker_rows(self, name: str) -> list[dict]:
        """The picker's segments, the chosen ones first (then by name)."""
        checked = self.checked(name)
        rows = [{"segment": s, "checked": str(s.pk) in checked, "id": f"id_{name}_{s.pk}"}
                for s in self.segments]  # fmt: skip
        rows.sort(key=lambda row: not row["checked"])  # stable: by name within each part
        return rows


# --- Test send ---------------------------------------------------------------------------


class SegmentChoice(forms.ModelChoiceField):
    def label_from_instance(self, segment):
        flag = " (internal)" if segment.internal else ""
        return f"{segment.name}{flag} · {segment.people_count:,}"


class TestSendForm(StyledForm):
    """A test send goes to a segment (internal ones listed first) or to people by ID."""

    segment = SegmentChoice(
        label="Test segment", queryset=None, required=False, empty_label="— choose a segment —"
    )
    people = forms.CharField(
        label="Or people by ID",
        required=False,
        max_length=20_000,
        help_text=f"External IDs, separated by commas, spaces or lines (at most "
        f"{TEST_PEOPLE_MAX}).",
        widget=forms.TextInput(attrs={"placeholder": "crm-1001, crm-1002"}),
    )

    def __init__(self, *args, segments, initial_segment=None, **kwargs):
        if initial_segment is not None and not args and "data" not in kwargs:
            kwargs.setdefault("initial", {"segment": initial_segment})
        self.segments = segments
        super().__init__(*args, **kwargs)

    def complete(self) -> None:
        self.fields["segment"].queryset = self.segments
        self.fields["segment"].error_messages["invalid_choice"] = (
            "Choose one of the segments listed: that one is not in this workspace."
        )

    def clean_people(self) -> list[str]:
        ids = list(dict.fromkeys(re.split(r"[\s,;]+", self.cleaned_data["people"].strip())))
        ids = [i for i in ids if i]
        if len(ids) > TEST_PEOPLE_MAX:
            raise ValidationError(f"At most {TEST_PEOPLE_MAX} people; use a test segment for more.")
        return ids

    def clean(self):
        data = super().clean()
        if not self.errors and bool(data.get("segment")) == bool(data.get("people")):
            raise ValidationError("Choose a test segment or type people's IDs (one of the two).")
        return data


# --- Schedule and send -------------------------------------------------------------------

WHEN_NOW, WHEN_LATER = "now", "later"


class LocalDateTimeInput(forms.DateTimeInput):
    """<input type="datetime-local">: a time in the workspace's time zone, the one the
    request runs in (accounts.middleware)."""

    input_type = "datetime-local"

    def format_value(self, value):
        if isinstance(value, datetime):
            value = timezone.localtime(value) if timezone.is_aware(value) else value
            return value.strftime("%Y-%m-%dT%H:%M")
        return value


class ScheduleForm(StyledForm):
    when = forms.ChoiceField(
        label="When",
        choices=[(WHEN_NOW, "Send now"), (WHEN_LATER, "Schedule for later")],
        widget=forms.RadioSelect,
        initial=WHEN_NOW,
    )
    send_at = forms.DateTimeField(
        label="Send at", required=False, widget=LocalDateTimeInput,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )  # fmt: skip
    expires_at = forms.DateTimeField(
        label="Expires at (optional)", required=False, widget=LocalDateTimeInput,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text="Nothing more is sent after it; whoever is still waiting is recorded as "
                  "skipped (expired).",
    )  # fmt: skip
    in_recipient_time_zone = forms.BooleanField(
        label="At this time in each recipient's time zone", required=False,
        help_text="10:00 means 10:00 where each person is (their time zone, else the "
                  "workspace's): the first go out when the first zone reaches it.",
    )  # fmt: skip
    quiet_hours = forms.ChoiceField(
        label="During the recipient's quiet hours", choices=QuietHours.choices,
        initial=QuietHours.WAIT, required=False,
        help_text="The quiet hours are a workspace setting (Settings, Workspace).",
    )  # fmt: skip
    transactional = forms.BooleanField(
        label="Transactional (receipts, password resets)", required=False,
        help_text="Sent even to people at the workspace's frequency caps, and not counted "
                  "toward them.",
    )  # fmt: skip

    def __init__(self, *args, campaign, now=None, **kwargs):
        self.now = now or timezone.now()
        self.campaign = campaign
        if not args and "data" not in kwargs:
            kwargs.setdefault("initial", {
                "when": WHEN_LATER if campaign.send_at else WHEN_NOW,
                "send_at": campaign.send_at, "expires_at": campaign.expires_at,
                "transactional": campaign.transactional,
                "in_recipient_time_zone": campaign.in_recipient_time_zone,
                "quiet_hours": campaign.quiet_hours,
            })  # fmt: skip
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        send_at, expires_at = data.get("send_at"), data.get("expires_at")
        data["quiet_hours"] = data.get("quiet_hours") or self.campaign.quiet_hours
        if data.get("when") == WHEN_LATER:
            if send_at is None:
                self.add_error("send_at", "Choose the date and time to send it.")
            elif send_at <= self.now:
                self.add_error("send_at", "Choose a time in the future, or send it now.")
        else:
            data["send_at"] = None
            if data.get("in_recipient_time_zone"):
                self.add_error("in_recipient_time_zone", "Schedule a time to send it in each "
                               "recipient's time zone.")  # fmt: skip
        if expires_at is not None:
            if expires_at <= self.now:
                self.add_error("expires_at", "The expiry must be in the future.")
            elif data.get("send_at") and expires_at <= data["send_at"]:
                self.add_error("expires_at", "The expiry must come after the send time.")
        return data


# --- A/B variants ------------------------------------------------------------------------


def even_split(count: int) -> list[int]:
    """100 split into `count` whole shares, the remainder to A."""
    share = 100 // count
    return [share + 100 - share * count] + [share] * (count - 1)


class VariantsForm(StyledForm):
    """The A/B test: each variant's name and share, the fields B, C, ... change (left
    empty: the same as the message), and the test phase. `count` variants; to_variants()
    and to_ab_test() are what campaign_update takes."""

    ab_percent = forms.IntegerField(
        label="Test on (% of the recipients)", min_value=0, max_value=95, initial=0,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )  # fmt: skip
    ab_metric = forms.ChoiceField(label="Winner by", choices=WinnerMetric.choices, initial="open")
    ab_hours = forms.IntegerField(
        label="Choose the winner after (hours)", min_value=1, max_value=MAX_DECIDE_HOURS,
        initial=4, widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )  # fmt: skip

    def __init__(self, *args, campaign, count: int | None = None, **kwargs):
        self.campaign = campaign
        self.specs = [s for s in CONTENT_SPECS[campaign.channel]
                      if s.path in VARIANT_FIELDS.get(campaign.channel, ())]  # fmt: skip
        stored = campaign.variants or []
        self.count = count if count is not None else len(stored)
        if not args and "data" not in kwargs:
            initial = {"ab_percent": campaign.ab_test_percent, "ab_metric": campaign.ab_metric,
                       "ab_hours": campaign.ab_decide_hours}  # fmt: skip
            for i, variant in enumerate(stored):
                initial[f"v{i}_name"] = variant.get("name", "")
                initial[f"v{i}_percent"] = variant["percent"]
                for spec in self.specs:
                    initial[f"v{i}_{spec.name}"] = (variant.get("content") or {}).get(spec.path, "")
            kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)

    def complete(self) -> None:
        for i in range(self.count):
            # the labels read inside the variant's fieldset, its legend naming it
            self.fields[f"v{i}_name"] = forms.CharField(
                label="Name", required=False, max_length=60,
                widget=forms.TextInput(attrs={"placeholder": "e.g. Urgent subject"}),
            )  # fmt: skip
            self.fields[f"v{i}_percent"] = forms.IntegerField(
                label="Share (%)", min_value=1, max_value=99,
                widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
            )  # fmt: skip
            if i == 0:
                continue  # A is the message above
            for spec in self.specs:
                field = _field(spec)
                field.label = spec.label
                field.help_text = "Empty: the same as the message above."
                field.spec = spec
                self.fields[f"v{i}_{spec.name}"] = field

    def variant_rows(self) -> list[dict]:
        """Per variant: its name and share, its one-line fields, and its bodies (shown
        folded unless one is set or refused)."""
        rows = []
        for i in range(self.count):
            specs = self.specs if i else []
            short = [self[f"v{i}_{s.name}"] for s in specs if s.kind != "textarea"]
            long = [self[f"v{i}_{s.name}"] for s in specs if s.kind == "textarea"]
            opened = any((f.value() or "").strip() or f.errors for f in long)
            if self.campaign.channel != "email":  # an SMS or push body is the variant
                short, long = short + long, []
            rows.append({"index": i, "key": KEYS[i], "name": self[f"v{i}_name"],
                         "percent": self[f"v{i}_percent"], "fields": short, "bodies": long,
                         "bodies_open": opened})  # fmt: skip
        return rows

    def to_variants(self) -> list[dict]:
        data = self.cleaned_data
        variants = []
        for i in range(self.count):
            content = {}
            for spec in self.specs if i else ():
                value = data.get(f"v{i}_{spec.name}") or ""
                if value.strip():
                    content[spec.path] = value
            variants.append({"name": data.get(f"v{i}_name") or "",
                             "percent": data[f"v{i}_percent"], "content": content})  # fmt: skip
        return variants

    def to_ab_test(self) -> dict:
        data = self.cleaned_data
        return {"percent": data["ab_percent"], "metric": data["ab_metric"],
                "decide_after_hours": data["ab_hours"]}  # fmt: skip

    def add_service_errors(self, error: ValidationError) -> None:
        messages = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        names = {"ab_test.percent": "ab_percent", "ab_test.metric": "ab_metric",
                 "ab_test.decide_after_hours": "ab_hours"}  # fmt: skip
        for path, texts in messages.items():
            name = names.get(path or "")
            if match := re.match(r"^variants\.(\d+)\.(percent|name)$", path or ""):
                name = f"v{match[1]}_{match[2]}"
            elif match := re.match(r"^variants\.(\d+)\.content\.(\w+)$", path or ""):
                candidate = f"v{match[1]}_{match[2]}"
                name = candidate if candidate in self.fields else None
            for text in texts:
                if name is None and path and path.startswith("content."):
                    text = f"The message above: {path.removeprefix('content.')}: {text}"
                self.add_error(name, _capital(text))
        self.style()


# --- Banner placements ---------------------------------------------------------------------


class PlacementForm(StyledForm):
    name = forms.CharField(label="Name", max_length=80)
    key = forms.SlugField(
        label="Key", max_length=40,
        help_text="What the app asks for: data-herald-placement=\"key\" (letters, digits, "
                  "- and _).",
    )  # fmt: skip
    description = forms.CharField(label="Description", max_length=300, required=False)
    max_banners = forms.IntegerField(
        label="Banners per page view", min_value=1, max_value=10, initial=1,
        help_text="Drawn by priority weight, never the same banner twice.",
    )  # fmt: skip

    def __init__(self, *args, workspace, **kwargs):
        self.workspace = workspace
        super().__init__(*args, **kwargs)

    def clean_key(self):
        from campaigns.models import Placement

        key = self.cleaned_data["key"].lower()
        if Placement.objects.for_workspace(self.workspace).filter(key=key).exists():
            raise ValidationError(f"The workspace has a placement “{key}” already.")
        return key
