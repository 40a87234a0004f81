"""Why a person is in or out of a segment: stored membership and, for rule segments, every
condition of the tree true or false for them. Shown on a segment's page and on a profile."""

from dataclasses import dataclass, field
from datetime import datetime

from segments import selectors
from segments.models import Segment, SegmentKind
from segments.rules import RuleError, explain_rules, parse_rules

PROFILE_SEGMENTS = 15  # segments explained on a profile (one query or two each)


@dataclass
class Explanation:
    segment: Segment
    member: bool | None = None  # in the segment now (stored membership for stored kinds)
    rules_say: bool | None = None  # what the rules say now, for rule kinds
    rows: list[dict] = field(default_factory=list)
    note: str = ""
    error: str = ""

    @property
    def pending(self) -> bool:
        """Stored membership and the rules disagree until the next refresh."""
        return (
            self.rules_say is not None
            and self.member is not None
            and (self.rules_say != self.member)
        )


_GROUP_LABELS = {
    "all": "All of these (AND)",
    "any": "Any of these (OR)",
    "not": "Not this",
}


def _explain_rows(rows: list[tuple[str, str, bool]]) -> list[dict]:
    """explain_rules' (path, words, value) rows with their depth and, for groups, a label."""
    out = []
    for index, (path, text, value) in enumerate(rows):
        depth = sum(1 for part in path.split(".") if part in _GROUP_LABELS)
        group = ""
        if index + 1 < len(rows):  # parents come first: a group's first child follows it
            prefix = f"{path}." if path else ""
            following = rows[index + 1][0]
            if following.startswith(prefix):
                group = _GROUP_LABELS.get(following[len(prefix) :].split(".")[0], "")
        out.append(
            {"path": path, "text": text, "value": value, "group": group, "indent": depth * 1.25}
        )
    return out


def explain_segment(segment: Segment, person, *, workspace, now: datetime) -> Explanation:
    """Whether `person` is in `segment` and, for rule segments, each condition of its tree
    true or false for them."""
    result = Explanation(segment)
    if segment.kind == SegmentKind.EVERYONE:
        result.member, result.note = True, "Everyone in the workspace is in this segment."
        return result
    if segment.kind == SegmentKind.STATIC:
        result.member = selectors.segment_contains(segment=segment, person=person, now=now)
        result.note = "A static list: people are added from the People page, by hand."
        return result
    if segment.kind != SegmentKind.SNAPSHOT:  # stored members: in or out since the last refresh
        result.member = selectors.segment_contains(segment=segment, person=person, now=now)
    try:
        tree = parse_rules(segment.rules)
        rows = explain_rules(tree, person, workspace=workspace, now=now)
    except RuleError as e:
        result.error = f"The rules cannot be evaluated: {e.message}"
        return result
    result.rows = _explain_rows(rows)
    result.rules_say = rows[0][2]
    if segment.kind == SegmentKind.SNAPSHOT:
        result.member = result.rules_say
    return result


@dataclass
class ProfileExplanations:
    person: object
    segments: list[Explanation]
    more: bool


def segment_explanations(person, workspace, now: datetime) -> ProfileExplanations:
    """For the profile's "Why in or out": the first segments by name, each with whether the
    person is in it and, for rule segments, every condition true or false for them."""
    segments = list(selectors.segment_list(workspace=workspace)[: PROFILE_SEGMENTS + 1])
    return ProfileExplanations(
        person=person,
        segments=[
            explain_segment(segment, person, workspace=workspace, now=now)
            for segment in segments[:PROFILE_SEGMENTS]
        ],
        more=len(segments) > PROFILE_SEGMENTS,
    )
