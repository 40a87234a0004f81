"""The People page, profile, Tags page, Do Not Contact page and attribute catalogue."""

import csv
import io
import json

import pytest

from accounts.audit import Actor
from people.models import AttributeDefinition, DoNotContact, Person, PersonTag, Tag
from people.services.dnc import dnc_add
from people.services.events import event_ingest_batch
from people.services.people import person_upsert
from people.services.tags import tag_get_or_create, tags_assign
from tests.factories import PersonFactory


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client


def _tag(workspace, name, people):
    tag = tag_get_or_create(workspace=workspace, name=name, actor=Actor(system="tests"))
    tags_assign(
        workspace=workspace,
        tag=tag,
        people=Person.objects.filter(pk__in=[p.pk for p in people]),
        actor=Actor(system="tests"),
    )
    return tag


def test_quick_filters_by_tag_and_city(ops_client, workspace):
    a = PersonFactory(workspace=workspace, city="London", external_id="a")
    b = PersonFactory(workspace=workspace, city="Paris", external_id="b")
    PersonFactory(workspace=workspace, city="london", external_id="c")
    _tag(workspace, "VIP", [a, b])
    page = ops_client.get("/people/", {"tags": "vip", "city": "LONDON"})
    assert page.status_code == 200
    # c is in London too but has no VIP tag; b has the tag but lives in Paris
    assert [p.external_id for p in page.context["rows"]] == ["a"]
    assert page.context["count"].value == 1 and page.context["count"].exact


def test_search_by_name_email_phone_or_external_id(ops_client, workspace):
    person_upsert(
        workspace=workspace,
        external_id="crm-42",
        data={
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": "grace@navy.test",
            "phone": "+447911123456",
        },
        actor=Actor(system="tests"),
    )
    # a fixed last name: a random one starting "Gra" (Graham, Grant) would match "Gra"
    PersonFactory(workspace=workspace, first_name="Alan", last_name="Turing")
    for q in ["crm-42", "GRACE@navy.test", "+44 7911 123456", "Gra", "Grace Hop"]:
        rows = ops_client.get("/people/", {"q": q}).context["rows"]
        assert [p.external_id for p in rows] == ["crm-42"], q


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("noah.brown", ["acme-0301"]),  # the start of an email
        ("ACME-030", ["acme-0302", "acme-0301"]),  # the start of an external id, any case
        ("muller", ["acme-0302"]),  # names without their accents
        ("MÜLLER", ["acme-0302"]),
        ("jo mü", ["acme-0302"]),  # first and last name together
        ("example.com", []),  # the middle of an email is not searched
        ("100%", []),  # LIKE's wildcards are text like any other
        ("acme_03", []),
    ],
)
def test_search_matches_starts_whatever_the_case_and_accents(ops_client, workspace, q, found):
    person_upsert(
        workspace=workspace,
        external_id="acme-0301",
        data={"first_name": "Noah", "last_name": "Brown", "email": "noah.brown@example.com"},
        actor=Actor(system="tests"),
    )
    person_upsert(
        workspace=workspace,
        external_id="acme-0302",
        data={"first_name": "Jö", "last_name": "Müller", "email": "j.m@example.org"},
        actor=Actor(system="tests"),
    )
    PersonFactory(workspace=workspace, external_id="other", first_name="Ann", last_name="Lee")
    page = ops_client.get("/people/", {"q": q})
    assert [p.external_id for p in page.context["rows"]] == found, q
    assert "Matches the start of" in page.content.decode()


def test_keyset_pages_walk_everyone_once(ops_client, workspace):
    Person.objects.bulk_create(
        [Person(workspace=workspace, external_id=f"p{i:03d}") for i in range(120)]
    )
    seen, url = [], "/people/"
    while url:
        page = ops_client.get(url)
        seen += [p.external_id for p in page.context["rows"]]
        after = page.context["next_after"]
        url = f"/people/?after={after}" if after else None
    assert len(seen) == len(set(seen)) == 120


def _walk(client, params, *, forward=True, start=None):
    """Every row of the People page in ?params's order, page after page (or, backwards,
    from the page `start` (its ?after=) by ?before= links), with the last page read."""
    seen, query = [], dict(params, **({"after": start} if start else {}))
    for _ in range(100):
        page = client.get("/people/", query)
        rows = [p.external_id for p in page.context["rows"]]
        seen = seen + rows if forward else rows + seen
        key = page.context["next_after" if forward else "prev_before"]
        if key is None:
            return seen, page
        query = {**params, ("after" if forward else "before"): key}
    raise AssertionError(f"the pages never end: {seen[:60]}")


