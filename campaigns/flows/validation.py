"""A flow's entry and steps checked before they are stored or published: every problem is
a ValidationError naming the step ("steps.welcome.next": "no step “x”"), so the editor
and the API can point at it. shared/API.md "Flows" gives the shapes.

Checked: the step types and their fields; that every `next` / `yes` / `no` / split path
names a step; that a branch has both paths; that no step leads back to one before it
(the steps are a tree walked from the first); that every step can be reached; that a send
has complete content (or a campaign of the workspace to copy); that the audiences, tags'
names, channels and segments named exist or are well formed. `publish=True` also needs
an entry that can start runs."""

import re
from datetime import time

from django.core.exceptions import ValidationError

MAX_STEPS = 200
STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
UNITS = {"minutes": 60, "hours": 3600, "days": 86_400, "weeks": 604_800}
CHANNELS = ("email", "sms", "push")
STEP_TYPES = ("send", "wait", "wait_for_event", "branch", "split", "add_to_audience",
              "remove_from_audience", "add_tag", "remove_tag", "add_to_dnc", "set_attribute",
              "exit")  # fmt: skip
# the keys of a step that name the steps after it
EXITS = {"branch": ("yes", "no"), "wait_for_event": ("yes", "no")}


def successors(step: dict) -> list[str]:
    """The step ids a step leads to (none: the run is done after it)."""
    kind = step.get("type")
    if kind in EXITS:
        return [step[k] for k in EXITS[kind] if step.get(k)]
    if kind == "split":
        return [p["next"] for p in step.get("paths") or () if isinstance(p, dict) and p.get("next")]
    if kind == "exit":
        return []
    return [step["next"]] if step.get("next") else []


def _duration(raw, path: str, errors: dict) -> dict | None:
    if not isinstance(raw, dict):
        errors[path] = 'must be {"amount", "unit"}'
        return None
    amount, unit = raw.get("amount"), raw.get("unit")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= 10_000:
        errors[f"{path}.amount"] = "must be a whole number from 1 to 10,000"
        return None
    if unit not in UNITS:
        errors[f"{path}.unit"] = f"must be one of {', '.join(UNITS)}"
        return None
    if amount * UNITS[unit] > 366 * 86_400:
        errors[path] = "at most a year"
        return None
    return {"amount": amount, "unit": unit}


def seconds(duration: dict) -> int:
    return duration["amount"] * UNITS[duration["unit"]]


