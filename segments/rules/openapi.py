"""The rule tree of shared/API.md as JSON Schema, for the API's OpenAPI document: the
shapes segments.rules.schema.parse_rules accepts, built from its own tables, so a client
generating code (or a fuzzer) sends trees of the right shape. What a schema cannot say
(an attribute or event the workspace does not know, an operator that does not fit the
attribute's declared type, a cycle of segments) stays a 422 naming the bad node."""

from segments.rules import schema as rules

REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict:
    return {"$ref": REF.format(name=name)}


def _object(properties: dict, required: list[str], **extra) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        **extra,
    }


def _name(max_length: int) -> dict:
    # a name holds a character that is not white space
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S"}


_SCALAR = {"oneOf": [{"type": "string", "minLength": 1}, {"type": "number"}, {"type": "boolean"}]}
_RELATIVE = _object(
    {
        "amount": {"type": "integer", "minimum": 0, "maximum": rules.MAX_AMOUNT["days"]},
        "unit": {"type": "string", "enum": list(rules.RELATIVE_UNITS)},
    },
    ["amount", "unit"],
)
_VALUE = {
    "description": "A text, number, true/false or YYYY-MM-DD date; a list of them for "
    "in / not_in; {amount, unit} for relative dates; none for is_empty / is_not_empty.",
    "oneOf": [
        *_SCALAR["oneOf"],
        {"type": "array", "items": _SCALAR, "minItems": 1, "maxItems": rules.MAX_LIST_VALUES},
        _RELATIVE,
    ],
}
_WINDOW_AMOUNT = {"type": "integer", "minimum": 0, "maximum": rules.MAX_AMOUNT["minutes"]}
_UNIT = {"type": "string", "enum": list(rules.WINDOW_UNITS)}
_TIME = {
    "description": "Which rows count, relative to the evaluation time; any time if left out.",
    "oneOf": [
        _object({"op": {"type": "string", "const": "any_time"}}, ["op"]),
        _object(
            {
                "op": {"type": "string", "enum": ["within_last", "before_last"]},
                "unit": _UNIT,
                "amount": _WINDOW_AMOUNT,
            },
            ["op", "unit", "amount"],
        ),
        _object(
            {
                "op": {"type": "string", "const": "between_last"},
                "unit": _UNIT,
                "from": _WINDOW_AMOUNT,
                "to": _WINDOW_AMOUNT,
            },
            ["op", "unit", "from", "to"],
        ),
    ],
}

COMPONENTS = {
    "RuleNode": {
        "description": "A group (all, any, not) or a condition (attribute, event, tag, "
        "audience, segment, message). Groups nest at most 20 deep; a tree holds at most 500 nodes.",
        "oneOf": [
            _ref("RuleAll"),
            _ref("RuleAny"),
            _ref("RuleNot"),
            _ref("AttributeCondition"),
            _ref("EventCondition"),
            _ref("TagCondition"),
            _ref("AudienceCondition"),
            _ref("SegmentCondition"),
            _ref("MessageCondition"),
        ],
    },
    "RuleAll": _object(
        {"all": {"type": "array", "items": _ref("RuleNode"), "minItems": 1}}, ["all"]
    ),
    "RuleAny": _object(
        {"any": {"type": "array", "items": _ref("RuleNode"), "minItems": 1}}, ["any"]
    ),
    "RuleNot": _object({"not": _ref("RuleNode")}, ["not"]),
    "AttributeCondition": _object(
        {
            "attribute": {
                **_name(100),
                "description": "A built-in attribute or a declared custom one.",
            },
            "op": {"type": "string", "enum": list(rules.ATTRIBUTE_OPS)},
            "value": _VALUE,
        },
        ["attribute", "op"],
    ),
    "EventCondition": _object(
        {
            "event": _name(200),
            "count": _object(
                {
                    "op": {"type": "string", "enum": list(rules.COUNT_OPS)},
                    "value": {"type": "integer", "minimum": 0, "maximum": rules.MAX_COUNT},
                },
                ["op", "value"],
            ),
            "time": _TIME,
            "where": {
                "type": "array",
                "items": _object(
                    {
                        "property": _name(200),
                        "op": {"type": "string", "enum": list(rules.ATTRIBUTE_OPS)},
                        "value": _VALUE,
                    },
                    ["property", "op"],
                ),
            },
        },
        ["event"],
    ),
    "TagCondition": _object(
        {"tag": _name(100), "op": {"type": "string", "enum": list(rules.TAG_OPS)}},
        ["tag", "op"],
    ),
    "AudienceCondition": _object(
        {"audience": _name(200), "op": {"type": "string", "enum": list(rules.MEMBERSHIP_OPS)}},
        ["audience", "op"],
    ),
    "SegmentCondition": _object(
        {
            "segment": {"type": "integer", "minimum": 1},
            "op": {"type": "string", "enum": list(rules.MEMBERSHIP_OPS)},
        },
        ["segment", "op"],
    ),
    "MessageCondition": _object(
        {
            "message": _object(
                {
                    "campaign": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "A campaign of the workspace; any campaign if left out.",
                    },
                    "channel": {
                        "type": "string",
                        "enum": list(rules.MESSAGE_CHANNELS),
                        "description": "Any channel if left out.",
                    },
                },
                [],
                description="Which messages of the send ledger count ({} for any); test "
                "sends never do.",
            ),
            "op": {
                "type": "string",
                "enum": list(rules.MESSAGE_OPS),
                "description": "received: sent or delivered (window on the send time); "
                "not_received: its negation; opened, clicked: at the open or click time; "
                "bounced: at the send (or attempt) time.",
            },
            "time": _TIME,
        },
        ["message", "op"],
    ),
}
