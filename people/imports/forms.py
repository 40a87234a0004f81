"""Forms of the contact import pages: the upload, and the analyze screen's choices."""

import copy

from django import forms
from django.conf import settings

from config.forms import StyledFormMixin
from people.imports.rows import (
    ATTRIBUTE,
    DEDUPE_KEYS,
    FIELD_LABELS,
    IGNORE,
    MappedColumn,
    attribute_key_for,
)
from people.imports.source import ENCODINGS, SEPARATOR_LABELS, SEPARATORS, encoding_label
from people.models import AttributeType, ContactImport

NEW_ATTRIBUTE = "new"


class UploadForm(StyledFormMixin, forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Comma, semicolon, tab or pipe separated; any common encoding.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,text/csv"}),
    )

    def clean_file(self):
        file = self.cleaned_data["file"]
        limit = settings.CONTACT_IMPORT_MAX_BYTES
        if file.size > limit:
            raise forms.ValidationError(
                f"The file is {file.size / 1048576:,.1f} MB; contact imports take files up to "
                f"{limit / 1048576:,.0f} MB."
            )
        return file


def _target_choices(definitions: dict[str, str]) -> list:
    choices = [(IGNORE, "— ignore this column —")]
    choices.append(("Fields", [(name, label) for name, label in FIELD_LABELS.items()]))
    if definitions:
        choices.append(
            (
                "Custom attributes",
                [(f"attr:{key}", f"{key} ({type_})") for key, type_ in definitions.items()],
            )
        )
    choices.append(("New", [(NEW_ATTRIBUTE, "New custom attribute…")]))
    return choices


