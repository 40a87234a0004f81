import pytest

from accounts.audit import Actor
from accounts.models import Role
from accounts.services import api_key_create
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory


@pytest.fixture
def workspace(db):
    return WorkspaceFactory(name="Acme", slug="acme")


@pytest.fixture
def other_workspace(db):
    return WorkspaceFactory(name="Other Co", slug="other-co")


def _member(workspace, role, email):
    user = UserFactory(email=email)
    MembershipFactory(workspace=workspace, user=user, role=role)
    return user


@pytest.fixture
def owner(workspace):
    return _member(workspace, Role.OWNER, "owner@acme.test")


@pytest.fixture
def admin_user(workspace):
    return _member(workspace, Role.ADMIN, "admin@acme.test")


@pytest.fixture
def marketer(workspace):
    return _member(workspace, Role.MARKETER, "marketer@acme.test")


@pytest.fixture
def ops_user(workspace):
    return _member(workspace, Role.OPS, "ops@acme.test")


@pytest.fixture
def viewer(workspace):
    return _member(workspace, Role.VIEWER, "viewer@acme.test")


@pytest.fixture
def member_client(client, workspace):
    """A function returning the test client signed in as a new member with `role`."""

    def sign_in(role):
        user = _member(workspace, role, f"{role}-{UserFactory._meta.model.objects.count()}@t.test")
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def api_key(workspace):
    _key, raw = api_key_create(workspace=workspace, name="tests", actor=Actor(system="tests"))
    return raw


@pytest.fixture
def api_client(client, api_key):
    """The test client sending the workspace's API key on every call."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    return client


__all__ = ["PASSWORD"]

from tests.smtp import smtp_inbox  # noqa: E402,F401 - fixture


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks):
    """`with run_jobs():` the jobs queued in the block (Celery tasks sent after commit) run
    when it ends, as a worker runs them once the request's transaction commits."""
    from contextlib import contextmanager

    from config.celery import app

    @contextmanager
    def run():
        previous = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            with django_capture_on_commit_callbacks(execute=True):
                yield
        finally:
            app.conf.task_always_eager = previous

    return run


@pytest.fixture(autouse=True)
def _private_provider_hosts(settings):
    """The protocol fakes listen on 127.0.0.1: the installation setting for tests and
    on-premises gateways. tests/channels/test_guard.py turns it off to prove the check."""
    settings.ALLOW_PRIVATE_PROVIDER_HOSTS = True


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Test users' passwords hash with MD5: PBKDF2's 1.2 million iterations cost a third
    of a second per user made, and the suite makes hundreds. Sign-in still checks them."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
