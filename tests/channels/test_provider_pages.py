"""Settings -> Channels in the UI: a channel's provider page (choose the kind, fill in its
fields, save through channels.services.provider_set with its errors at the fields), the
"send a test message" form, read-only for roles below admin, and only the workspace's own
account ever shown."""

import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.audit import Actor
from accounts.models import Role
from channels.forms import CATALOGUE, MADE_BY_HERALD, fields_for, kinds_for
from channels.models import Provider, SandboxMessage
from channels.providers import KINDS_BY_CHANNEL, KINDS_BY_PLATFORM, SPECS
from channels.secrets import unseal
from channels.services import provider_set
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CSP_VIOLATION_REPORTER,
    VIEWPORTS,
    _csp_violation,
)
from tests.browser.journey import nav_to
from tests.browser.test_layout import LAYOUT_PROBLEMS
from tests.factories import PASSWORD, MembershipFactory, UserFactory

EMAIL_PAGE = "/channels/email/provider/"
SECRET = "hunter2-very-secret"


def _smtp_post(**fields):
    data = {"kind": "smtp", "smtp-host": "127.0.0.1", "smtp-security": "none",
            "smtp-port": "2525", "smtp-from_email": "news@acme.test", "smtp-from_name": "",
            "smtp-username": "news", "smtp-password": SECRET}  # fmt: skip
    return data | {f"smtp-{name}": value for name, value in fields.items()}


def _set_smtp(workspace, port=2525, **secrets):
    return provider_set(
        workspace=workspace, channel="email", kind="smtp", actor=Actor(system="tests"),
        settings={"host": "127.0.0.1", "port": port, "security": "none",
                  "from_email": "news@acme.test"},
        secrets=secrets,
    )  # fmt: skip


def _checked_kind(html):
    """The kind the chooser has checked."""
    return re.search(r'name="kind" id="kind-[a-z]+" value="([a-z]+)"[^>]*\bchecked', html)[1]


def _provider(workspace, channel="email", platform=""):
    return Provider.objects.for_workspace(workspace).filter(channel=channel, platform=platform)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_catalogue_has_every_field_and_kind_the_providers_module_takes():
    for channel, kinds in KINDS_BY_CHANNEL.items():
        if channel != "push":
            assert [str(k) for k in kinds] == kinds_for(channel), channel  # none left out
        for kind in kinds:
            spec = SPECS[kind]
            shown = {f.name for f in fields_for(kind)}
            assert set(spec.settings) | set(spec.secrets) <= shown | set(MADE_BY_HERALD), kind
            secrets = {f.name for f in fields_for(kind) if f.secret}
            assert secrets == set(spec.secrets) - set(MADE_BY_HERALD), kind
    for platform in ("ios", "android", "web"):
        assert kinds_for("push", platform) == [
            str(k) for k in KINDS_BY_PLATFORM[platform] if k in KINDS_BY_CHANNEL["push"]
        ]
    # every kind shared/API.md names for a sending channel, whether offered yet or not
    assert set(CATALOGUE) >= {"smtp", "anymail", "twilio", "fcm", "apns", "webpush", "sandbox"}


def test_channels_page_links_each_account_to_its_page(admin_client, workspace):
    _set_smtp(workspace)
    page_html = admin_client.get("/channels/").content.decode()
    assert f'href="{EMAIL_PAGE}">Change' in page_html
    assert 'href="/channels/sms/provider/">Set up' in page_html
    for platform in ("ios", "android", "web"):
        assert f'href="/channels/push/provider/{platform}/">Set up' in page_html
    assert "Set one through the API" not in page_html


