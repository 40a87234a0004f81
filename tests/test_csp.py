"""The Content-Security-Policy: every page carries it, and no template holds code or style
it would refuse (inline scripts and event handlers, javascript: URLs, style attributes).
The browser journeys (tests/browser) prove the pages still work under it."""

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.middleware.csp import ContentSecurityPolicyMiddleware
from django.template import engines

TEMPLATES = Path(settings.BASE_DIR) / "templates"

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'sha256-RSoNj9xcw2mQSbV/KQsXV2ewFxkhEvP/Q25l3ZIZ1Gc='"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def test_a_signed_in_page_carries_the_policy(owner_client):
    response = owner_client.get("/")
    assert response.status_code == 200
    assert directives(response) == POLICY
    assert "unsafe" not in response["Content-Security-Policy"]


def test_the_sign_in_page_carries_the_policy(client, db):
    assert directives(client.get("/login/")) == POLICY


def test_the_400_page_carries_the_policy_too(owner_client):
    # BadCharacterMiddleware answers before any view: the policy middleware is above it.
    response = owner_client.get("/people/", {"q": "a\x00b"})
    assert response.status_code == 400
    assert directives(response) == POLICY


def test_the_api_carries_the_policy(client, db):
    assert directives(client.get("/api/v1/openapi.json")) == POLICY


def test_a_page_that_uses_the_nonce_gets_it_in_the_policy(rf):
    # Herald's own pages use none (their header has no nonce); Django's admin does.
    request = rf.get("/")
    middleware = ContentSecurityPolicyMiddleware(lambda request: None)
    middleware.process_request(request)
    page = engines["django"].from_string('<script nonce="{{ csp_nonce }}">run()</script>')
    response = middleware.process_response(request, HttpResponse(page.render({}, request)))
    nonce = re.search(r'nonce="([^"]+)"', response.content.decode())[1]
    assert directives(response)["script-src"] == ["'self'", f"'nonce-{nonce}'"]


# --- What no template may hold ----------------------------------------------------------


class InlineCode(HTMLParser):
    """Collects what the policy would refuse in one page's markup. A template is not quite
    HTML, but a {% tag %} between attributes reads as attributes without a value."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._style: str | None = None

    def handle_starttag(self, tag, attrs):
        names = {name: value for name, value in attrs}
        for name, value in attrs:
            if value is None:
                continue
            if re.fullmatch(r"on[a-z]+", name) or name.startswith(("hx-on:", "hx-on-")):
                self.found.append(f"an inline event handler: <{tag} {name}=...>")
            elif name == "style":
                self.found.append(f"a style attribute: <{tag} style={value!r}>")
            elif value.strip().lower().startswith(("javascript:", "js:")):
                self.found.append(f"code in an attribute: <{tag} {name}={value!r}>")
        executable = names.get("type", "text/javascript") not in DATA_BLOCKS
        if tag == "script" and executable and "src" not in names and "nonce" not in names:
            self.found.append("an inline <script> without a nonce")
        if tag == "style" and "nonce" not in names:
            self._style = ""

    def handle_data(self, data):
        if self._style is not None:
            self._style += data

    def handle_endtag(self, tag):
        if tag == "style" and self._style is not None:
            if csp_hash(self._style) not in settings.SECURE_CSP["style-src"]:
                self.found.append(f"a <style> whose hash is not in style-src: {self._style!r}")
            self._style = None


DATA_BLOCKS = {"application/json", "application/ld+json"}  # not run: the policy allows them


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.found


def csp_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


def templates():
    return sorted(TEMPLATES.rglob("*.html"))


def test_there_are_templates_to_scan():
    assert len(templates()) > 40


@pytest.mark.parametrize("path", templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_holds_inline_code_or_style(path):
    assert inline_code(path.read_text()) == []


def test_the_error_pages_style_is_the_one_the_policy_allows():
    # 400.html and 500.html render without a request, so without a nonce: a hash allows
    # their <style>, and changing it means changing SECURE_CSP (the scan above says so).
    for name in ("400.html", "500.html"):
        text = (TEMPLATES / name).read_text()
        css = re.search(r"<style>(.*?)</style>", text, re.DOTALL)[1]
        assert csp_hash(css) in settings.SECURE_CSP["style-src"], name


@pytest.mark.parametrize(
    "html",
    [
        '<form method="post" onsubmit="return confirm(\'Sure?\')">',
        '<select class="x" onchange="this.form.submit()">',
        '<a href="javascript:void(0)">',
        '<button hx-on:click="alert(1)">',
        "<select hx-vals='js:{a: 1}'>",
        '<div class="card" style="max-width: 640px">',
        "<script>alert(1)</script>",
        '<script type="module">alert(1)</script>',
        "<style>p { color: red }</style>",
    ],
)
def test_the_scan_finds_inline_code(html):
    assert inline_code(html)


@pytest.mark.parametrize(
    "html",
    [
        "<script src=\"{% static 'js/herald.js' %}\" defer></script>",
        '<script nonce="{{ csp_nonce }}">run()</script>',
        '<script type="application/json" id="data">{"a": 1}</script>',
        '<form data-confirm="Delete one=two? onclick=x">',
        "<option {% if only %}selected{% endif %}>Based on the rules, one person</option>",
    ],
)
def test_the_scan_leaves_what_the_policy_allows(html):
    assert inline_code(html) == []
