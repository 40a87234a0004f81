"""Segment conditions naming snapshot segments: each named segment is read, parsed and
compiled once per compile, and what they inline is counted against one budget, so a chain
of segments naming each other hundreds of times is refused at once instead of expanding
exponentially (400 ** 5 compiles for six links of 400 references)."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from people.models import Person
from segments.explain import segment_explanations
from segments.models import Segment, SegmentKind
from segments.rules import compile_rules, explain_rules, parse_rules
from segments.rules import compiler as rules_compiler
from segments.rules.compiler import MAX_INLINED_NODES, MAX_SEGMENT_NESTING
from segments.rules.schema import RuleError
from tests.factories import PersonFactory

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LONDON = {"attribute": "city", "op": "is", "value": "London"}
PARIS = {"attribute": "city", "op": "is", "value": "Paris"}
LINKS, REFERENCES = 6, 400
# Far more parses than any compile below needs once each segment is parsed once, and far
# fewer than the exponential expansion makes: past it the test stops instead of hanging.
PARSE_LIMIT = 50


class ParsedTooOften(Exception):
    pass


@pytest.fixture
def parses(monkeypatch):
    """How many times the compiler parses a named segment's stored rules; past
    PARSE_LIMIT it raises, so an exponential expansion fails the test quickly."""
    calls = []
    real = rules_compiler.parse_rules

    def counting(payload, **kwargs):
        calls.append(payload)
        if len(calls) > PARSE_LIMIT:
            raise ParsedTooOften(f"parsed named segments' rules more than {PARSE_LIMIT} times")
        return real(payload, **kwargs)

    monkeypatch.setattr(rules_compiler, "parse_rules", counting)
    return calls


def refs(segment, times: int, op: str = "in") -> dict:
    return {"any": [{"segment": segment.pk, "op": op}] * times}


def stored(workspace, name, rules, kind=SegmentKind.SNAPSHOT) -> Segment:
    """A segment row as it may already be stored (written directly, not through the
    services, which now refuse the largest of these)."""
    return Segment.objects.create(workspace=workspace, name=name, kind=kind, rules=rules)


@pytest.fixture
def chain(workspace):
    """Six snapshot segments, each naming the one before it 400 times."""
    PersonFactory(workspace=workspace, external_id="a", city="London")
    PersonFactory(workspace=workspace, external_id="b", city="Paris")
    segments = [stored(workspace, "Link 1", LONDON)]
    for n in range(2, LINKS + 1):
        segments.append(stored(workspace, f"Link {n}", refs(segments[-1], REFERENCES)))
    return segments


def matching(workspace, rules) -> list[str]:
    tree = parse_rules(rules, workspace=workspace)
    people = Person.objects.for_workspace(workspace).filter(
        compile_rules(tree, workspace=workspace, now=NOW)
    )
    return sorted(people.values_list("external_id", flat=True))


def test_a_chain_naming_each_link_400_times_is_refused_without_expanding_it(
    workspace, chain, parses
):
    tree = parse_rules(chain[-1].rules)
    with pytest.raises(RuleError) as refused:
        compile_rules(tree, workspace=workspace, now=NOW)
    assert refused.value.path == "any.0"  # the first reference past the budget
    assert f"more than {MAX_INLINED_NODES}" in refused.value.message
    assert len(parses) <= LINKS  # each named segment parsed once at most


def test_two_links_fit_the_budget_and_a_third_does_not(workspace, chain, parses):
    # Link 2 inlines 400 x Link 1 (1 node) under its own 401 nodes: 801 nodes per mention.
    assert matching(workspace, refs(chain[0], REFERENCES)) == ["a"]
    assert matching(workspace, refs(chain[1], 2)) == ["a"]  # 1602 nodes
    assert len(parses) == 1 + 2  # once per named segment and compile
    with pytest.raises(RuleError, match=f"more than {MAX_INLINED_NODES}") as refused:
        matching(workspace, {"all": [PARIS, *refs(chain[1], 3)["any"]]})  # 2403 nodes
    assert refused.value.path == "all.3"


def test_each_named_segment_is_read_parsed_and_compiled_once(workspace, parses):
    for key, city in [("a", "London"), ("b", "Paris"), ("c", "Rome")]:
        PersonFactory(workspace=workspace, external_id=key, city=city)
    london = stored(workspace, "London", LONDON)
    europe = stored(workspace, "Europe", {"any": [*refs(london, 3)["any"], PARIS]})
    rules = {
        "all": [
            *refs(europe, 4)["any"],
            {"not": {"segment": london.pk, "op": "in"}},
            {"any": [{"segment": europe.pk, "op": "in"}, {"segment": london.pk, "op": "not_in"}]},
        ]
    }
    with CaptureQueriesContext(connection) as queries:
        tree = parse_rules(rules, workspace=workspace)
        q = compile_rules(tree, workspace=workspace, now=NOW)
    assert len(parses) == 2  # Europe and London, once each
    lookups = [s for s in queries.captured_queries if '"segments_segment"' in s["sql"]]
    assert len(lookups) == 2
    people = Person.objects.for_workspace(workspace).filter(q)
    assert sorted(people.values_list("external_id", flat=True)) == ["b"]


def test_stored_kinds_are_read_from_their_members_never_inlined(workspace, chain, parses):
    """A real-time, static or query segment is its stored members: its rules (however
    large their expansion) are neither parsed nor counted."""
    for kind in (SegmentKind.REALTIME, SegmentKind.QUERY, SegmentKind.STATIC):
        segment = stored(
            workspace, f"Stored {kind}", chain[-1].rules if kind != "static" else None, kind
        )
        assert matching(workspace, refs(segment, REFERENCES)) == []
        assert matching(workspace, refs(segment, REFERENCES, op="not_in")) == ["a", "b"]
    everyone = stored(workspace, "All", None, SegmentKind.EVERYONE)
    assert matching(workspace, refs(everyone, REFERENCES)) == ["a", "b"]
    assert parses == []


def test_a_cycle_among_stored_snapshots_is_still_refused(workspace, parses):
    first = stored(workspace, "First", LONDON)
    second = stored(workspace, "Second", refs(first, 2))
    first.rules = {"all": [LONDON, {"segment": second.pk, "op": "in"}]}
    first.save()
    with pytest.raises(RuleError, match="cannot depend on itself"):
        matching(workspace, {"segment": second.pk, "op": "in"})


def test_snapshots_nested_too_deep_are_refused_not_a_recursion_error(workspace, parses):
    links = [stored(workspace, "Deep 0", LONDON)]
    for n in range(1, MAX_SEGMENT_NESTING + 1):
        links.append(stored(workspace, f"Deep {n}", {"segment": links[-1].pk, "op": "in"}))
    # MAX_SEGMENT_NESTING snapshots inside each other are fine...
    assert matching(workspace, {"segment": links[-2].pk, "op": "in"}) == []
    # ... one more is refused, at the condition that names the chain.
    with pytest.raises(RuleError, match="deep") as refused:
        matching(workspace, {"all": [PARIS, {"segment": links[-1].pk, "op": "in"}]})
    assert refused.value.path == "all.1"


def test_explain_on_the_profile_stays_bounded(workspace, chain, parses):
    """The profile's "why in or out" explains every segment of the workspace."""
    person = Person.objects.for_workspace(workspace).get(external_id="a")
    explained = segment_explanations(person, workspace, NOW)
    by_name = {e.segment.name: e for e in explained.segments}
    assert by_name["Link 1"].member is True and by_name["Link 2"].member is True
    for name in ("Link 3", "Link 6"):
        assert by_name[name].error.startswith("The rules cannot be evaluated")
        assert f"more than {MAX_INLINED_NODES}" in by_name[name].error
    rows = explain_rules(parse_rules(chain[1].rules), person, workspace=workspace, now=NOW)
    assert rows[0][2] is True and len(rows) == REFERENCES + 1