def test_admin_sets_an_smtp_provider_through_the_page(admin_client, workspace):
    form = admin_client.get(EMAIL_PAGE).content.decode()
    assert 'name="smtp-host"' in form and _checked_kind(form) == "smtp"
    assert "STARTTLS (port 587)" in form and "DKIM signing (optional)" in form
    assert 'aria-describedby="id_smtp-host_helptext"' in form
    assert 'id="id_smtp-host_helptext">The host name' in form
    saved = admin_client.post(EMAIL_PAGE, _smtp_post())
    assert saved.status_code == 302 and saved["Location"] == EMAIL_PAGE
    provider = _provider(workspace).get()
    assert provider.kind == "smtp"
    assert provider.settings == {"host": "127.0.0.1", "port": 2525, "security": "none",
                                 "from_email": "news@acme.test", "username": "news"}  # fmt: skip
    assert unseal(provider.secrets) == {"password": SECRET} and SECRET not in provider.secrets
    shown = admin_client.get(EMAIL_PAGE).content.decode()
    assert "The Email provider is saved: SMTP server." in shown
    assert SECRET not in shown
    assert "Set — leave empty to keep" in shown
    assert 'value="127.0.0.1"' in shown and 'value="2525"' in shown  # the form, pre-filled
    assert "<dt>Server</dt><dd>127.0.0.1</dd>" in shown  # the saved account
    assert "<dt>Security</dt><dd>None (port 25)</dd>" in shown
    assert "<dt>Password</dt>" in shown and "Send a test message" in shown


def test_a_sending_rate_is_saved_and_a_bad_one_shown_at_its_field(admin_client, workspace):
    admin_client.post(EMAIL_PAGE, _smtp_post(rate_per_second="2.5", burst="5"))
    settings = _provider(workspace).get().settings
    assert (settings["rate_per_second"], settings["burst"]) == (2.5, 5)
    shown = admin_client.get(EMAIL_PAGE).content.decode()
    assert "<dt>Messages per second</dt><dd>2.5</dd>" in shown and 'value="2.5"' in shown
    bad = admin_client.post(EMAIL_PAGE, _smtp_post(rate_per_second="fast"))
    assert "messages a second" in bad.context["form"].errors["rate_per_second"][0]
    assert _provider(workspace).get().settings["burst"] == 5


def test_a_bad_port_and_a_bad_from_address_show_at_their_fields(admin_client, workspace):
    response = admin_client.post(
        EMAIL_PAGE,
        _smtp_post(port="70000", from_email="not-an-address",
                   dkim_private_key="-----BEGIN PRIVATE KEY-----typed-secret"),
    )  # fmt: skip
    assert response.status_code == 200
    form = response.context["form"]
    assert "65535" in form.errors["port"][0]
    assert "news@example.com" in form.errors["from_email"][0]
    html = response.content.decode()
    port_at = html.index('name="smtp-port"')
    assert "is-invalid" in html[port_at : html.index(">", port_at)]
    assert html.index("The port is a number", port_at) < html.index('name="smtp-username"')
    assert SECRET not in html and "typed-secret" not in html  # secrets never echoed
    assert not _provider(workspace).exists()
    words = admin_client.post(EMAIL_PAGE, _smtp_post(port="x"))
    assert "The port is a number" in words.context["form"].errors["port"][0]
    assert not _provider(workspace).exists()


def test_a_stored_secret_left_empty_is_kept_and_a_new_one_replaces_it(admin_client, workspace):
    _set_smtp(workspace, password="first-password")
    admin_client.post(EMAIL_PAGE, _smtp_post(password="", from_name="Acme News"))
    provider = _provider(workspace).get()
    assert provider.settings["from_name"] == "Acme News"
    assert unseal(provider.secrets) == {"password": "first-password"}
    admin_client.post(EMAIL_PAGE, _smtp_post(password="second-password"))
    assert unseal(_provider(workspace).get().secrets) == {"password": "second-password"}


def test_the_kind_switches_with_a_get_parameter_and_htmx_gets_just_the_fields(
    admin_client, workspace
):
    _set_smtp(workspace, password="first-password")
    sandbox = admin_client.get(EMAIL_PAGE, {"kind": "sandbox"}).content.decode()
    assert _checked_kind(sandbox) == "sandbox" and 'name="smtp-host"' not in sandbox
    assert '<input type="hidden" name="kind" value="sandbox">' in sandbox
    assert "Nothing to fill in: save to use it." in sandbox
    assert "Set — leave empty to keep" not in sandbox  # another kind keeps no secret
    assert "<dt>Server</dt>" in sandbox  # the saved account is still the SMTP one
    partial = admin_client.get(EMAIL_PAGE, {"kind": "sandbox"}, HTTP_HX_REQUEST="true")
    fragment = partial.content.decode()
    assert fragment.lstrip().startswith('<div id="provider-fields">') and "<html" not in fragment
    assert admin_client.get(EMAIL_PAGE, {"kind": "fax"}).context["kind"] == "smtp"
    admin_client.post(EMAIL_PAGE, {"kind": "sandbox"})
    provider = _provider(workspace).get()
    assert provider.kind == "sandbox" and provider.settings == {} and provider.secrets == ""


