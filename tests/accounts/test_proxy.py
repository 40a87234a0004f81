"""Sign-in lockout behind the TLS proxy: the client address is read through the configured
number of trusted proxies (TRUSTED_PROXY_COUNT), and an account is also locked when many
addresses fail on it."""

import pytest

from tests.factories import PASSWORD, MembershipFactory, UserFactory

PROXY = "10.0.0.2"  # the TLS proxy: every request reaches Django from it


@pytest.fixture
def member(workspace):
    # Tests here fail to sign in twenty times: the suite's fast hasher (tests/conftest.py)
    # keeps that quick.
    user = UserFactory(email="maya@acme.test")
    MembershipFactory(workspace=workspace, user=user, role="marketer")
    return user


@pytest.fixture
def one_proxy(settings):
    """The settings TRUSTED_PROXY_COUNT=1 gives."""
    from config.env import trusted_proxy_settings

    for name, value in trusted_proxy_settings(1).items():
        setattr(settings, name, value)


def sign_in(client, email, password, *, forwarded_for=None, remote_addr=PROXY):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post(
        "/login/",
        {"username": email, "password": password},
        headers=headers,
        REMOTE_ADDR=remote_addr,
    )


def test_behind_one_proxy_two_clients_do_not_lock_each_other_out(
    client, member, settings, one_proxy
):
    for _ in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS):
        sign_in(client, member.email, "wrong", forwarded_for="198.51.100.1")
    locked = sign_in(client, member.email, PASSWORD, forwarded_for="198.51.100.1")
    assert locked.status_code == 429
    other = sign_in(client, member.email, PASSWORD, forwarded_for="198.51.100.2")
    assert other.status_code == 302


def test_behind_one_proxy_a_client_cannot_forge_its_way_out_of_a_lockout(
    client, member, settings, one_proxy
):
    for i in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS):
        # the proxy appends the real address to whatever the client sent
        sign_in(client, member.email, "wrong", forwarded_for=f"203.0.113.{i}, 198.51.100.1")
    forged = sign_in(client, member.email, PASSWORD, forwarded_for="203.0.113.99, 198.51.100.1")
    assert forged.status_code == 429


def test_many_addresses_failing_on_one_account_lock_that_account(client, member, settings):
    per_address = settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
    per_account = settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT
    assert per_account > per_address
    codes = []
    for n in range(per_account):  # each address stays under its own limit
        address = f"198.51.100.{n // (per_address - 1) + 1}"
        codes.append(sign_in(client, member.email, "wrong", remote_addr=address).status_code)
    assert codes == [200] * (per_account - 1) + [429]  # the last failure locks the account
    fresh = sign_in(client, member.email, PASSWORD, remote_addr="192.0.2.200")
    assert fresh.status_code == 429
    assert "_auth_user_id" not in client.session
    # other accounts are not affected
    other = UserFactory(email="other@acme.test")
    assert sign_in(client, other.email, PASSWORD, remote_addr="198.51.100.1").status_code == 302


def test_many_clients_behind_one_proxy_failing_on_one_account_lock_it(
    client, member, settings, one_proxy
):
    per_address = settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
    for n in range(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT):
        address = f"198.51.100.{n // (per_address - 1) + 1}"
        sign_in(client, member.email, "wrong", forwarded_for=address)
    fresh = sign_in(client, member.email, PASSWORD, forwarded_for="192.0.2.200")
    assert fresh.status_code == 429


def test_an_account_is_not_locked_below_its_own_limit(client, member, settings):
    per_address = settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
    for n in range(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT - 1):
        address = f"198.51.100.{n // (per_address - 1) + 1}"
        assert sign_in(client, member.email, "wrong", remote_addr=address).status_code == 200
    assert sign_in(client, member.email, PASSWORD, remote_addr="192.0.2.200").status_code == 302


def test_without_trusted_proxies_a_forged_x_forwarded_for_changes_nothing(client, member, settings):
    assert settings.TRUSTED_PROXY_COUNT == 0  # the default
    for i in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS):
        sign_in(
            client, member.email, "wrong", forwarded_for=f"198.51.100.{i}", remote_addr="192.0.2.5"
        )
    forged = sign_in(
        client, member.email, PASSWORD, forwarded_for="198.51.100.250", remote_addr="192.0.2.5"
    )
    assert forged.status_code == 429
    # and another real address is unaffected, whatever it claims to be forwarded for
    other = sign_in(
        client, member.email, PASSWORD, forwarded_for="192.0.2.5", remote_addr="192.0.2.6"
    )
    assert other.status_code == 302
