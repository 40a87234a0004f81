"""One glossary: every page uses the same words, and the help texts that explain a term
are its glossary definition."""

import re
from pathlib import Path

import pytest
from django.utils.html import escape

from accounts.audit import Actor
from accounts.glossary import GLOSSARY, TERMS
from audiences.services import audience_create
from segments.forms import KIND_HELP
from segments.models import SegmentKind

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# Words the glossary replaces (accounts/glossary.py says which word to use instead).
NOT_OUR_WORDS = re.compile(r"\b(customers?|subscribers?|contacts)\b", re.IGNORECASE)


def test_every_page_speaks_of_people_not_customers_contacts_or_subscribers():
    offending = []
    for path in TEMPLATES.rglob("*.html"):
        # the text a person reads: without tags, comments and {% %} / {{ }} code
        text = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}|<[^>]+>", " ", path.read_text(), flags=re.S)
        for line_no, line in enumerate(text.splitlines(), 1):
            if NOT_OUR_WORDS.search(line):
                offending.append(f"{path.relative_to(TEMPLATES)}:{line_no}: {line.strip()}")
    assert not offending, "\n".join(offending)


def test_the_segment_kinds_help_is_the_glossarys_definition():
    for kind in (SegmentKind.SNAPSHOT, SegmentKind.REALTIME, SegmentKind.QUERY):
        assert KIND_HELP[kind] == GLOSSARY[kind].definition
    assert "freezes its members" in KIND_HELP[SegmentKind.SNAPSHOT]


def test_the_glossary_page_defines_each_term_with_an_anchor(client, viewer):
    client.force_login(viewer)
    page = client.get("/glossary/")
    assert page.status_code == 200
    html = page.content.decode()
    for term in TERMS:
        assert f'id="{term.key}"' in html and escape(term.definition) in html
    # the sidebar links to it from every page
    assert 'href="/glossary/"' in client.get("/people/").content.decode()


def test_a_term_on_a_page_links_to_its_definition(client, viewer, workspace):
    client.force_login(viewer)
    audience = audience_create(workspace=workspace, name="Winter", actor=Actor(system="tests"))
    html = client.get(f"/audiences/{audience.pk}/").content.decode()
    assert 'href="/glossary/#members"' in html
    assert 'href="/glossary/#snapshot"' in client.get("/segments/").content.decode()


@pytest.mark.parametrize("url", ["/settings/members/", "/"])
def test_the_people_who_sign_in_are_the_team_not_members(member_client, url):
    html = member_client("admin").get(url).content.decode()
    assert ">Team<" in html
