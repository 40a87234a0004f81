import zoneinfo

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm

from accounts.models import ApiKeyKind, Role, Workspace, one_line
from config.forms import StyledFormMixin

TIME_ZONE_CHOICES = [(tz, tz.replace("_", " ")) for tz in sorted(zoneinfo.available_timezones())]


class WorkspaceForm(StyledFormMixin, forms.ModelForm):
    time_zone = forms.ChoiceField(
        choices=TIME_ZONE_CHOICES,
        help_text="Relative dates in segments (“today”, “30 days ago”) are counted here.",
    )

    class Meta:
        model = Workspace
        fields = ["name", "time_zone", "sms_opt_out_line"]
        help_texts = {
            "sms_opt_out_line": "Added on its own line at the end of every campaign SMS, "
            "e.g. “Reply STOP to opt out”. Replies of STOP put the number on Do Not "
            "Contact. Leave empty to add nothing."
        }
        widgets = {
            "sms_opt_out_line": forms.TextInput(attrs={"placeholder": "Reply STOP to opt out"})
        }

    def clean_name(self):
        # One line: line breaks and tabs typed or pasted into the name become spaces (the
        # model refuses other control characters).
        return one_line(self.cleaned_data["name"])

    def clean_sms_opt_out_line(self):
        return one_line(self.cleaned_data["sms_opt_out_line"])


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
        "A write key only sends tracking data (identify, track) to /v1/: safe to put in "
        "a web page or an app.",
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
