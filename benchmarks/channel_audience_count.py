"""The live count of a channel audience with 3 include and 2 exclude segments at
1,000,000 people, against hand-written SQL for the same question.

Target (issue "Channel segment lists and channel audiences"): "Live count of a channel
audience with 3 includes and 2 excludes at 1M people: <= 1 s (median of 5), within 1.3x
of hand-written SQL for the same question."

What it does: builds 1,000,000 people with COPY in its own database (emails for 90%, 2%
of those on email Do Not Contact), five static segments with stored membership (the
includes 300k, 250k and 200k people, overlapping; the excludes 100k and 50k), an email
channel audience over them, then times channels.selectors.audience_count (both figures
the Audiences tab shows: the people in it and how many are reachable by email, one
query compiled by the segment compiler) and the expert's SQL (EXISTS over the current
memberships, the same two counts) alternately, 5 times each after a warm-up, and prints
the medians and their ratio. Both must give the same numbers.

    .venv/bin/python benchmarks/channel_audience_count.py [--keep] [--people N]
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "herald_bench_chaud"
os.environ.setdefault("DATABASE_URL", f"postgres://root@127.0.0.1:5432/{DB}")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 1.0
TARGET_RATIO = 1.3
RUNS = 5
# (name, people of it: i % modulo == remainder over the first `span` people)
SEGMENTS = {
    "inc-a": lambda i: i % 10 < 3,  # 300k
    "inc-b": lambda i: i % 4 == 1,  # 250k (overlaps a)
    "inc-c": lambda i: i % 5 == 2,  # 200k
    "exc-a": lambda i: i % 10 == 1,  # 100k
    "exc-b": lambda i: i % 20 == 7,  # 50k
}

EXPERT_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE p.email <> '' AND NOT EXISTS (
           SELECT 1 FROM people_donotcontact d
           WHERE d.workspace_id = p.workspace_id AND d.channel = 'email' AND d.address = p.email))
FROM people_person p
WHERE p.workspace_id = %(ws)s
  AND EXISTS (SELECT 1 FROM segments_segmentmember m
              WHERE m.person_id = p.id AND m.segment_id = ANY(%(include)s)
                AND m.exited_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM segments_segmentmember m
                  WHERE m.person_id = p.id AND m.segment_id = ANY(%(exclude)s)
                    AND m.exited_at IS NULL)
"""


def create_database():
    import psycopg

    with psycopg.connect("postgres://root@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def drop_database():
    import psycopg

    with psycopg.connect("postgres://root@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def build(people: int):
    from django.db import connection

    from accounts.audit import Actor
    from accounts.models import Workspace
    from channels import list_services
    from segments.models import Segment

    actor = Actor(system="benchmark")
    ws = Workspace.objects.create(name="Bench", slug="bench")
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY people_person (workspace_id, external_id, email, phone, first_name, last_name,"
            " gender, country, city, address, attributes, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(people):
                email = f"p{i}@example.com" if i % 10 else ""
                copy.write_row((ws.pk, f"p{i}", email, "", "Ann", "Lee", "", "UK", "London", "",
                                "{}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))  # fmt: skip
        with cursor.cursor.copy(
            "COPY people_donotcontact (workspace_id, channel, address, reason, source, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(1, people, 50):
                copy.write_row((ws.pk, "email", f"p{i}@example.com", "", "manual",
                                "2026-01-01T00:00:00Z"))  # fmt: skip
        cursor.execute("SELECT id FROM people_person WHERE workspace_id = %s ORDER BY id", [ws.pk])
        ids = [row[0] for row in cursor.fetchall()]
        segments = {}
        for name, member in SEGMENTS.items():
            segment = Segment.objects.create(workspace=ws, name=name, kind="static")
            segments[name] = segment
            with cursor.cursor.copy(
                "COPY segments_segmentmember (workspace_id, segment_id, person_id, entered_at)"
                " FROM STDIN"
            ) as copy:
                for i, pk in enumerate(ids):
                    if member(i):
                        copy.write_row((ws.pk, segment.pk, pk, "2026-01-01T00:00:00Z"))
        cursor.execute("VACUUM ANALYZE people_person")
        cursor.execute("VACUUM ANALYZE segments_segmentmember")
        cursor.execute("VACUUM ANALYZE people_donotcontact")
    entries = {
        name: list_services.channel_segment_add(
            workspace=ws, channel="email", segment=s, actor=actor
        )  # fmt: skip
        for name, s in segments.items()
    }
    audience = list_services.channel_audience_create(
        workspace=ws, channel="email", actor=actor,
        data={"name": "Spring", "include": [entries[n].pk for n in ("inc-a", "inc-b", "inc-c")],
              "exclude": [entries[n].pk for n in ("exc-a", "exc-b")]},
    )  # fmt: skip
    include = [segments[n].pk for n in ("inc-a", "inc-b", "inc-c")]
    exclude = [segments[n].pk for n in ("exc-a", "exc-b")]
    return ws, audience, include, exclude


def main():
    keep = "--keep" in sys.argv
    people = int(sys.argv[sys.argv.index("--people") + 1]) if "--people" in sys.argv else 1_000_000
    create_database()
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from channels.selectors import audience_count, get_channel_audience_or_404

    ws, audience, include, exclude = build(people)

    def herald():
        fresh = get_channel_audience_or_404(workspace=ws, channel="email", pk=audience.pk)
        counted = audience_count(audience=fresh, now=timezone.now())
        return counted.people, counted.reachable

    def expert():
        with connection.cursor() as cursor:
            cursor.execute(EXPERT_SQL, {"ws": ws.pk, "include": include, "exclude": exclude})
            return tuple(cursor.fetchone())

    assert herald() == expert(), (herald(), expert())  # warm-up, and the same answer
    times = {"herald": [], "expert": []}
    for _ in range(RUNS):
        for name, run in (("herald", herald), ("expert", expert)):
            start = time.perf_counter()
            answer = run()
            times[name].append(time.perf_counter() - start)
    h, e = statistics.median(times["herald"]), statistics.median(times["expert"])
    print(
        f"channel_audience_count people={people} in={answer[0]} reachable={answer[1]} "
        f"herald={h * 1000:.0f}ms expert_sql={e * 1000:.0f}ms ratio={h / e:.2f}x "
        f"(target <= {TARGET_SECONDS:.0f} s and <= {TARGET_RATIO}x, median of {RUNS})"
    )
    connection.close()
    if not keep:
        drop_database()


if __name__ == "__main__":
    main()
