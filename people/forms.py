import math
import re

from django import forms

from config.forms import StyledFormMixin
from people.models import AttributeType, ContactChannel
from people.selectors import QuickFilters
from segments.rules.operators import offered_ops, op_label, value_kind
from segments.rules.schema import RELATIVE_UNITS

_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def whole_number(text: str) -> int | None:
    """The value of `text` when it is 1-18 ASCII digits (any Herald id fits a bigint),
    else None. Not str.isdigit(): it accepts "²" and "١", which int() refuses or reads
    as other digits, and any length, which int() refuses past 4300 digits."""
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None


# The quick filters over the send ledger (seed 003: "contacted within a period", "reached on
# a channel"): message conditions of the rule tree (shared/API.md, Segments), compiled
# with the others by the segment compiler. value -> (operator, days; None: any time).
CONTACTED_CHOICES = [
    ("", "Any time or never"),
    ("1", "In the last 24 hours"),
    ("7", "In the last 7 days"),
    ("30", "In the last 30 days"),
    ("90", "In the last 90 days"),
    ("ever", "Ever"),
    ("not-30", "Not in the last 30 days"),
    ("not-90", "Not in the last 90 days"),
    ("never", "Never"),
]
_CONTACTED = {
    "1": ("received", 1), "7": ("received", 7), "30": ("received", 30),
    "90": ("received", 90), "ever": ("received", None), "not-30": ("not_received", 30),
    "not-90": ("not_received", 90), "never": ("not_received", None),
}  # fmt: skip
REACHED_CHOICES = [("", "Any channel"), ("email", "Email"), ("sms", "SMS"), ("push", "Push")]


class QuickFilterForm(StyledFormMixin, forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=200)
    tags = forms.CharField(
        required=False, label="Tags", help_text="Comma-separated; all must apply."
    )
    gender = forms.CharField(required=False, max_length=32)
    country = forms.CharField(required=False, max_length=100)
    city = forms.CharField(required=False, max_length=100)
    address = forms.CharField(required=False, max_length=255, label="Address contains")
    company = forms.CharField(required=False, max_length=200)
    # Applied by the view (audiences sit above people): people in the target audience.
    in_audience = forms.CharField(required=False, max_length=200)
    # Applied by the view as a message condition (the ledger belongs to campaigns)
    contacted = forms.ChoiceField(required=False, choices=CONTACTED_CHOICES, label="Contacted")
    reached = forms.ChoiceField(required=False, choices=REACHED_CHOICES, label="Reached on")
    rules = forms.CharField(required=False, widget=forms.HiddenInput)
    # The advanced filters' relative date units, for the shared value input
    # (templates/segments/builder_value.html).
    relative_units = RELATIVE_UNITS

    def audience_name(self) -> str:
        data = self.cleaned_data if self.is_valid() else {}
        return " ".join((data.get("in_audience") or "").split())

    def message_rule(self) -> dict | None:
        """ "Contacted" and "Reached on" as one message condition: "was sent an email in
        the last 7 days", "was never sent an SMS"; None when neither is chosen. "Reached on"
        alone means reached on that channel at any time."""
        data = self.cleaned_data if self.is_valid() else {}
        contacted, channel = data.get("contacted") or "", data.get("reached") or ""
        if not contacted and not channel:
            return None
        op, days = _CONTACTED.get(contacted, ("received", None))
        rule: dict = {"message": {"channel": channel} if channel else {}, "op": op}
        if days is not None:
            rule["time"] = {"op": "within_last", "unit": "days", "amount": days}
        return rule

    def filters(self) -> QuickFilters:
        data = self.cleaned_data if self.is_valid() else {}
        tags = [t.strip() for t in (data.get("tags") or "").split(",") if t.strip()]
        return QuickFilters(
            q=data.get("q") or "",
            tags=tags,
            gender=data.get("gender") or "",
            country=data.get("country") or "",
            city=data.get("city") or "",
            address=data.get("address") or "",
            company=data.get("company") or "",
        )


class TagForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=100, label="Tag name")


class DncAddForm(StyledFormMixin, forms.Form):
    channel = forms.ChoiceField(choices=ContactChannel.choices)
    address = forms.CharField(
        max_length=512, help_text="An email, a phone number with country code, or a push token."
    )
    reason = forms.CharField(max_length=255, required=False)


class DncImportForm(StyledFormMixin, forms.Form):
    channel = forms.ChoiceField(choices=ContactChannel.choices)
    file = forms.FileField(help_text="CSV or text: one address per line (first column).")
    reason = forms.CharField(max_length=255, required=False)


class AttributeForm(StyledFormMixin, forms.Form):
    key = forms.RegexField(
        regex=r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$",
        max_length=100,
        error_messages={"invalid": "Use letters, digits, _ . - and start with a letter or _."},
    )
    label = forms.CharField(max_length=150, required=False)
    type = forms.ChoiceField(choices=AttributeType.choices)