def test_a_kind_the_channel_does_not_take_is_refused(admin_client, workspace):
    response = admin_client.post(EMAIL_PAGE, {"kind": "twilio"})
    assert response.status_code == 200
    assert "Choose one of the providers listed." in response.content.decode()
    assert not _provider(workspace).exists()


def test_push_accounts_are_per_platform(admin_client, workspace):
    assert admin_client.post("/channels/push/provider/ios/", {"kind": "sandbox"}).status_code == 302
    assert _provider(workspace, "push", "ios").get().kind == "sandbox"
    assert not _provider(workspace, "push", "android").exists()
    android = admin_client.get("/channels/push/provider/android/").content.decode()
    assert "Not set up yet" in android and "Device push token" not in android
    ios = admin_client.get("/channels/push/provider/ios/").content.decode()
    assert "Push for iOS provider" in ios and "Device push token" in ios


def test_every_kind_of_every_account_shows_its_fields(admin_client):
    accounts = [(EMAIL_PAGE, "email", ""), ("/channels/sms/provider/", "sms", "")] + [
        (f"/channels/push/provider/{p}/", "push", p) for p in ("ios", "android", "web")
    ]
    for url, channel, platform in accounts:
        for kind in kinds_for(channel, platform):
            html = admin_client.get(url, {"kind": kind}).content.decode()
            assert _checked_kind(html) == kind, (url, kind)
            for field in fields_for(kind):
                assert f'name="{kind}-{field.name}"' in html, (url, kind, field.name)
                assert field.label in html
    ios = admin_client.get("/channels/push/provider/ios/").content.decode()
    assert _checked_kind(ios) == kinds_for("push", "ios")[0] == "apns"  # Apple's own first
    android = admin_client.get("/channels/push/provider/android/").content.decode()
    assert 'value="apns"' not in android  # not a kind an Android account may be


def test_send_a_test_message_through_the_saved_smtp_account(admin_client, workspace, smtp_server):
    _set_smtp(workspace, port=smtp_server.port)
    test_url = f"{EMAIL_PAGE}test/"
    sent = admin_client.post(test_url, {"test-to": "ann@example.com"}, HTTP_HX_REQUEST="true")
    html = sent.content.decode()
    assert 'data-test-result="sent"' in html and "Provider's message id" in html
    assert 'id="provider-stored" hx-swap-oob="true"' in html and "Tested" in html
    assert "<html" not in html
    assert [to for to, _ in smtp_server.received] == [["ann@example.com"]]
    assert _provider(workspace).get().verified_at is not None
    refused = admin_client.post(test_url, {"test-to": "nobody@example.com"},
                                HTTP_HX_REQUEST="true").content.decode()  # fmt: skip
    assert 'data-test-result="suppress"' in refused
    assert "this address cannot receive messages" in refused and "User unknown" in refused
    assert len(smtp_server.received) == 1
    # without JavaScript: the whole page, with the answer
    page_html = admin_client.post(test_url, {"test-to": "ann@example.com"}).content.decode()
    assert "<html" in page_html and 'data-test-result="sent"' in page_html
    empty = admin_client.post(test_url, {"test-to": ""}, HTTP_HX_REQUEST="true")
    assert "This field is required" in empty.content.decode() and len(smtp_server.received) == 2