def _check_step(step: dict, path: str, workspace, errors: dict) -> dict:
    """The step as stored, its own fields checked (references are checked after)."""
    from campaigns.models import Campaign, CampaignChannel
    from campaigns.templating import clean_content

    kind = step["type"]
    out = {"id": step["id"], "type": kind}
    if "label" in step:
        out["label"] = str(step.get("label") or "")[:200]
    for key in ("next", *EXITS.get(kind, ())):
        if key in step and step[key] is not None:
            if not isinstance(step[key], str):
                errors[f"{path}.{key}"] = "must be a step id"
            else:
                out[key] = step[key]
    if kind == "send":
        if step.get("template") is not None:
            template = step["template"]
            found = None
            if isinstance(template, int) and not isinstance(template, bool):
                found = Campaign.objects.for_workspace(workspace).filter(
                    pk=template, channel__in=CHANNELS).first()  # fmt: skip
            if found is None:
                errors[f"{path}.template"] = "no email, SMS or push campaign of that id here"
            else:
                out["template"] = found.pk
                out["channel"] = found.channel
                out["content"] = found.content
        else:
            channel = step.get("channel")
            if channel not in CHANNELS:
                errors[f"{path}.channel"] = "must be email, sms or push"
            else:
                out["channel"] = channel
                try:
                    out["content"] = clean_content(channel, step.get("content") or {})
                except ValidationError as e:
                    for field, texts in e.message_dict.items():
                        errors[f"{path}.content.{field}"] = texts[0]
        if out.get("channel") == CampaignChannel.BANNER:
            errors[f"{path}.channel"] = "a flow sends email, SMS or push"
    elif kind == "wait":
        if "for" in step and "until" in step:
            errors[path] = "wait either for a duration or until a time, not both"
        elif "for" in step:
            if (duration := _duration(step["for"], f"{path}.for", errors)) is not None:
                out["for"] = duration
        elif "until" in step:
            until = step["until"]
            try:
                parsed = time.fromisoformat(until) if isinstance(until, str) else None
            except ValueError:
                parsed = None
            if parsed is None or len(until) != 5:
                errors[f"{path}.until"] = "must be a time of day as HH:MM"
            else:
                out["until"] = until
            zone = step.get("time_zone", "recipient")
            if zone not in ("recipient", "workspace"):
                errors[f"{path}.time_zone"] = "must be recipient or workspace"
            out["time_zone"] = zone
        else:
            errors[path] = "say how long to wait (for) or until when (until)"
    elif kind == "wait_for_event":
        event = step.get("event")
        if not isinstance(event, str) or not event.strip() or len(event) > 200:
            errors[f"{path}.event"] = "name the event to wait for"
        else:
            out["event"] = event.strip()
        if (duration := _duration(step.get("within"), f"{path}.within", errors)) is not None:
            out["within"] = duration
    elif kind == "branch":
        from segments.rules import RuleError, parse_rules

        try:
            parse_rules(step.get("rules"), workspace=workspace)
            out["rules"] = step.get("rules")
        except RuleError as e:
            errors[f"{path}.rules"] = str(e)
    elif kind == "split":
        paths = step.get("paths")
        if not isinstance(paths, list) or not 2 <= len(paths) <= 5:
            errors[f"{path}.paths"] = "a split has 2 to 5 paths"
        else:
            total, cleaned = 0, []
            for i, p in enumerate(paths):
                percent = p.get("percent") if isinstance(p, dict) else None
                if (
                    isinstance(percent, bool)
                    or not isinstance(percent, int)
                    or not 1 <= percent <= 99
                ):
                    errors[f"{path}.paths.{i}.percent"] = "must be a whole number from 1 to 99"
                    continue
                if not isinstance(p.get("next"), str):
                    errors[f"{path}.paths.{i}.next"] = "name the step this path leads to"
                    continue
                total += percent
                cleaned.append({"percent": percent, "next": p["next"]})
            if len(cleaned) == len(paths) and total != 100:
                errors[f"{path}.paths"] = f"the percentages add up to {total}, not 100"
            out["paths"] = cleaned
    elif kind in ("add_to_audience", "remove_from_audience"):
        from audiences.models import TargetAudience

        audience = step.get("audience")
        known = TargetAudience.objects.for_workspace(workspace)
        if not (isinstance(audience, int) and not isinstance(audience, bool)
                and known.filter(pk=audience).exists()):  # fmt: skip
            errors[f"{path}.audience"] = "no target audience of that id here"
        else:
            out["audience"] = audience
    elif kind in ("add_tag", "remove_tag"):
        tag = step.get("tag")
        if not isinstance(tag, str) or not tag.strip() or len(tag.strip()) > 100:
            errors[f"{path}.tag"] = "name the tag (at most 100 characters)"
        else:
            out["tag"] = " ".join(tag.split())
    elif kind == "add_to_dnc":
        if step.get("channel") not in CHANNELS:
            errors[f"{path}.channel"] = "must be email, sms or push"
        else:
            out["channel"] = step["channel"]
    elif kind == "set_attribute":
        name, value = step.get("attribute"), step.get("value")
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", name):
            errors[f"{path}.attribute"] = "an attribute name: letters, digits and _"
        elif value is not None and not isinstance(value, str | int | float | bool):
            errors[f"{path}.value"] = "must be text, a number, true / false or null"
        else:
            out["attribute"], out["value"] = name, value
    return out