def forward_first_key(client, sort):
    return client.get("/people/", {"sort": sort}).context["next_after"]


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("name", lambda p: (p.first_name.lower().replace("ü", "u"), p.last_name.lower())),
        ("email", lambda p: p.email),
        ("external_id", lambda p: p.external_id),
        ("city", lambda p: p.city.upper()),
    ],
)
def test_the_people_list_sorts_by_a_column_both_ways_across_pages(ops_client, workspace, sort, key):
    """Sorted by a column, the pages walk everyone once in that order, forward and back,
    ties (the same city) kept apart by the id; Z to A is the exact reverse."""
    cities = ["Paris", "london", "Berlin", "Zürich", "amsterdam"]
    firsts = ["Zoe", "anna", "Ünal", "Bo", "maria", "Uma"]
    Person.objects.bulk_create(
        [
            Person(
                workspace=workspace,
                external_id=f"p{(i * 37) % 120:03d}",
                first_name=firsts[i % 6],
                last_name=f"L{(i * 13) % 7}",
                email=f"{(i * 53) % 120:03d}@x.test",
                city=cities[i % 5],
            )
            for i in range(120)
        ]
    )
    people = list(Person.objects.filter(workspace=workspace))
    expected = [p.external_id for p in sorted(people, key=lambda p: (key(p), p.pk))]
    forward, last = _walk(ops_client, {"sort": sort})
    assert forward == expected
    assert last.context["prev_before"] is not None
    # from the third page back to the first by the "Previous" links
    second = ops_client.get(
        "/people/", {"sort": sort, "after": forward_first_key(ops_client, sort)}
    )
    backward, first = _walk(
        ops_client, {"sort": sort}, forward=False, start=second.context["next_after"]
    )
    assert backward == expected
    assert first.context["prev_before"] is None
    reverse, _ = _walk(ops_client, {"sort": f"-{sort}"})
    assert reverse == list(reversed(expected))


def test_the_sort_is_kept_by_filters_links_and_pages_and_marked_in_the_header(
    ops_client, workspace
):
    Person.objects.bulk_create(
        [Person(workspace=workspace, external_id=f"p{i:03d}", city="Leeds") for i in range(60)]
    )
    page = ops_client.get("/people/", {"sort": "-external_id", "city": "leeds"})
    html = page.content.decode()
    assert [p.external_id for p in page.context["rows"]][:2] == ["p059", "p058"]
    # the header marks the column and its next click sorts the other way
    assert 'aria-sort="descending"' in html
    assert page.context["sort_links"]["external_id"]["href"] == "?city=leeds&sort=external_id"
    # the pager keeps the order and the filter, and says Next rather than Older
    assert "sort=-external_id" in page.context["qs"] and "city=leeds" in page.context["qs"]
    assert "Next →" in html and "Older →" not in html
    # the filter form carries the order, so applying a filter keeps it
    assert '<input type="hidden" name="sort" value="-external_id">' in html


@pytest.mark.parametrize("value", ["", "bogus", "-", "id", "name;drop"])
def test_an_unknown_sort_shows_the_newest_first(ops_client, workspace, value):
    Person.objects.bulk_create([Person(workspace=workspace, external_id=f"p{i}") for i in range(3)])
    page = ops_client.get("/people/", {"sort": value})
    assert page.status_code == 200
    assert [p.external_id for p in page.context["rows"]] == ["p2", "p1", "p0"]


def test_people_page_query_count_does_not_grow_with_rows(
    ops_client, workspace, django_assert_max_num_queries
):
    people = [PersonFactory(workspace=workspace) for _ in range(5)]
    _tag(workspace, "VIP", people)
    with django_assert_max_num_queries(14) as small:
        ops_client.get("/people/", {"tags": "VIP"})
    more = Person.objects.bulk_create(
        [Person(workspace=workspace, external_id=f"x{i}") for i in range(60)]
    )
    _tag(workspace, "VIP", more)
    with django_assert_max_num_queries(len(small.captured_queries)):
        ops_client.get("/people/", {"tags": "VIP"})


