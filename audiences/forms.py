from django import forms

from config.forms import StyledFormMixin


class AudienceForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=200, label="Audience name")