# --- The API and the builder refuse them on save, count them with a 422 ---------------------


def test_api_refuses_to_save_rules_past_the_budget_with_a_422(api_client, chain, parses):
    body = {"name": "Link 7", "kind": "snapshot", "rules": refs(chain[-1], 2)}
    r = api_client.post("/api/v1/segments", body, content_type="application/json")
    assert r.status_code == 422, r.content
    assert r.json()["errors"][0]["loc"] == ["body", "rules", "any", 0]
    assert f"more than {MAX_INLINED_NODES}" in r.json()["errors"][0]["msg"]
    assert not Segment.objects.filter(name="Link 7").exists()
    r = api_client.patch(
        f"/api/v1/segments/{chain[0].pk}",
        {"rules": refs(chain[2], 1)},
        content_type="application/json",
    )
    assert r.status_code == 422, r.content
    r = api_client.post(
        "/api/v1/segments/preview", {"rules": refs(chain[-1], 1)}, content_type="application/json"
    )
    assert r.status_code == 422, r.content


def test_api_counts_lists_and_checks_a_stored_chain_with_a_422(api_client, chain, parses):
    r = api_client.get(f"/api/v1/segments/{chain[-1].pk}/count")
    assert r.status_code == 422, r.content
    assert f"more than {MAX_INLINED_NODES}" in r.json()["detail"]
    assert api_client.get(f"/api/v1/segments/{chain[1].pk}/count").json()["count"] == 1
    for url in ("members", "contains/a"):
        r = api_client.get(f"/api/v1/segments/{chain[-1].pk}/{url}")
        assert r.status_code == 422, r.content
        assert f"more than {MAX_INLINED_NODES}" in r.json()["detail"]
    assert api_client.get(f"/api/v1/segments/{chain[1].pk}/contains/a").json() == {"member": True}


def test_builder_shows_the_budget_as_a_form_error(client, marketer, chain, parses):
    client.force_login(marketer)
    data = {
        "name": "Too big",
        "kind": "snapshot",
        "n-0-type": "group",
        "n-0-match": "any",
        "n-0.0-type": "segment",
        "n-0.0-segment": str(chain[-1].pk),
        "n-0.0-member_op": "in",
    }
    r = client.post("/segments/new/", data)
    assert r.status_code == 200
    assert f"more than {MAX_INLINED_NODES}" in r.content.decode()
    assert not Segment.objects.filter(name="Too big").exists()
    r = client.get(f"/segments/{chain[-1].pk}/")
    assert r.status_code == 200
    assert f"more than {MAX_INLINED_NODES}" in r.content.decode()
