"""Rule trees in plain words, for the builder, segment lists and explanations:
"City is London AND App Launch at least once in the last 30 days".

Words need no database, but for a message condition's campaign, named by its name when
the caller passes the names (campaign_names reads them) and by its id otherwise.
"""

from datetime import date

from django.apps import apps

from people.attributes import BUILTIN_LABELS
from segments.rules.operators import OP_PHRASES
from segments.rules.schema import (
    All,
    Any,
    AttributeCondition,
    AudienceCondition,
    Count,
    EventCondition,
    MessageCondition,
    Node,
    Not,
    PropertyFilter,
    RelativeDate,
    SegmentCondition,
    TagCondition,
    Window,
    iter_nodes,
)

# lt..gt read as before/after when they compare dates.
_DATE_COMPARISONS = {"lt": "before", "lte": "until", "gte": "since", "gt": "after"}


def describe_rules(tree: Node, *, workspace=None) -> str:
    """The whole tree in words; nested groups in parentheses. With the workspace, the
    campaigns of message conditions are named by their names (one query, when any)."""
    campaigns = campaign_names(tree, workspace=workspace) if workspace is not None else {}
    return describe_node(tree, campaigns=campaigns)


def campaign_names(tree: Node, *, workspace) -> dict[int, str]:
    """{id: name} of the workspace's campaigns that the tree's message conditions name."""
    ids = {n.campaign for n in iter_nodes(tree) if isinstance(n, MessageCondition)} - {None}
    if not ids:
        return {}
    # Campaigns belong to a higher app (campaigns sits above segments): read, never imported.
    campaign_model = apps.get_model("campaigns", "Campaign")
    return dict(
        campaign_model.objects.for_workspace(workspace).filter(pk__in=ids).values_list("pk", "name")
    )


def describe_node(node: Node, *, campaigns: dict[int, str] | None = None) -> str:
    """One node in words; `campaigns` names campaigns by id (see campaign_names)."""
    campaigns = campaigns or {}
    match node:
        case All(nodes=nodes):
            return " AND ".join(_nested(child, campaigns) for child in nodes)
        case Any(nodes=nodes):
            return " OR ".join(_nested(child, campaigns) for child in nodes)
        case Not(node=child):
            return f"NOT {_nested(child, campaigns)}"
        case AttributeCondition(attribute=name, op=op, value=value):
            return f"{BUILTIN_LABELS.get(name, name)} {_operation(op, value)}"
        case EventCondition():
            return _event(node)
        case TagCondition(tag=tag, op=op):
            return f"has tag {tag}" if op == "has" else f"does not have tag {tag}"
        case AudienceCondition(audience=audience, op=op):
            return f"{'in' if op == 'in' else 'not in'} audience {audience}"
        case SegmentCondition(segment=segment, op=op):
            return f"{'in' if op == 'in' else 'not in'} segment #{segment}"
        case MessageCondition():
            return _message(node, campaigns)
    raise TypeError(f"not a rule node: {node!r}")


def _nested(node: Node, campaigns: dict[int, str]) -> str:
    text = describe_node(node, campaigns=campaigns)
    if isinstance(node, All | Any) and len(node.nodes) > 1:
        return f"({text})"
    return text


def _operation(op: str, value) -> str:
    if op in _DATE_COMPARISONS and isinstance(value, date):
        op = _DATE_COMPARISONS[op]
    return OP_PHRASES[op].format(_value(value))


def _value(value) -> str:
    if isinstance(value, tuple):
        return ", ".join(_value(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, RelativeDate):
        return _amount(value.amount, value.unit)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _amount(amount: int, unit: str) -> str:
    return f"{amount} {unit[:-1] if amount == 1 else unit}"


def _event(node: EventCondition) -> str:
    words = [node.event, _count(node.count)]
    if node.time.op != "any_time":
        words.append(_window(node.time))
    if node.where:
        words.append("where " + " and ".join(_property(where) for where in node.where))
    return " ".join(words)


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _count(count: Count) -> str:
    op, n = count.op, count.value
    if (op == "eq" and n == 0) or (op == "lt" and n == 1):
        return "never"
    return {
        "eq": f"exactly {_times(n)}",
        "lt": f"fewer than {_times(n)}",
        "lte": f"at most {_times(n)}",
        "gte": f"at least {_times(n)}",
        "gt": f"more than {_times(n)}",
    }[op]


def _window(window: Window) -> str:
    if window.op == "within_last":
        return f"in the last {_amount(window.amount, window.unit)}"
    if window.op == "before_last":
        return f"more than {_amount(window.amount, window.unit)} ago"
    return f"between {window.end} and {_amount(window.start, window.unit)} ago"


def _property(where: PropertyFilter) -> str:
    return f"{where.property} {_operation(where.op, where.value)}"


_CHANNEL_WORDS = {"email": "an email", "sms": "an SMS", "push": "a push notification"}
# "{}" is what was sent: "an email", "campaign “Spring sale”", "a message".
_MESSAGE_PHRASES = {
    "received": "was sent {}",
    "not_received": "was not sent {}",
    "opened": "opened {}",
    "clicked": "clicked {}",
    "bounced": "had {} bounce",
}


def _message(node: MessageCondition, campaigns: dict[int, str]) -> str:
    if node.campaign is not None:
        name = campaigns.get(node.campaign)
        what = f"campaign “{name}”" if name is not None else f"campaign #{node.campaign}"
        if node.channel is not None:
            what += f" as {_CHANNEL_WORDS[node.channel]}"
    else:
        what = _CHANNEL_WORDS.get(node.channel, "a message")
    words = _MESSAGE_PHRASES[node.op].format(what)
    if node.time.op != "any_time":
        words += f" {_window(node.time)}"
    return words
