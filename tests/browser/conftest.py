"""Playwright driving Debian's Chromium against the live test server."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Every journey runs on a laptop and on a phone (issue: "the journeys run at both widths").
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="session")
def chromium():
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: install Debian's chromium package (.ci/run does)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request):
    """The width a journey runs at: each browser test runs once per entry of VIEWPORTS."""
    return request.param


@pytest.fixture
def page(chromium, live_server, settings, request, viewport):
    # The live server speaks plain http on localhost.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_SSL_REDIRECT = False
    context = chromium.new_context(base_url=live_server.url, viewport=VIEWPORTS[viewport])
    context.set_default_timeout(15_000)
    # Every journey proves the Content-Security-Policy holds: what the browser refuses under
    # it (an inline script or style, a foreign source), and any script error, fails the test.
    context.add_init_script(CSP_VIOLATION_REPORTER)
    page = context.new_page()
    problems = []
    page.on("console", lambda message: _csp_violation(message, problems))
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    if problems:
        pytest.fail("The browser reported:\n" + "\n".join(dict.fromkeys(problems)))


# Runs in every page before its own scripts (Playwright injects it; the policy does not apply).
CSP_VIOLATION_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.effectiveDirective} refused ${e.blockedURI || "inline"}`
  + ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}` + (e.sample ? ` (${e.sample})` : "")
));
"""


def _csp_violation(message, problems):
    text = message.text
    if message.type == "error" and (
        text.startswith("CSP violation:") or "Content Security Policy" in text
    ):
        problems.append(text)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