def test_a_sandbox_test_message_lands_in_the_sandbox_inbox(admin_client, workspace):
    admin_client.post("/channels/sms/provider/", {"kind": "sandbox"})
    answer = admin_client.post("/channels/sms/provider/test/", {"test-to": "+14155550100"},
                               HTTP_HX_REQUEST="true").content.decode()  # fmt: skip
    assert 'data-test-result="sent"' in answer and "Sandbox inbox" in answer
    assert SandboxMessage.objects.for_workspace(workspace).get().address == "+14155550100"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_below_admin_the_page_is_read_only_and_a_post_is_refused(
    role, member_client, workspace, smtp_server
):
    _set_smtp(workspace, port=smtp_server.port, password="first-password")
    client = member_client(role)
    response = client.get(EMAIL_PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<dt>Server</dt><dd>127.0.0.1</dd>" in html and "<dt>Password</dt>" in html
    assert 'method="post" action="/channels/email/provider/' not in html
    assert "<form" not in html.split("<main", 1)[1]  # no form at all: nothing to submit
    assert "Save</button>" not in html and "Send test message" not in html
    assert "an admin or owner of the workspace can change it" in html
    assert client.post(EMAIL_PAGE, {"kind": "sandbox"}).status_code == 403
    assert client.post(f"{EMAIL_PAGE}test/", {"test-to": "ann@example.com"}).status_code == 403
    assert _provider(workspace).get().kind == "smtp" and smtp_server.received == []
    listing = client.get("/channels/").content.decode()
    assert f'href="{EMAIL_PAGE}">Details' in listing and "Set up</a>" not in listing


def test_another_workspaces_page_never_shows_this_workspaces_provider(
    client, workspace, other_workspace, smtp_server
):
    provider_set(workspace=workspace, channel="email", kind="smtp", actor=Actor(system="tests"),
                 settings={"host": "smtp.acme-only.test", "security": "none", "port": 2525,
                           "from_email": "news@acme.test"}, secrets={})  # fmt: skip
    other_admin = UserFactory(email="admin@other.test")
    MembershipFactory(workspace=other_workspace, user=other_admin, role=Role.ADMIN)
    client.force_login(other_admin)
    html = client.get(EMAIL_PAGE).content.decode()
    assert "smtp.acme-only.test" not in html and "Not set up yet" in html
    assert "acme-only" not in client.get("/channels/").content.decode()
    tried = client.post(f"{EMAIL_PAGE}test/", {"test-to": "ann@example.com"})
    assert tried.status_code == 404 and smtp_server.received == []
    client.post(EMAIL_PAGE, {"kind": "sandbox"})
    assert _provider(workspace).get().kind == "smtp"  # ours is untouched
    assert _provider(other_workspace).get().kind == "sandbox"


def test_an_email_service_account_shows_its_webhook_urls_to_admins_only(
    admin_client, member_client, workspace
):
    if "anymail" not in kinds_for("email"):
        pytest.skip("the email service kind is not offered yet")
    form = admin_client.get(EMAIL_PAGE, {"kind": "anymail"}).content.decode()
    assert 'data-show-when="anymail-esp=mailgun"' in form
    saved = admin_client.post(EMAIL_PAGE, {
        "kind": "anymail", "anymail-esp": "mailgun", "anymail-api_key": "key-123",
        "anymail-webhook_signing_key": "signing-456", "anymail-from_email": "news@acme.test",
    })  # fmt: skip
    assert saved.status_code == 302, saved.context["form"].errors
    provider = _provider(workspace).get()
    password = unseal(provider.secrets)["webhook_secret"]
    shown = admin_client.get(EMAIL_PAGE).content.decode()
    assert "Webhook URLs" in shown and password in shown and "key-123" not in shown
    assert "<dt>Email service</dt><dd>Mailgun</dd>" in shown
    viewer = member_client(Role.VIEWER).get(EMAIL_PAGE).content.decode()
    assert "Webhook URLs" not in viewer and password not in viewer


def test_a_twilio_account_keeps_its_token_and_shows_its_webhook_urls(admin_client, workspace):
    sms = "/channels/sms/provider/"
    form = admin_client.get(sms).content.decode()
    assert _checked_kind(form) == "twilio" and "Messaging Service SID" in form
    saved = admin_client.post(sms, {
        "kind": "twilio", "twilio-account_sid": "AC" + "0" * 32, "twilio-from": "+14155550100",
        "twilio-auth_token": "twilio-token-secret",
    })  # fmt: skip
    assert saved.status_code == 302, saved.context["form"].errors
    shown = admin_client.get(sms).content.decode()
    assert "twilio-token-secret" not in shown
    token_at = shown.index('for="id_twilio-auth_token"')
    assert "Set — leave empty to keep" in shown[token_at : shown.index("</label>", token_at)]
    assert "Webhook URLs" in shown and "/hooks/twilio/status/" in shown
    missing = admin_client.post(sms, {"kind": "twilio", "twilio-account_sid": "AC123"})
    assert "32 hexadecimal" in missing.context["form"].errors["account_sid"][0]
    assert _provider(workspace, "sms").get().settings["account_sid"] == "AC" + "0" * 32


# --- In a browser ------------------------------------------------------------------------


def _in_browser(live_server, viewport, journey) -> None:
    """Run `journey(page)` in Chromium at `viewport`, as tests/browser/conftest.py's `page`
    does (the Content-Security-Policy watched, script errors fail the test). Those fixtures
    are not visible from tests/channels, and a second sync Playwright in the thread of the
    session's first one refuses to start: this journey drives its own, in a thread of its
    own (the browser steps only: the ORM stays in the test's thread)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not at {CHROMIUM}: install Debian's chromium package.")
    problems, failure = [], []

    def run():
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(base_url=live_server.url,
                                              viewport=VIEWPORTS[viewport])  # fmt: skip
                context.set_default_timeout(15_000)
                context.add_init_script(CSP_VIOLATION_REPORTER)
                page = context.new_page()
                page.on("console", lambda message: _csp_violation(message, problems))
                page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
                try:
                    journey(page)
                finally:
                    browser.close()
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    assert not problems, "The browser reported:\n" + "\n".join(dict.fromkeys(problems))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_an_admin_sets_up_smtp_and_sends_a_test_message(live_server, settings, viewport,
                                                         smtp_server):  # fmt: skip
    from tests.factories import WorkspaceFactory

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http
    settings.SECURE_SSL_REDIRECT = False
    ws = WorkspaceFactory(name="Shop", slug="shop")
    MembershipFactory(workspace=ws, user=UserFactory(email="admin@shop.test"), role=Role.ADMIN)

    def journey(page):
        page.goto("/login/")
        page.get_by_label("Email").fill("admin@shop.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")
        nav_to(page, "Channels")
        page.get_by_role("link", name="Set up the Email provider").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Email provider")

        # another kind swaps the fields in place (htmx) and back
        page.get_by_label("Sandbox").check()
        expect(page.get_by_text("Nothing to fill in: save to use it.")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/channels/email/provider/\?kind=sandbox$"))
        page.get_by_label("SMTP server").check()
        expect(page.get_by_label("Server", exact=True)).to_be_visible()

        page.get_by_label("Server", exact=True).fill("127.0.0.1")
        page.get_by_label("Security").select_option("none")
        page.get_by_label("Port").fill(str(smtp_server.port))
        page.get_by_label("From address").fill("news@shop.test")
        page.get_by_label("From name").fill("Shop News")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert")).to_contain_text(
            "The Email provider is saved: SMTP server."
        )

        page.get_by_label("Email address").fill("ann@example.com")
        page.get_by_role("button", name="Send test message").click()
        answer = page.locator("[data-test-result]")
        expect(answer).to_have_attribute("data-test-result", "sent")
        expect(answer).to_contain_text("Sent.")
        expect(page.locator("#provider-stored")).to_contain_text("Tested")
        expect(page.get_by_role("button", name="Send test message")).to_be_enabled()
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        page.mouse.move(0, 0)
        suffix = "" if viewport == "desktop" else f"_{viewport}"
        page.screenshot(path=f"/tmp/provider_page{suffix}.png", full_page=True)

    _in_browser(live_server, viewport, journey)
    assert [to for to, _ in smtp_server.received] == [["ann@example.com"]]
