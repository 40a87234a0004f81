"""OpenFeature Remote Evaluation Protocol (OFREP) at /ofrep/v1/: a feature flag or A/B test
in any OpenFeature SDK can target a Herald segment. The flag key `segment-<id>` evaluates
to whether the context's targetingKey (an external id) is a member now, from stored
membership (segments.selectors.flag_segments: a snapshot is not a flag). Contract:
shared/API.md, "Real-time ingestion"; protocol: open-feature/protocol, ofrep-api."""

import re
from typing import Any

from django.utils import timezone
from ninja import Router, Schema
from ninja.responses import Status
from pydantic import ConfigDict

from people.models import Person
from people.selectors import person_ref
from segments import selectors
from segments.models import Segment
from segments.rules import RuleError

router = Router(tags=["OpenFeature"])

FLAG_KEY = re.compile(r"segment-(\d{1,18})")


class Context(Schema):
    # SDKs send every attribute of their evaluation context beside the targeting key
    model_config = ConfigDict(extra="allow")
    targetingKey: str | None = None  # noqa: N815 - the protocol's name


class EvaluationIn(Schema):
    model_config = ConfigDict(extra="allow")
    context: Context | None = None


class EvaluationOut(Schema):
    key: str
    value: bool
    reason: str
    variant: str
    metadata: dict[str, Any] = {}


class EvaluationError(Schema):
    key: str
    errorCode: str  # noqa: N815
    errorDetails: str  # noqa: N815


class BulkOut(Schema):
    flags: list[EvaluationOut | EvaluationError]


def _person(request, payload: EvaluationIn) -> Person | None | str:
    key = (payload.context.targetingKey if payload.context else None) or ""
    if not key.strip():
        return "missing"
    return person_ref(workspace=request.workspace, external_id=key.strip())


def _flag(segment: Segment, member: bool) -> dict:
    return {
        "key": f"segment-{segment.pk}",
        "value": member,
        "reason": "TARGETING_MATCH" if member else "DEFAULT",
        "variant": "in" if member else "out",
        "metadata": {"segment": segment.name, "kind": segment.kind},
    }


def _rules_broken(key: str, e: RuleError):
    return Status(
        400, {"key": key, "errorCode": "GENERAL", "errorDetails": f"The segment's rules: {e}"}
    )


def _missing_key(key: str):
    return Status(
        400,
        {"key": key, "errorCode": "TARGETING_KEY_MISSING",
         "errorDetails": "context.targetingKey (the person's external id) is required"},
    )  # fmt: skip


@router.post(
    "/evaluate/flags/{key}",
    response={200: EvaluationOut, 400: EvaluationError, 404: EvaluationError},
    summary="Evaluate one flag: is the person in the segment?",
)
def evaluate_flag(request, key: str, payload: EvaluationIn):
    match = FLAG_KEY.fullmatch(key)
    segment = (
        selectors.flag_segment(workspace=request.workspace, pk=int(match[1])) if match else None
    )
    if segment is None:
        return Status(
            404,
            {"key": key, "errorCode": "FLAG_NOT_FOUND",
             "errorDetails": "No flag of this key: flags are segment-<id> of a segment with "
                             "stored membership (real-time, query, static, everyone, built-in)."},
        )  # fmt: skip
    person = _person(request, payload)
    if person == "missing":
        return _missing_key(key)
    if person is None:  # someone Herald does not know is in no segment
        return _flag(segment, False)
    try:
        member = selectors.segment_contains(segment=segment, person=person, now=timezone.now())
    except RuleError as e:
        return _rules_broken(key, e)
    return _flag(segment, member)


@router.post(
    "/evaluate/flags",
    response={200: BulkOut, 400: EvaluationError},
    summary="Evaluate every flag (each flag segment) for the person",
)
def evaluate_flags(request, payload: EvaluationIn):
    person = _person(request, payload)
    if person == "missing":
        return _missing_key("")
    members = set()
    if person is not None:
        # every flag from the person's memberships, read once (not one query per flag)
        try:
            found = selectors.person_segments(
                workspace=request.workspace, person=person, now=timezone.now()
            )
        except RuleError as e:
            return _rules_broken("", e)
        members = {segment.pk for segment, _ in found}
    flags = selectors.flag_segments(workspace=request.workspace).order_by("id")
    return {"flags": [_flag(segment, segment.pk in members) for segment in flags]}