def test_large_counts_are_labelled_as_estimates(workspace):
    from people.selectors import count_people, person_list

    Person.objects.bulk_create(
        [Person(workspace=workspace, external_id=f"p{i}") for i in range(30)]
    )
    exact = count_people(person_list(workspace=workspace), exact_up_to=100)
    assert (exact.value, exact.exact) == (30, True)
    estimate = count_people(person_list(workspace=workspace), exact_up_to=10)
    assert not estimate.exact and estimate.value >= 11


def test_bulk_tag_selected_rows_and_all_matching(ops_client, workspace):
    london = [PersonFactory(workspace=workspace, city="London") for _ in range(3)]
    PersonFactory(workspace=workspace, city="Paris")
    r = ops_client.post(
        "/people/bulk/tags/",
        {"city": "London", "person": [london[0].pk], "tag": "Pilot", "action": "add"},
    )
    assert r.status_code == 302 and "city=London" in r.url
    assert PersonTag.objects.filter(tag__name="Pilot").count() == 1
    ops_client.post(
        "/people/bulk/tags/",
        {"city": "London", "all_matching": "1", "tag": "Pilot", "action": "add"},
    )
    assert set(PersonTag.objects.filter(tag__name="Pilot").values_list("person_id", flat=True)) == {
        p.pk for p in london
    }
    ops_client.post(
        "/people/bulk/tags/",
        {"city": "London", "all_matching": "1", "tag": "pilot", "action": "remove"},
    )
    assert not PersonTag.objects.filter(tag__name="Pilot").exists()


def test_bulk_selection_never_reaches_another_workspace(ops_client, workspace, other_workspace):
    theirs = PersonFactory(workspace=other_workspace)
    ops_client.post("/people/bulk/tags/", {"person": [theirs.pk], "tag": "Mine", "action": "add"})
    assert not PersonTag.objects.filter(person=theirs).exists()


def test_viewer_cannot_bulk_tag(client, viewer, workspace):
    client.force_login(viewer)
    p = PersonFactory(workspace=workspace)
    assert (
        client.post(
            "/people/bulk/tags/", {"person": [p.pk], "tag": "X", "action": "add"}
        ).status_code
        == 403
    )


def test_export_csv_escapes_formula_cells(ops_client, workspace):
    person_upsert(
        workspace=workspace,
        external_id="=HYPERLINK(1)",
        data={"first_name": "+cmd", "city": "@evil"},
        actor=Actor(system="tests"),
    )
    PersonFactory(workspace=workspace, external_id="plain", first_name="Ann")
    r = ops_client.post("/people/export/", {"all_matching": "1"})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode("utf-8-sig"))))
    assert rows[0][0] == "external_id"
    by_id = {row[0]: row for row in rows[1:]}
    assert "'=HYPERLINK(1)" in by_id and by_id["'=HYPERLINK(1)"][3] == "'+cmd"
    assert by_id["plain"][3] == "Ann"


def test_export_writes_each_custom_attribute_in_its_column_and_phones_as_they_are(
    ops_client, workspace
):
    from people.services.attributes import attribute_declare

    attribute_declare(workspace=workspace, key="plan", type="string", actor=Actor(system="tests"))
    attribute_declare(workspace=workspace, key="langs", type="list", actor=Actor(system="tests"))
    person_upsert(
        workspace=workspace,
        external_id="p1",
        data={"phone": "+447911123456", "attributes": {"plan": "pro", "langs": ["en", "fr"]}},
        actor=Actor(system="tests"),
    )
    PersonFactory(workspace=workspace, external_id="p2")
    r = ops_client.post("/people/export/", {"all_matching": "1"})
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode("utf-8-sig"))))
    header = rows[0]
    assert header[-2:] == ["langs", "plan"] and "attributes" not in header
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert by_id["p1"]["phone"] == "+447911123456"
    assert (by_id["p1"]["plan"], by_id["p1"]["langs"]) == ("pro", "en|fr")
    assert (by_id["p2"]["plan"], by_id["p2"]["langs"]) == ("", "")


