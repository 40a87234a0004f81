"""The forms of a channel's Segments and Audiences tabs: add a Herald segment, upload a CSV
of identifiers, edit an entry, the Klaviyo source, an audience (include and exclude
pickers of the channel's own entries), its clone and its Meta custom audience.

The services validate; a ValidationError they raise is put back at the form's fields by
add_service_errors, so a refusal reads beside what caused it."""

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from audiences.models import Identifier
from channels import selectors
from channels.list_services import NAME_MAX, SCHEDULE_MINUTES_MIN
from segments.selectors import segment_list

ACTIVE_FILTERS = (("", "Active and inactive"), ("active", "Active only"), ("inactive", "Inactive"))
# what a picker offers at most: a channel's list is short in practice (Klaviyo accounts
# have tens to hundreds of lists and segments); more than this is a list to search first
PICKER_LIMIT = 1000
KEY_KEPT = "A key is set: leave this empty to keep it, or paste a new one to replace it."


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """A service's ValidationError at the form's fields (the keys it knows), the rest
    above the form."""
    if hasattr(error, "error_dict"):
        for key, messages in error.message_dict.items():
            for message in messages:
                form.add_error(key if key in form.fields else None, message)
    else:
        for message in error.messages:
            form.add_error(None, message)


class ListForm(forms.Form):
    """A form of these pages, styled for Bootstrap like config.forms.StyledFormMixin, but
    once its fields are complete (a queryset, a flag that clean() reads: styling reads
    form.errors, which validates) and again when a service's errors are added. A form
    completes its fields in complete(), from what its __init__ stored before calling
    this one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.complete()
        self.style()

    def complete(self) -> None:
        """Finish the fields (querysets, texts) before the form is styled."""

    def style(self) -> None:
        for name, field in self.fields.items():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput | forms.CheckboxSelectMultiple):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            if self.is_bound and name in self.errors:
                css += " is-invalid"
            widget.attrs["class"] = css

    def add_service_errors(self, error: ValidationError) -> None:
        add_service_errors(self, error)
        self.style()


class SegmentChoice(forms.ModelChoiceField):
    def label_from_instance(self, segment):
        return f"{segment.name} (built-in)" if segment.predefined else segment.name


class SegmentAddForm(ListForm):
    """A Herald segment of the workspace that is not in the channel's list yet."""

    segment = SegmentChoice(
        label="Herald segment", queryset=None, empty_label="— choose a segment —"
    )

    def __init__(self, *args, workspace, channel, **kwargs):
        self.workspace, self.channel = workspace, channel
        super().__init__(*args, **kwargs)

    def complete(self) -> None:
        listed = selectors.channel_segments(workspace=self.workspace, channel=self.channel)
        self.fields["segment"].queryset = segment_list(workspace=self.workspace).exclude(
            pk__in=listed.values("segment_id")
        )
        self.fields["segment"].error_messages["invalid_choice"] = (
            "Choose one of the segments listed: that one is not in this workspace or is "
            "already in the list."
        )


class SegmentUploadForm(ListForm):
    name = forms.CharField(
        label="Name in the list",
        max_length=NAME_MAX,
        help_text="How the segment is listed in this channel, e.g. “Spring buyers”.",
    )
    identifier = forms.ChoiceField(
        label="Identifier used in the file",
        choices=Identifier.choices,
        initial=Identifier.EXTERNAL_ID,
        help_text="Emails are matched whatever their case; phones in any format with their "
        "country code (+44 7700 900123).",
    )
    file = forms.FileField(label="CSV file")


class EntryForm(ListForm):
    """Name, ID and link of an entry as the marketer knows it in this channel."""

    name = forms.CharField(label="Name", max_length=NAME_MAX)
    external_id = forms.CharField(
        label="ID",
        max_length=255,
        required=False,
        help_text="The segment's ID in the tool you know it from (e.g. a Klaviyo list ID). "
        "Search finds it by this.",
    )
    link = forms.CharField(
        label="Link",
        max_length=500,
        required=False,
        help_text="A web address that opens the segment there (https://…).",
        widget=forms.URLInput,
    )

    def changes(self) -> dict:
        return {name: self.cleaned_data[name] for name in ("name", "external_id", "link")}