# --- Advanced filters: a rule builder over the segment rule tree ---------------------------
# Conditions within a group are combined with AND; groups with OR ("or+" adds a group).
# The builder posts flat fields c-<group>-<row>-{attribute,op,value,amount,unit}; the tree
# it produces is the one of shared/API.md, compiled by segments.rules like any segment.

# The operators offered for each type and their labels come from the rule tree's one table
# (segments.rules.schema, with labels in segments.rules.operators), as in the segment
# builder. Built-in attributes: people.attributes.BUILTIN_ATTRIBUTES.


class BuilderError(ValueError):
    def __init__(self, group: int, row: int, message: str):
        super().__init__(message)
        self.group, self.row, self.message = group, row, message


def _number(text: str):
    text = text.strip().replace(",", ".")
    value = float(text)
    if not math.isfinite(value):  # "nan", "inf", "1e999": no attribute holds one
        raise ValueError(text)
    return int(value) if value.is_integer() and "." not in text else value


# Group and row indexes: ASCII digits of a sane length (see whole_number).
_BUILDER_FIELD = re.compile(r"c-([0-9]{1,9})-([0-9]{1,9})-([^-]+)")
_ADD_ROW = re.compile(r"add:([0-9]{1,9})")
_REMOVE_ROW = re.compile(r"remove:([0-9]{1,9}):([0-9]{1,9})")


def parse_builder(data) -> list[list[dict]]:
    """The groups of rows posted by the builder, each row a dict of its raw fields."""
    rows: dict[tuple[int, int], dict] = {}
    for key, value in data.items():
        match = _BUILDER_FIELD.fullmatch(key)
        if match:  # any other name is not the builder's: ignored
            g, r, name = match.groups()
            rows.setdefault((int(g), int(r)), {})[name] = value
    groups: dict[int, list[dict]] = {}
    for (g, _row), row in sorted(rows.items()):
        groups.setdefault(g, []).append(row)
    return [groups[g] for g in sorted(groups)]


def apply_builder_action(groups: list[list[dict]], action: str) -> list[list[dict]]:
    """add:<g> adds a row to group g, or adds a group, remove:<g>:<r> removes a row."""
    groups = [list(g) for g in groups]
    add, remove = _ADD_ROW.fullmatch(action), _REMOVE_ROW.fullmatch(action)
    if action == "or":
        groups.append([{}])
    elif add:
        g = int(add[1])
        if 0 <= g < len(groups):
            groups[g].append({})
        else:
            groups.append([{}])
    elif remove:
        g, r = int(remove[1]), int(remove[2])
        if 0 <= g < len(groups) and 0 <= r < len(groups[g]):
            del groups[g][r]
            if not groups[g]:
                del groups[g]
    # Anything else is not one of the builder's buttons: ignored, like a stale page's.
    return groups


def builder_tree(groups: list[list[dict]], types: dict[str, str]) -> dict | None:
    """The rule tree of complete rows, or None when no row is complete. Raises BuilderError
    naming the row whose value does not fit its operator."""
    any_of = []
    for g, rows in enumerate(groups):
        all_of = []
        for r, row in enumerate(rows):
            attribute = (row.get("attribute") or "").strip()
            op = (row.get("op") or "").strip()
            if not attribute or not op:
                continue
            attr_type = types.get(attribute)
            if attr_type is None:
                raise BuilderError(g, r, f"“{attribute}” is not a known attribute.")
            if op not in offered_ops(attr_type):
                raise BuilderError(g, r, f"“{op_label(op)}” does not apply to {attr_type}s.")
            condition = {"attribute": attribute, "op": op}
            kind = value_kind(attr_type, op)
            raw = (row.get("value") or "").strip()
            try:
                if kind == "relative":
                    amount = whole_number((row.get("amount") or "").strip())
                    if amount is None:
                        raise ValueError
                    condition["value"] = {"amount": amount, "unit": row.get("unit") or "days"}
                elif kind == "list":
                    items = [v.strip() for v in raw.split(",") if v.strip()]
                    if not items:
                        raise ValueError
                    condition["value"] = (
                        [_number(v) for v in items] if attr_type == "number" else items
                    )
                elif kind == "number":
                    condition["value"] = _number(raw)
                elif kind == "boolean":
                    if raw not in {"true", "false"}:
                        raise ValueError
                    condition["value"] = raw == "true"
                elif kind in {"text", "date"}:
                    if not raw:
                        raise ValueError
                    condition["value"] = raw
            except ValueError:
                needs = {
                    "relative": "a whole number of days, weeks or months",
                    "list": "one or more values separated by commas",
                    "number": "a number",
                    "boolean": "yes or no",
                    "text": "a value",
                    "date": "a date",
                }[kind]
                raise BuilderError(g, r, f"{attribute} {op_label(op)} needs {needs}.") from None
            all_of.append(condition)
        if all_of:
            any_of.append({"all": all_of})
    if not any_of:
        return None
    return any_of[0] if len(any_of) == 1 else {"any": any_of}