def test_filter_by_target_audience_then_tag_all_of_them(ops_client, workspace, other_workspace):
    from audiences.models import TargetAudience
    from audiences.services import audience_add_people, audience_create

    a = PersonFactory(workspace=workspace, external_id="a", city="London")
    b = PersonFactory(workspace=workspace, external_id="b", city="Paris")
    PersonFactory(workspace=workspace, external_id="c", city="London")
    vip = audience_create(workspace=workspace, name="Spring VIPs", actor=Actor(system="tests"))
    audience_add_people(
        audience=vip, people=Person.objects.filter(pk__in=[a.pk, b.pk]), actor=Actor(system="tests")
    )
    theirs = audience_create(
        workspace=other_workspace, name="Their list", actor=Actor(system="tests")
    )

    page = ops_client.get("/people/", {"in_audience": "spring vips"})
    assert [p.external_id for p in page.context["rows"]] == ["b", "a"]
    page = ops_client.get("/people/", {"in_audience": "Spring VIPs", "city": "London"})
    assert [p.external_id for p in page.context["rows"]] == ["a"]

    # "all N matching" of an audience filter means exactly its members
    ops_client.post(
        "/people/bulk/tags/",
        {"in_audience": "Spring VIPs", "all_matching": "1", "tag": "Spring", "action": "add"},
    )
    tagged = set(PersonTag.objects.filter(tag__name="Spring").values_list("person_id", flat=True))
    assert tagged == {a.pk, b.pk}
    # ... and into another audience: the action's own `audience` field is not the filter
    ops_client.post(
        "/people/bulk/audience/",
        {"in_audience": "Spring VIPs", "city": "Paris", "all_matching": "1",
         "audience": "Paris VIPs", "action": "add"},
    )  # fmt: skip
    paris = TargetAudience.objects.for_workspace(workspace).get(name="Paris VIPs")
    assert list(paris.members.values_list("person_id", flat=True)) == [b.pk]

    # an unknown name (or another workspace's audience) matches nobody and says so
    for name in ["Nope", theirs.name]:
        page = ops_client.get("/people/", {"in_audience": name})
        assert list(page.context["rows"]) == []
        assert f"There is no target audience named “{name}”." in page.content.decode()


def test_unreadable_filters_match_nobody_and_say_why(ops_client, workspace):
    PersonFactory(workspace=workspace, external_id="a")
    PersonFactory(workspace=workspace, external_id="b")
    page = ops_client.get("/people/", {"in_audience": "x" * 201})
    assert page.status_code == 200 and list(page.context["rows"]) == []
    assert "These filters cannot be read" in page.content.decode()
    # A NUL in the address is refused before any view (accounts.middleware).
    assert ops_client.get("/people/", {"city": "Lon\x00don"}).status_code == 400
    for bad in [{"in_audience": "x" * 201}, {"city": "Lon\x00don"}]:
        # "all N matching" of such filters (posted by the form) selects nobody, not everybody
        ops_client.post(
            "/people/bulk/tags/", {**bad, "all_matching": "1", "tag": "Oops", "action": "add"}
        )
        assert not PersonTag.objects.filter(tag__name="Oops").exists()


@pytest.mark.parametrize("value", ["²", "١٢", "9" * 40, "-3", "abc"])
def test_a_mangled_page_link_shows_the_first_page(ops_client, workspace, value):
    PersonFactory(workspace=workspace, external_id="a")
    for key in ("after", "before"):
        page = ops_client.get("/people/", {key: value})
        assert page.status_code == 200
        assert [p.external_id for p in page.context["rows"]] == ["a"]


@pytest.mark.parametrize("value", ["²", "١٢", "9" * 40, "9" * 5000, "-3", "abc", ""])
def test_mangled_ids_in_a_bulk_selection_are_ignored(ops_client, workspace, value):
    chosen = PersonFactory(workspace=workspace, external_id="chosen")
    PersonFactory(workspace=workspace, external_id="other")
    r = ops_client.post(
        "/people/bulk/tags/", {"person": [value, str(chosen.pk)], "tag": "VIP", "action": "add"}
    )
    assert r.status_code == 302
    tagged = PersonTag.objects.filter(tag__name="VIP").values_list("person__external_id", flat=True)
    assert list(tagged) == ["chosen"]
    export = ops_client.post("/people/export/", {"person": [value, str(chosen.pk)]})
    assert export.status_code == 200
    assert len(b"".join(export.streaming_content).decode().splitlines()) == 2