class AnalyzeForm(StyledFormMixin, forms.Form):
    """The analyze screen: file settings, one target per column, matching, policy, tags."""

    encoding = forms.ChoiceField(label="Encoding")
    separator = forms.ChoiceField(
        label="Separator", choices=[(s, SEPARATOR_LABELS[s]) for s in SEPARATORS]
    )
    header = forms.BooleanField(label="The first row names the columns", required=False)
    dedupe = forms.ChoiceField(
        label="Match existing people by",
        choices=[(k, FIELD_LABELS[k]) for k in DEDUPE_KEYS],
        widget=forms.RadioSelect,
    )
    policy = forms.ChoiceField(
        label="When a person already exists",
        choices=ContactImport.Policy.choices,
        widget=forms.RadioSelect,
    )
    tags = forms.CharField(
        label="Tags for every imported person",
        required=False,
        max_length=2000,
        help_text="Comma-separated. Remove the default tag or add others.",
    )
    phone_region = forms.CharField(
        label="Country of phone numbers written without +",
        required=False,
        max_length=2,
        help_text="Two letters, e.g. GB or FR. Leave empty to require +country code.",
        widget=forms.TextInput(attrs={"size": 3, "class": "max-w-6rem"}),  # no style=: CSP
    )

    def __init__(self, job: ContactImport, definitions: dict[str, str], *args, **kwargs):
        self.job = job
        self.definitions = definitions
        analysis = job.analysis or {}
        options = job.options or {}
        columns = analysis.get("columns", [])
        mapping = {m["column"]: MappedColumn.from_dict(m) for m in options.get("mapping", [])}
        initial = {
            "encoding": options.get("encoding") or analysis.get("encoding"),
            "separator": options.get("separator") or analysis.get("separator"),
            "header": options.get("header", analysis.get("header", True)),
            "dedupe": options.get("dedupe", "external_id"),
            "policy": options.get("policy", ContactImport.Policy.SKIP),
            "tags": ", ".join(options.get("tags", [])),
            "phone_region": options.get("phone_region", ""),
        }
        for index, header in enumerate(columns):
            column = mapping.get(index) or MappedColumn(index, header, IGNORE)
            if column.target == ATTRIBUTE and column.key in definitions:
                target = f"attr:{column.key}"
            elif column.target == ATTRIBUTE:
                target = NEW_ATTRIBUTE
            else:
                target = column.target
            initial[f"map_{index}"] = target
            initial[f"key_{index}"] = column.key or attribute_key_for(header, index)
            initial[f"type_{index}"] = column.type or AttributeType.STRING
        # The fields depend on the file: build them before Form.__init__ copies them, so
        # StyledFormMixin (which validates a bound form in __init__) sees them all.
        fields = copy.deepcopy(type(self).base_fields)
        encodings = dict(ENCODINGS)
        detected = analysis.get("encoding") or initial["encoding"]
        if detected and detected not in encodings:
            encodings[detected] = encoding_label(detected)
        fields["encoding"].choices = list(encodings.items())
        target_choices = _target_choices(definitions)
        self.columns = []
        for index, header in enumerate(columns):
            # The mapping table shows these without <label>s: aria-label names them.
            label = f"Column “{header}”"
            fields[f"map_{index}"] = forms.ChoiceField(
                label=label,
                choices=target_choices,
                widget=forms.Select(attrs={"aria-label": label}),
            )
            label = f"New attribute name for “{header}”"
            fields[f"key_{index}"] = forms.CharField(
                label=label,
                required=False,
                max_length=100,
                widget=forms.TextInput(attrs={"aria-label": label}),
            )
            label = f"Type of the new attribute for “{header}”"
            fields[f"type_{index}"] = forms.ChoiceField(
                label=label,
                choices=AttributeType.choices,
                required=False,
                widget=forms.Select(attrs={"aria-label": label}),
            )
            self.columns.append(index)
        if not columns:
            # The analysis failed before finding columns: only the file settings can be
            # chosen again (another encoding, separator...).
            for name in ("dedupe", "policy", "tags", "phone_region"):
                del fields[name]
        self.base_fields = fields
        super().__init__(*args, initial=initial, **kwargs)
        for name in ("dedupe", "policy"):
            if name in self.fields:  # radios are rendered one by one (radios.html)
                self.fields[name].widget.attrs["class"] = "form-check-input"
        for name, field in self.fields.items():
            if name.startswith(("map_", "type_")):
                field.widget.attrs["class"] += " form-select-sm"
            elif name.startswith("key_"):
                field.widget.attrs["class"] += " form-control-sm"

    def mapping_rows(self):
        """Per column: header, sample cells of the preview, and its three fields."""
        analysis = self.job.analysis or {}
        preview = analysis.get("preview", [])
        for index, header in enumerate(analysis.get("columns", [])):
            samples = [row[index] for row in preview[:3] if index < len(row) and row[index]]
            yield {
                "index": index,
                "header": header,
                "samples": samples,
                "target": self[f"map_{index}"],
                "key": self[f"key_{index}"],
                "type": self[f"type_{index}"],
            }

    def options(self) -> dict:
        data = self.cleaned_data
        options = {
            "encoding": data["encoding"],
            "separator": data["separator"],
            "header": data["header"],
        }
        if "dedupe" not in self.fields:
            return options
        mapping = []
        for index in self.columns:
            header = self.job.analysis["columns"][index]
            target = data.get(f"map_{index}") or IGNORE
            if target.startswith("attr:"):
                key = target.removeprefix("attr:")
                column = MappedColumn(index, header, ATTRIBUTE, key, self.definitions[key])
            elif target == NEW_ATTRIBUTE:
                key = (data.get(f"key_{index}") or "").strip() or attribute_key_for(header, index)
                type_ = data.get(f"type_{index}") or AttributeType.STRING
                new = key not in self.definitions
                column = MappedColumn(index, header, ATTRIBUTE, key, type_, new)
            else:
                column = MappedColumn(index, header, target)
            mapping.append(column.as_dict())
        return {
            **options,
            "mapping": mapping,
            "dedupe": data["dedupe"],
            "policy": data["policy"],
            "tags": [t for t in (data.get("tags") or "").split(",") if t.strip()],
            "phone_region": (data.get("phone_region") or "").strip().upper(),
        }
