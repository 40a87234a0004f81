import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Uploads and error reports of the test go to its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def high_person_ids(db):
    """The example files name Herald ids 123..245: keep the id sequence above them, so
    people made with explicit ids never collide with generated ones."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('people_person', 'id'), "
            "GREATEST(10000, (SELECT COALESCE(MAX(id), 0) FROM people_person)))"
        )


@pytest.fixture
def celery_eager():
    """Run tasks in the calling process (the broker is not involved)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
