"""On the embedded SQLite database, PostgreSQL-only features answer with a page that says
so (503), not a server error; on PostgreSQL the middleware stays out of the way."""

from django.db import NotSupportedError, connection
from django.test import RequestFactory

from accounts.middleware import EmbeddedDatabaseLimitsMiddleware


def _request(user):
    request = RequestFactory().get("/people/")
    request.user = user
    request.workspace = None
    request.membership = None
    return request


def test_sqlite_limit_is_a_clear_503_page(monkeypatch, owner):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    middleware = EmbeddedDatabaseLimitsMiddleware(lambda r: None)
    error = NotSupportedError("contains lookup is not supported on this database backend.")
    response = middleware.process_exception(_request(owner), error)
    assert response.status_code == 503
    assert b"This needs PostgreSQL" in response.content
    assert b"DATABASE_URL=postgres://" in response.content


def test_on_postgresql_errors_are_left_alone(owner):
    middleware = EmbeddedDatabaseLimitsMiddleware(lambda r: None)
    assert middleware.process_exception(_request(owner), NotSupportedError("x")) is None
