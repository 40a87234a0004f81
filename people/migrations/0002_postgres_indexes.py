"""Indexes Django cannot declare: a GIN index over the attributes (jsonb_path_ops)."""

from django.db import migrations

POSTGRES_SQL = [
    # attribute equality (attributes @> '{"plan": "pro"}') in segments and filters
    "CREATE INDEX IF NOT EXISTS person_attributes_gin "
    "ON people_person USING gin (attributes jsonb_path_ops)",
]
POSTGRES_REVERSE = ["DROP INDEX IF EXISTS person_attributes_gin"]


class Migration(migrations.Migration):
    dependencies = [("people", "0001_initial")]
    operations = [migrations.RunSQL(POSTGRES_SQL, POSTGRES_REVERSE)]
