import zoneinfo

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm

from accounts.models import Role, Workspace
from config.forms import StyledFormMixin

TIME_ZONE_CHOICES = [(tz, tz.replace("_", " ")) for tz in sorted(zoneinfo.available_timezones())]


class WorkspaceForm(StyledFormMixin, forms.ModelForm):
    time_zone = forms.ChoiceField(
        choices=TIME_ZONE_CHOICES,
        help_text="Relative dates in segments (“today”, “30 days ago”) are counted here.",
    )

    class Meta:
        model = Workspace
        fields = ["name", "time_zone"]


class InviteForm(StyledFormMixin, forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MARKETER)


class RoleForm(StyledFormMixin, forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(StyledFormMixin, forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Who or what uses this key, e.g. “Mobile app backend”."
    )


class LoginForm(StyledFormMixin, AuthenticationForm):
    pass


class StyledPasswordResetForm(StyledFormMixin, PasswordResetForm):
    pass


class StyledSetPasswordForm(StyledFormMixin, SetPasswordForm):
    pass
