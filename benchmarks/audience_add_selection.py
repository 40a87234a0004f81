"""Adding 500,000 people to a target audience from a People page selection.

Target (issue "Target audiences"): <= 5 s. Builds 1,000,000 people with COPY in its own
database, selects half of them with a quick filter ("all N matching"), adds them to a new
audience through the service the People page calls, and prints one line.

    .venv/bin/python benchmarks/audience_add_selection.py [--keep]
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from accounts.audit import Actor

ROOT = Path(__file__).resolve().parent.parent
DB = "herald_bench_audsel"
os.environ.setdefault("DATABASE_URL", f"postgres://root@127.0.0.1:5432/{DB}")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(ROOT))

PEOPLE = 1_000_000
TARGET_SECONDS = 5.0


def create_database():
    import psycopg

    with psycopg.connect("postgres://root@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def drop_database():
    import psycopg

    with psycopg.connect("postgres://root@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def main():
    keep = "--keep" in sys.argv
    create_database()
    import django

    django.setup()
    from django.db import connection

    from accounts.models import Workspace
    from audiences.services import audience_create
    from people.selectors import QuickFilters, person_filter

    ws = Workspace.objects.create(name="Bench", slug="bench")
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY people_person (workspace_id, external_id, email, phone, first_name, last_name, "
            "gender, country, city, address, attributes, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(PEOPLE):
                city = "London" if i % 2 == 0 else "Paris"
                copy.write_row(
                    (
                        ws.pk,
                        f"p{i}",
                        f"p{i}@example.com",
                        "",
                        "Ann",
                        "Lee",
                        "",
                        "UK",
                        city,
                        "",
                        "{}",
                        "2026-01-01T00:00:00Z",
                        "2026-01-01T00:00:00Z",
                    )
                )
        cursor.execute("ANALYZE people_person")
    people = person_filter(workspace=ws, filters=QuickFilters(city="London"))
    audience = audience_create(workspace=ws, name="Londoners", actor=Actor(system="benchmark"))
    from audiences.services import audience_add_people

    start = time.perf_counter()
    added = audience_add_people(audience=audience, people=people, actor=Actor(system="benchmark"))
    seconds = time.perf_counter() - start
    audience.refresh_from_db()
    assert added == audience.people_count == PEOPLE // 2, (added, audience.people_count)
    print(
        f"audience_add_selection people={PEOPLE} added={added} seconds={seconds:.2f} "
        f"ratio_to_target={seconds / TARGET_SECONDS:.2f} (target <= {TARGET_SECONDS:.0f} s)"
    )
    connection.close()
    if not keep:
        drop_database()


if __name__ == "__main__":
    main()