@pytest.mark.parametrize("value", ["²", "١٢", "9" * 40, "9" * 5000, "-3", "abc"])
def test_a_mangled_dnc_page_link_shows_the_first_page(ops_client, workspace, value):
    dnc_add(workspace=workspace, channel="email", address="a@x.test", actor=Actor(system="tests"))
    page = ops_client.get("/dnc/", {"after": value})
    assert page.status_code == 200
    assert [e.address for e in page.context["entries"]] == ["a@x.test"]


def test_the_audience_page_links_to_its_members_on_the_people_page(ops_client, workspace):
    from audiences.services import audience_create

    vip = audience_create(workspace=workspace, name="VIP & friends", actor=Actor(system="tests"))
    page = ops_client.get(f"/audiences/{vip.pk}/").content.decode()
    assert "/people/?in_audience=VIP%20%26%20friends&amp;apply=1" in page


def test_profile_shows_attributes_tags_dnc_events(ops_client, workspace):
    person, _ = person_upsert(
        workspace=workspace,
        external_id="p1",
        data={"email": "p1@x.test", "attributes": {"plan": "pro", "langs": ["en", "fr"]}},
        actor=Actor(system="tests"),
    )
    _tag(workspace, "VIP", [person])
    event_ingest_batch(
        workspace=workspace,
        items=[
            {"person": "p1", "name": "App Launch", "occurred_at": f"2026-11-{d:02d}T10:00:00Z"}
            for d in range(1, 30)
        ]
        + [{"person": "p1", "name": "Purchase", "occurred_at": "2026-10-01T10:00:00Z"}],
        actor=Actor(system="tests"),
    )
    page = ops_client.get(f"/people/{person.pk}/")
    assert page.status_code == 200
    assert "en, fr" in page.text and "VIP" in page.text
    assert len(page.context["events"]) == 25 and page.context["events"][0].occurred_at.day == 29
    older = ops_client.get(f"/people/{person.pk}/", {"events_before": page.context["events_next"]})
    assert [e.name for e in older.context["events"]] == ["App Launch"] * 4 + ["Purchase"]
    only = ops_client.get(f"/people/{person.pk}/", {"event": "Purchase"})
    assert [e.name for e in only.context["events"]] == ["Purchase"]
    assert page.context["dnc"] == {"email": False, "sms": False, "push": False}


def test_profile_adds_email_to_do_not_contact_and_tags(ops_client, workspace):
    person, _ = person_upsert(
        workspace=workspace,
        external_id="p1",
        data={"email": "P1@X.test"},
        actor=Actor(system="tests"),
    )
    ops_client.post(f"/people/{person.pk}/dnc/", {"channel": "email"})
    entry = DoNotContact.objects.for_workspace(workspace).get()
    assert (entry.channel, entry.address, entry.source) == ("email", "p1@x.test", "manual")
    assert ops_client.get(f"/people/{person.pk}/").context["dnc"]["email"] is True
    ops_client.post(f"/people/{person.pk}/tags/", {"name": "Churn risk"})
    tag = Tag.objects.for_workspace(workspace).get(name="Churn risk")
    assert PersonTag.objects.filter(person=person, tag=tag).exists()
    ops_client.post(f"/people/{person.pk}/tags/{tag.pk}/remove/")
    assert not PersonTag.objects.filter(person=person).exists()


def test_tags_page_lists_counts_creates_and_deletes(ops_client, workspace):
    _tag(workspace, "VIP", [PersonFactory(workspace=workspace) for _ in range(2)])
    page = ops_client.get("/tags/")
    assert [(t.name, t.people_count) for t in page.context["tags"]] == [("VIP", 2)]
    assert "already exists" in ops_client.post("/tags/", {"name": "vip"}).text
    ops_client.post("/tags/", {"name": "Beta"})
    beta = Tag.objects.for_workspace(workspace).get(name="Beta")
    r = ops_client.post(f"/tags/{beta.pk}/delete/", follow=True)
    assert "deleted" in r.text and not Tag.objects.filter(pk=beta.pk).exists()


