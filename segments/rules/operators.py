"""What people read for the rule tree's operators, next to the tables that define them.

The schema (segments.rules.schema) says which operators exist and which apply to which
attribute type; this module says what they are called and which of them a builder offers,
in the order it offers them. Both builders (the People page's advanced filters in
people.forms and the segment builder in segments.forms) and the descriptions
(segments.rules.describe) read these names, so one operator reads the same everywhere.
"""

from people.models import AttributeType
from segments.rules.schema import (
    ABSOLUTE_DATE_OPS,
    COMPARISON_OPS,
    EMPTINESS_OPS,
    EQUALITY_OPS,
    LIST_OPS,
    OPS_BY_TYPE,
    RELATIVE_DATE_OPS,
)

# Attribute (and event property) operators as a builder's select shows them, in the order
# it offers them for any type: a type offers the ones that apply to it, in this order.
OP_LABELS = {
    "is": "is",
    "is_not": "is not",
    "lt": "<",
    "lte": "<=",
    "gte": ">=",
    "gt": ">",
    "in": "is one of",
    "not_in": "is none of",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "contains": "contains",
    "not_contains": "does not contain",
    "before": "before",
    "until": "until",
    "since": "since",
    "after": "after",
    "was": "was exactly",
    "was_within": "was within the last",
    "was_more_than": "was more than",
    "will_be_in": "will be in exactly",
    "will_be_within": "will be within the next",
    "will_be_more_than": "will be more than",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
}

# The same operators in a sentence, for descriptions ("City is London"); {} is the value.
OP_PHRASES = {
    "is": "is {}",
    "is_not": "is not {}",
    "in": "is one of {}",
    "not_in": "is none of {}",
    "lt": "is less than {}",
    "lte": "is at most {}",
    "gte": "is at least {}",
    "gt": "is more than {}",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "starts_with": "starts with {}",
    "ends_with": "ends with {}",
    "contains": "contains {}",
    "not_contains": "does not contain {}",
    "will_be_in": "is in {}",
    "was": "was {} ago",
    "will_be_within": "is within the next {}",
    "was_within": "was within the last {}",
    "will_be_more_than": "is more than {} from now",
    "was_more_than": "was more than {} ago",
    "before": "is before {}",
    "until": "is on or before {}",
    "since": "is on or after {}",
    "after": "is after {}",
}

# Operators the schema accepts for a type but the builders do not offer: a yes/no is one
# value, and dates are compared with before..after (which is what lt..gt on dates mean).
# A stored rule that uses one still shows and saves (see segments.forms).
_NOT_OFFERED = {
    AttributeType.BOOLEAN: LIST_OPS,
    AttributeType.DATE: EQUALITY_OPS + LIST_OPS + COMPARISON_OPS,
    AttributeType.DATETIME: EQUALITY_OPS + LIST_OPS + COMPARISON_OPS,
}

# Event properties are untyped (compared as what their value looks like): the operators
# the builder offers for them, in this order; labels as above.
PROPERTY_OPS = (
    "is", "is_not", "in", "not_in", "lt", "lte", "gte", "gt", "contains", "not_contains",
    "starts_with", "ends_with", "before", "until", "since", "after", "was_within",
    "was_more_than", "is_empty", "is_not_empty",
)  # fmt: skip

# The other conditions' operators (schema COUNT_OPS, TIME_OPS, TAG_OPS, MEMBERSHIP_OPS,
# MESSAGE_OPS and the message channels),
# in the order the segment builder offers them.
COUNT_LABELS = {
    "gte": "at least",
    "gt": "more than",
    "eq": "exactly",
    "lte": "at most",
    "lt": "fewer than",
}
TIME_LABELS = {
    "any_time": "at any time",
    "within_last": "in the last",
    "before_last": "more than … ago",
    "between_last": "between … ago",
}
TAG_LABELS = {"has": "has", "has_not": "does not have"}
MEMBERSHIP_LABELS = {"in": "is in", "not_in": "is not in"}
MESSAGE_LABELS = {
    "received": "was sent",
    "not_received": "was not sent",
    "opened": "opened",
    "clicked": "clicked",
    "bounced": "bounced",
}
CHANNEL_LABELS = {"email": "an email", "sms": "an SMS", "push": "a push notification"}


def op_label(op: str) -> str:
    """The words for an attribute operator (the name itself for one that does not exist)."""
    return OP_LABELS.get(op, op)


def offered_ops(attr_type: str) -> list[str]:
    """The operators a builder offers for an attribute of `attr_type`, in order; none for
    a type that does not exist."""
    applies = OPS_BY_TYPE.get(attr_type, ())
    hidden = _NOT_OFFERED.get(attr_type, ())
    return [op for op in OP_LABELS if op in applies and op not in hidden]


def op_choices(ops) -> list[tuple[str, str]]:
    """(operator, label) pairs for a select."""
    return [(op, op_label(op)) for op in ops]


def value_kind(attr_type: str, op: str) -> str:
    """Which input the value needs: none, relative, date, list, number, boolean or text."""
    if op in EMPTINESS_OPS:
        return "none"
    if op in RELATIVE_DATE_OPS:
        return "relative"
    if op in ABSOLUTE_DATE_OPS:
        return "date"
    if op in LIST_OPS:
        return "list"
    if attr_type == AttributeType.NUMBER:
        return "number"
    if attr_type == AttributeType.BOOLEAN:
        return "boolean"
    return "text"
