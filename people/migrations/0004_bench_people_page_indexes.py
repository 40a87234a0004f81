"""People page indexes found with benchmarks/people_page.py at 1,000,000 people.

Written as SQL, like 0002 (expression indexes with INCLUDE and pattern operator classes):

- person_ws_upper_city_id: the city quick filter (UPPER(city) = UPPER(%s)) answered from
  the index alone, in id order: the page's keyset (ORDER BY id DESC) walks it directly,
  and a count of "city and tag" merges it with persontag_ws_tag_person without reading
  any person row. INCLUDE (city) is what lets PostgreSQL use an expression index for an
  index-only scan. Filtered page count at 1M people: 0.5 s -> ~35 ms.
- person_ws_upper_first_name_prefix / ..._last_name_prefix: the search box matches
  UPPER(first_name) LIKE 'X%' (Django's istartswith); text_pattern_ops lets a btree serve
  a prefix LIKE under a non-C collation. With the email and external id indexes the
  search is one BitmapOr instead of a scan of every person (1 s -> under 1 ms).
"""

from django.db import migrations

POSTGRES_SQL = [
    "CREATE INDEX IF NOT EXISTS person_ws_upper_city_id "
    "ON people_person (workspace_id, upper(city::text), id) INCLUDE (city)",
    "CREATE INDEX IF NOT EXISTS person_ws_upper_first_name_prefix "
    "ON people_person (workspace_id, upper(first_name::text) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS person_ws_upper_last_name_prefix "
    "ON people_person (workspace_id, upper(last_name::text) text_pattern_ops)",
]
POSTGRES_REVERSE = [
    "DROP INDEX IF EXISTS person_ws_upper_city_id",
    "DROP INDEX IF EXISTS person_ws_upper_first_name_prefix",
    "DROP INDEX IF EXISTS person_ws_upper_last_name_prefix",
]


class Migration(migrations.Migration):
    dependencies = [("people", "0003_quick_filter_indexes")]
    operations = [migrations.RunSQL(POSTGRES_SQL, POSTGRES_REVERSE)]
