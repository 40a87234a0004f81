"""Sign-in, lockout, password reset by email, CSRF for htmx, production security headers."""

import re

import pytest
from django.test import Client

from tests.factories import PASSWORD, MembershipFactory, UserFactory


@pytest.fixture
def member(workspace):
    user = UserFactory(email="maya@acme.test")
    MembershipFactory(workspace=workspace, user=user, role="marketer")
    return user


def test_sign_in_with_email_and_password_reaches_the_dashboard(client, member, workspace):
    response = client.post("/login/", {"username": "Maya@Acme.test", "password": PASSWORD})
    assert response.status_code == 302 and response.url == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert workspace.name in page.text


def test_pages_need_a_signed_in_user(client, workspace):
    response = client.get("/settings/members/")
    assert response.status_code == 302
    assert response.url.startswith("/login/?next=/settings/members/")


def test_wrong_password_is_a_form_error(client, member):
    response = client.post("/login/", {"username": member.email, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct" in response.text


def test_repeated_failures_lock_the_sign_in_even_with_the_right_password(client, member, settings):
    for _ in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS):
        client.post("/login/", {"username": member.email, "password": "wrong"})
    locked = client.post("/login/", {"username": member.email, "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_account_and_address(client, member, settings):
    other = UserFactory(email="other@acme.test")
    for _ in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS):
        client.post("/login/", {"username": member.email, "password": "wrong"})
    ok = client.post("/login/", {"username": other.email, "password": PASSWORD})
    assert ok.status_code == 302


def test_password_reset_sends_a_working_link_over_smtp(client, member, smtp_inbox):
    response = client.post("/password-reset/", {"email": member.email})
    assert response.status_code == 302
    assert len(smtp_inbox.messages) == 1
    mail = smtp_inbox.messages[0]
    assert mail["to"] == [member.email]
    link = re.search(r"https?://[^/]+(/reset/\S+/)", mail["body"]).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.text
    set_url = form.redirect_chain[-1][0]
    done = client.post(
        set_url,
        {"new_password1": "a-brand-new-passphrase", "new_password2": "a-brand-new-passphrase"},
    )
    assert done.status_code == 302
    fresh = Client().post(
        "/login/", {"username": member.email, "password": "a-brand-new-passphrase"}
    )
    assert fresh.status_code == 302 and fresh.url == "/"


def test_password_reset_for_an_unknown_email_sends_nothing_and_says_the_same(
    client, smtp_inbox, db
):
    response = client.post("/password-reset/", {"email": "nobody@nowhere.test"})
    assert response.status_code == 302
    assert smtp_inbox.messages == []


def test_htmx_post_without_csrf_token_is_refused_and_with_it_accepted(workspace, member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    page = client.get("/")
    token = client.cookies["csrftoken"].value
    assert 'hx-headers=\'{"X-CSRFToken": "' in page.text  # base layout hands htmx the token

    refused = client.post(
        "/workspaces/switch/", {"workspace": workspace.slug}, headers={"HX-Request": "true"}
    )
    assert refused.status_code == 403

    accepted = client.post(
        "/workspaces/switch/",
        {"workspace": workspace.slug},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert accepted.status_code == 302


def test_production_settings_send_hsts_and_secure_cookies(client, member, settings):
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    response = client.post("/login/", {"username": member.email, "password": PASSWORD}, secure=True)
    assert response.cookies["sessionid"]["secure"]
    assert response.cookies["sessionid"]["httponly"]
    page = client.get("/", secure=True)
    assert "max-age=31536000" in page.headers["Strict-Transport-Security"]
    assert page.headers["X-Frame-Options"] == "DENY"


def test_logout_ends_the_session(client, member):
    client.force_login(member)
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302
