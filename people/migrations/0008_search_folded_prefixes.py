"""The search box matches the start of a name, email or external id, whatever the case
and the accents (Müller = MÜLLER = muller), each through an index (benchmarks/people_page.py).

- unaccent (a trusted extension since PostgreSQL 13: the database owner may create it)
  behind herald_fold(text) = lower(unaccent(text)), IMMUTABLE so an index can use it; it
  names its dictionary and schema so the index never depends on a search_path.
- names: the upper(...) prefix indexes of 0004 become herald_fold(...) ones.
- external id: lower(external_id), a prefix index beside the unique one.
- email: emails are stored lower case; person_ws_email takes text_pattern_ops, which
  serves the exact lookups as before and a prefix LIKE under any collation.
"""

import django.contrib.postgres.indexes
import django.db.models.expressions
from django.db import migrations, models

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public",
    "CREATE OR REPLACE FUNCTION public.herald_fold(text) RETURNS text "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT "
    "AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$",
    "DROP INDEX IF EXISTS person_ws_upper_first_name_prefix",
    "DROP INDEX IF EXISTS person_ws_upper_last_name_prefix",
    "CREATE INDEX IF NOT EXISTS person_ws_first_name_folded "
    "ON people_person (workspace_id, public.herald_fold(first_name::text) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS person_ws_last_name_folded "
    "ON people_person (workspace_id, public.herald_fold(last_name::text) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS person_ws_external_id_prefix "
    "ON people_person (workspace_id, lower(external_id::text) text_pattern_ops)",
    "DROP INDEX IF EXISTS person_ws_email",
    "CREATE INDEX person_ws_email ON people_person (workspace_id, email text_pattern_ops)",
]
REVERSE = [
    "DROP INDEX IF EXISTS person_ws_email",
    "CREATE INDEX person_ws_email ON people_person (workspace_id, email)",
    "DROP INDEX IF EXISTS person_ws_external_id_prefix",
    "DROP INDEX IF EXISTS person_ws_first_name_folded",
    "DROP INDEX IF EXISTS person_ws_last_name_folded",
    "CREATE INDEX IF NOT EXISTS person_ws_upper_first_name_prefix "
    "ON people_person (workspace_id, upper(first_name::text) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS person_ws_upper_last_name_prefix "
    "ON people_person (workspace_id, upper(last_name::text) text_pattern_ops)",
    "DROP FUNCTION IF EXISTS public.herald_fold(text)",
]


class Migration(migrations.Migration):
    dependencies = [("people", "0007_contactimport_attempts")]
    operations = [
        migrations.RunSQL(
            FORWARD,
            REVERSE,
            state_operations=[
                migrations.RemoveIndex(model_name="person", name="person_ws_email"),
                migrations.AddIndex(
                    model_name="person",
                    index=models.Index(
                        django.db.models.expressions.F("workspace"),
                        django.contrib.postgres.indexes.OpClass(
                            django.db.models.expressions.F("email"), name="text_pattern_ops"
                        ),
                        name="person_ws_email",
                    ),
                ),
            ],
        )
    ]
