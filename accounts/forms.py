import zoneinfo
from urllib.parse import urlsplit

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm

from accounts.models import (
    ApiKeyKind,
    Role,
    Workspace,
    format_frequency_caps,
    one_line,
    parse_frequency_caps,
)
from config.forms import StyledFormMixin

TIME_ZONE_CHOICES = [(tz, tz.replace("_", " ")) for tz in sorted(zoneinfo.available_timezones())]


def clean_origins(lines) -> list[str]:
    """Web origins, https://host[:port] each with no path (what a browser sends as
    Origin), lower-cased, without repeats; ValueError naming the line otherwise."""
    origins = []
    for number, line in enumerate(lines, 1):
        line = line.strip().rstrip("/")
        if not line:
            continue
        try:
            parts = urlsplit(line)
            bad = parts.scheme not in ("http", "https") or not parts.hostname
        except ValueError:
            bad = True
        if bad or parts.path or parts.query or parts.fragment:
            raise ValueError(f"Line {number}: “{line}” is not an origin: write it as "
                             "https://shop.example.com (no path).")  # fmt: skip
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return list(dict.fromkeys(origins))


class WorkspaceForm(StyledFormMixin, forms.ModelForm):
    time_zone = forms.ChoiceField(
        choices=TIME_ZONE_CHOICES,
        help_text="Relative dates in segments (“today”, “30 days ago”) are counted here.",
    )
    frequency_caps = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "email 1 per 16h\nany 3 per 7d"}),
        help_text="At most so many campaign messages per person in a rolling period, one "
        "rule per line: “email 1 per 16h” (email, sms, push, or any for all channels "
        "together; hours h, days d or weeks w). Someone at a cap is skipped. Transactional "
        "campaigns are neither held nor counted.",
    )
    banner_allowed_origins = forms.CharField(
        label="Web origins allowed to show banners", required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "https://shop.example.com"}),
        help_text="One per line: the sites whose pages call the banner API with a publishable "
        "key (CORS). Apps (iOS, Android) need none.",
    )  # fmt: skip

    class Meta:
        model = Workspace
        fields = [
            "name",
            "time_zone",
            "sms_opt_out_line",
            "frequency_caps",
            "quiet_hours_start",
            "quiet_hours_end",
            "banner_allowed_origins",
        ]
        help_texts = {
            "sms_opt_out_line": "Added on its own line at the end of every campaign SMS, "
            "e.g. “Reply STOP to opt out”. Replies of STOP put the number on Do Not "
            "Contact. Leave empty to add nothing.",
            "quiet_hours_start": "In each recipient's time zone (else the workspace's), e.g. "
            "21:00 until 08:00. Campaign messages that would go out then wait until the "
            "end, or are skipped, as the campaign chooses. Leave both empty for none.",
        }
        widgets = {
            "sms_opt_out_line": forms.TextInput(attrs={"placeholder": "Reply STOP to opt out"}),
            "quiet_hours_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_hours_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def clean_name(self):
        # One line: line breaks and tabs typed or pasted into the name become spaces (the
        # model refuses other control characters).
        return one_line(self.cleaned_data["name"])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:  # creating a workspace: these are set in its settings
            for name in ("frequency_caps", "quiet_hours_start", "quiet_hours_end",
                         "banner_allowed_origins"):  # fmt: skip
                del self.fields[name]
        elif not self.is_bound:
            self.initial["frequency_caps"] = format_frequency_caps(self.instance.frequency_caps)
            self.initial["banner_allowed_origins"] = "\n".join(
                self.instance.banner_allowed_origins or [])

    def clean_sms_opt_out_line(self):
        return one_line(self.cleaned_data["sms_opt_out_line"])

    def clean_banner_allowed_origins(self):
        try:
            return clean_origins((self.cleaned_data["banner_allowed_origins"] or "").splitlines())
        except ValueError as e:
            raise forms.ValidationError(str(e)) from None

    def clean_frequency_caps(self):
        return parse_frequency_caps(self.cleaned_data["frequency_caps"] or "")


class InviteForm(StyledFormMixin, forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MARKETER)


class RoleForm(StyledFormMixin, forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(StyledFormMixin, forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Who or what uses this key, e.g. “Mobile app backend”."
    )
    kind = forms.ChoiceField(
        label="Access",
        choices=ApiKeyKind.choices,
        initial=ApiKeyKind.FULL,
        required=False,
        help_text="A read-only key can read everything and is refused (403) every change. "
        "A write key only sends tracking data (identify, track) to /v1/; a publishable key "
        "only reads in-app banners (/public/v1/): both safe to put in a web page or an app.",
    )

    def clean_kind(self):
        return self.cleaned_data["kind"] or ApiKeyKind.FULL


class LoginForm(StyledFormMixin, AuthenticationForm):
    pass


class StyledPasswordResetForm(StyledFormMixin, PasswordResetForm):
    pass


class StyledSetPasswordForm(StyledFormMixin, SetPasswordForm):
    pass


class AuditFilterForm(forms.Form):
    """The Audit log's filters (GET). Dates are days of the workspace's time zone. Not
    a StyledFormMixin form: that validates in __init__, before the choices are set."""

    actor = forms.ChoiceField(required=False, widget=forms.Select(attrs={"class": "form-select"}))
    action = forms.ChoiceField(required=False, widget=forms.Select(attrs={"class": "form-select"}))
    object_type = forms.ChoiceField(
        required=False, label="Object", widget=forms.Select(attrs={"class": "form-select"})
    )
    date_from = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}),
    )
    date_to = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}),
    )

    def __init__(self, *args, choices: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].choices = choices["actors"]
        self.fields["action"].choices = [("", "Any action")] + [(a, a) for a in choices["actions"]]
        self.fields["object_type"].choices = [("", "Any object")] + [
            (t, t) for t in choices["object_types"]
        ]
