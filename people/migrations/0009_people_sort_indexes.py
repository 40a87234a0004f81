"""The People page sorts by its columns at a million people, each order read from an
index in keyset pages (people.selectors.PERSON_SORTS; benchmarks/people_page.py):

- person_ws_name_sort: first then last name folded like the search (herald_fold: any case,
  any accents), compared byte-wise (COLLATE "C"), then the id.
- person_ws_email_sort: the email byte-wise, then the id. person_ws_email (text_pattern_ops)
  cannot serve an ORDER BY; it stays for exact lookups and the search's prefix.
- External ID and City ride the unique (workspace, external_id) index and
  person_ws_upper_city_id (0004).

Built CONCURRENTLY: a workspace of a million people keeps importing while they build.
"""

from django.db import migrations

FORWARD = [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS person_ws_name_sort ON people_person "
    '(workspace_id, (public.herald_fold(first_name::text) COLLATE "C"), '
    '(public.herald_fold(last_name::text) COLLATE "C"), id)',
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS person_ws_email_sort ON people_person "
    '(workspace_id, (email COLLATE "C"), id)',
]
REVERSE = [
    "DROP INDEX CONCURRENTLY IF EXISTS person_ws_name_sort",
    "DROP INDEX CONCURRENTLY IF EXISTS person_ws_email_sort",
]


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("people", "0008_search_folded_prefixes")]
    operations = [migrations.RunSQL(FORWARD, REVERSE)]
