"""PostgreSQL-only indexes (the embedded SQLite mode of `make run` goes without them)."""

from django.db import migrations

POSTGRES_SQL = [
    # attribute equality (attributes @> '{"plan": "pro"}') in segments and filters
    "CREATE INDEX IF NOT EXISTS person_attributes_gin "
    "ON people_person USING gin (attributes jsonb_path_ops)",
]
POSTGRES_REVERSE = ["DROP INDEX IF EXISTS person_attributes_gin"]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in POSTGRES_SQL:
            schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in POSTGRES_REVERSE:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("people", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