def clean_steps(steps, *, workspace) -> list[dict]:
    """The steps to store (draft or published), or ValidationError naming the step."""
    if not isinstance(steps, list) or not steps:
        raise ValidationError({"steps": "a flow needs at least one step"})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": f"at most {MAX_STEPS} steps"})
    errors: dict[str, str] = {}
    cleaned, ids = [], []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            errors[f"steps.{index}"] = "must be an object"
            continue
        step_id = step.get("id")
        if not isinstance(step_id, str) or not STEP_ID.match(step_id):
            errors[f"steps.{index}.id"] = "a step id: 1-40 letters, digits, - or _"
            continue
        if step_id in ids:
            errors[f"steps.{step_id}.id"] = "two steps have this id"
            continue
        ids.append(step_id)
        if step.get("type") not in STEP_TYPES:
            errors[f"steps.{step_id}.type"] = f"must be one of {', '.join(STEP_TYPES)}"
            continue
        cleaned.append(_check_step(step, f"steps.{step_id}", workspace, errors))
    if errors:
        raise ValidationError(errors)
    by_id = {s["id"]: s for s in cleaned}
    for step in cleaned:
        path = f"steps.{step['id']}"
        for key in EXITS.get(step["type"], ()):
            if not step.get(key):
                errors[f"{path}.{key}"] = (
                    f"a {step['type'].replace('_', ' ')} needs both paths (yes and no)"
                )
        for target in successors(step):
            if target not in by_id:
                errors[f"{path}.next"] = f"no step “{target}”"
    if errors:
        raise ValidationError(errors)
    # from the first step: each reached once on every path (no loop), every step reached
    state: dict[str, str] = {}

    def visit(step_id: str, trail: tuple) -> None:
        if step_id in trail:
            errors[f"steps.{trail[-1]}.next"] = f"leads back to “{step_id}”: steps cannot loop"
            return
        if state.get(step_id) == "done":
            return
        for target in successors(by_id[step_id]):
            visit(target, (*trail, step_id))
        state[step_id] = "done"

    visit(cleaned[0]["id"], ())
    for step in cleaned:
        if step["id"] not in state and f"steps.{step['id']}" not in errors:
            errors[f"steps.{step['id']}"] = "no step leads here: it can never be reached"
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_entry(entry, *, workspace, publish: bool = False) -> dict:
    """The entry to store: {"type": "segment_entry", "segment"} (a real-time segment),
    {"type": "audience", "from": {...}} (people added at publish and later), or
    {"type": "manual"} (people added from the People page or the API only)."""
    from segments.models import Segment, SegmentKind

    if not entry:
        if publish:
            raise ValidationError({"entry": "choose how people enter the flow"})
        return {}
    if not isinstance(entry, dict):
        raise ValidationError({"entry": "must be an object"})
    kind = entry.get("type")
    if kind == "segment_entry":
        segment = None
        if isinstance(entry.get("segment"), int):
            segment = Segment.objects.for_workspace(workspace).filter(pk=entry["segment"]).first()
        if segment is None:
            raise ValidationError({"entry.segment": "no segment of that id here"})
        if segment.kind != SegmentKind.REALTIME:
            raise ValidationError({"entry.segment": "people enter as they enter a real-time "
                                   "segment: this one is not"})  # fmt: skip
        return {"type": kind, "segment": segment.pk}
    if kind == "audience":
        source = entry.get("from")
        if not isinstance(source, dict) or len(source) != 1 or next(iter(source)) not in (
                "segment", "audience", "tags", "companies", "people"):  # fmt: skip
            raise ValidationError({"entry.from": "one of segment, audience, tags, companies "
                                   "or people"})  # fmt: skip
        return {"type": kind, "from": source}
    if kind == "manual":
        return {"type": kind}
    raise ValidationError({"entry.type": "must be segment_entry, audience or manual"})