class SourceForm(ListForm):
    """The channel's Klaviyo account: its private API key (write-only) and how often to
    sync from it."""

    api_key = forms.CharField(
        label="Klaviyo private API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Klaviyo → Settings → API keys: a private key with read access to lists, "
        "segments and profiles. Stored encrypted; Herald never shows it again.",
    )
    schedule_minutes = forms.IntegerField(
        label="Sync every (minutes)",
        required=False,
        min_value=SCHEDULE_MINUTES_MIN,
        max_value=7 * 24 * 60,
        help_text=f"From {SCHEDULE_MINUTES_MIN} minutes to 7 days (10080). Empty: only when "
        "you press “Sync now”.",
    )

    def __init__(self, *args, key_set: bool = False, **kwargs):
        self.key_set = key_set
        super().__init__(*args, **kwargs)

    def complete(self) -> None:
        if self.key_set:
            self.fields["api_key"].help_text = KEY_KEPT

    def clean_api_key(self):
        key = self.cleaned_data["api_key"]
        if not key and not self.key_set:
            raise ValidationError("Give the Klaviyo private API key (read access).")
        return key


class EntryChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, entry):
        return entry.name


class AudienceForm(ListForm):
    """An audience of the channel: people in any include segment and in none of the
    excludes. The pickers offer the channel's active entries, and the audience's own
    entries that were made inactive since (so saving does not drop them unseen)."""

    name = forms.CharField(label="Name", max_length=NAME_MAX)
    estimated_volume = forms.IntegerField(
        label="Estimated volume",
        required=False,
        min_value=0,
        help_text="Your own reference figure, e.g. from the brief or the last send; the live "
        "count is shown beside it.",
    )
    include = EntryChoices(
        label="Include people in any of",
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    exclude = EntryChoices(
        label="Exclude people in any of",
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, workspace, channel, audience=None, **kwargs):
        if audience is not None and not args and "data" not in kwargs:
            kwargs.setdefault(
                "initial",
                {
                    "name": audience.name,
                    "estimated_volume": audience.estimated_volume,
                    "include": [e.pk for e in audience.include.all()],
                    "exclude": [e.pk for e in audience.exclude.all()],
                },
            )
        self.workspace, self.channel, self.audience = workspace, channel, audience
        super().__init__(*args, **kwargs)

    def complete(self) -> None:
        entries = selectors.channel_segments(workspace=self.workspace, channel=self.channel)
        kept = []
        if self.audience is not None:
            kept = [e.pk for e in self.audience.include.all()]
            kept += [e.pk for e in self.audience.exclude.all()]
        offered = entries.filter(Q(active=True) | Q(pk__in=kept))
        self.entries = list(offered[:PICKER_LIMIT])
        for name in ("include", "exclude"):
            self.fields[name].queryset = offered
        self.fields["include"].error_messages["invalid_choice"] = (
            "%(value)s is not an active segment of this channel's list."
        )
        self.fields["exclude"].error_messages["invalid_choice"] = (
            "%(value)s is not an active segment of this channel's list."
        )

    def data_for_service(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "estimated_volume": data.get("estimated_volume"),
            "include": [e.pk for e in data.get("include") or []],
            "exclude": [e.pk for e in data.get("exclude") or []],
        }

    def checked(self, name: str) -> set[str]:
        """The ids (as text) ticked in a picker: what was posted, or the initial ones."""
        if self.is_bound:
            return set(self.data.getlist(self.add_prefix(name)))
        return {str(pk) for pk in self.initial.get(name) or []}

    def picker_rows(self, name: str) -> list[dict]:
        checked = self.checked(name)
        return [
            {"entry": e, "checked": str(e.pk) in checked, "id": f"id_{name}_{e.pk}"}
            for e in self.entries
        ]


class CloneForm(ListForm):
    name = forms.CharField(label="Name of the copy", max_length=NAME_MAX)


class MetaForm(ListForm):
    """The Meta custom audience an audience exports to, and what to do with it."""

    SAVE, ADD, REPLACE = "save", "add", "replace"

    meta_audience_id = forms.CharField(
        label="Meta custom audience ID",
        max_length=64,
        required=False,
        help_text="Meta Ads Manager → Audiences: the number in the audience's ID column.",
    )
    action = forms.ChoiceField(
        choices=[(SAVE, "Save"), (ADD, "Export: add"), (REPLACE, "Export: replace")],
        initial=SAVE,
        widget=forms.HiddenInput,
    )