def test_dnc_page_adds_searches_removes(ops_client, workspace):
    r = ops_client.post(
        "/dnc/", {"channel": "sms", "address": "+44 7911 123456", "reason": "asked"}
    )
    assert r.status_code == 302
    assert DoNotContact.objects.for_workspace(workspace).get().address == "+447911123456"
    bad = ops_client.post("/dnc/", {"channel": "email", "address": "nope"})
    assert "not a valid email address" in bad.text
    page = ops_client.get("/dnc/", {"q": "7911"})
    assert [e.address for e in page.context["entries"]] == ["+447911123456"]
    entry = DoNotContact.objects.for_workspace(workspace).get()
    ops_client.post(f"/dnc/{entry.pk}/remove/")
    assert not DoNotContact.objects.for_workspace(workspace).exists()


def test_dnc_csv_import_reports_invalid_lines(ops_client, workspace):
    dnc_add(workspace=workspace, channel="email", address="old@x.test", actor=Actor(system="tests"))
    data = b"email\nA@X.test\nold@x.test\nnot an email\n\nb@x.test\n"
    upload = io.BytesIO(data)
    upload.name = "dnc.csv"
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload})
    assert r.status_code == 200
    report = r.context["report"]
    assert (report.added, report.already) == (2, 1)
    assert report.invalid == [(4, "not an email", "“not an email” is not a valid email address.")]
    assert set(DoNotContact.objects.for_workspace(workspace).values_list("address", flat=True)) == {
        "old@x.test",
        "a@x.test",
        "b@x.test",
    }


def test_dnc_import_refuses_a_binary_file_cleanly(ops_client, workspace):
    upload = io.BytesIO(b"\xff\xfe\x00\x00\x89PNG\x00\x01binary")
    upload.name = "image.csv"
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload})
    assert "not UTF-8 text" in r.text
    assert not DoNotContact.objects.for_workspace(workspace).exists()


def test_attribute_types_are_declared_in_the_ui(ops_client, workspace):
    person_upsert(
        workspace=workspace,
        external_id="p",
        data={"attributes": {"score": "12"}},
        actor=Actor(system="tests"),
    )
    assert AttributeDefinition.objects.for_workspace(workspace).get(key="score").type == "string"
    ops_client.post("/people/attributes/", {"key": "score", "type": "number", "label": "Score"})
    d = AttributeDefinition.objects.for_workspace(workspace).get(key="score")
    assert (d.type, d.inferred) == ("number", False)
    from people.services.people import PersonInputError

    with pytest.raises(PersonInputError, match="number"):
        person_upsert(
            workspace=workspace,
            external_id="p",
            data={"attributes": {"score": "thirteen"}},
            actor=Actor(system="tests"),
        )


def test_save_as_segment_opens_the_builder_with_the_pages_filters(client, workspace, marketer):
    from segments.models import Segment

    PersonFactory(workspace=workspace, external_id="a", city="London")
    PersonFactory(workspace=workspace, external_id="b", city="Paris")
    client.force_login(marketer)
    page = client.get("/people/", {"city": "London", "c-0-0-attribute": "", "q": "a"})
    html = page.content.decode()
    # the empty advanced row a quick filter posts back does not open the advanced filters
    assert 'class="collapse mt-3" id="advanced"' in html
    assert 'id="save-as-segment"' in html and "The search box is not part of a segment" in html
    rules = page.context["segment_rules"]
    assert json.loads(rules) == {"attribute": "city", "op": "is", "value": "London"}
    builder = client.get("/segments/new/", {"rules": rules})
    assert 'name="n-0.0-value" value="London"' in builder.content.decode()
    saved = client.post(
        "/segments/new/",
        {"name": "From people", "kind": "snapshot", "n-0.0-attribute": "city",
         "n-0.0-op": "is", "n-0.0-value": "London"},
    )  # fmt: skip
    assert saved.status_code == 302
    assert Segment.objects.for_workspace(workspace).get(name="From people").rules == json.loads(
        rules
    )


def test_advanced_filters_name_attributes_by_their_labels(client, workspace, marketer):
    from people.services.attributes import attribute_declare

    attribute_declare(
        workspace=workspace,
        key="ltv",
        type="number",
        label="Lifetime value",
        actor=Actor(system="t"),
    )
    client.force_login(marketer)
    html = client.get("/people/").content.decode()
    assert '<option value="ltv" >Lifetime value</option>' in html
    assert '<option value="first_name" >First name</option>' in html
    assert "or+" not in html and "Or group" in html
