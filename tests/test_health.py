from config.celery import app


def test_healthz_is_200_when_database_and_broker_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["checks"]) == ("ok", {"database": "ok", "broker": "ok"})
    assert body["degraded"] == {} and body["outbox"] == {"pending": 0, "oldest_seconds": 0.0}


def test_healthz_is_503_naming_the_broker_when_it_is_down(client, db):
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = original
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"] == {"database": "ok", "broker": "error"}


def test_healthz_is_503_naming_the_database_when_it_fails(client, db, monkeypatch, caplog):
    from django.db import connection

    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused by db.internal:5432")

    with monkeypatch.context() as patch, caplog.at_level("ERROR"):
        patch.setattr(connection, "cursor", broken_cursor)
        response = client.get("/healthz")
    assert response.status_code == 503
    # The public answer names the part, never the exception (hosts, users, versions).
    assert response.json() == {"status": "error", "checks": {"database": "error", "broker": "ok"}}
    assert "db.internal" not in response.text
    # The operator finds the exception in the log.
    assert "db.internal:5432" in caplog.text
