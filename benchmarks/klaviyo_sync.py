"""A full Klaviyo sync, end to end: channels.sync_services.channel_sync_run against a local
fake of Klaviyo (tests/channels/klaviyo_fake.py, in another process) enforcing Klaviyo's
real limits for these endpoints (75 requests in any second, 750 in any minute), with
every Herald write included (people matched and created, entries, static segments and
their members, the job row).

Issue target (Klaviyo sync): "Klaviyo full sync of 100,000 profiles in 5 segments against
the fake with the real rate limits: >= 90% of the rate limit's ceiling (print both)."

Prints ONE line:
    klaviyo_sync profiles=N segments=S requests=R people_created=C elapsed=..s
    rate=..req/min ceiling=750/min (75/s burst) least=..s ratio=..% (target >=90%)

ratio = the least time the limits allow for R requests (benchmarks/klaviyo_pull.py's
least_time: every request as early as both windows let it, answers taking no time) /
elapsed, the sync's time from the claim of its job to its final commit. rate= is the
achieved request rate, ceiling= the limits'; for a run of about a minute the rate can
exceed 750/min (a minute's 750 may all go in its first ten seconds, the windows being
fixed, not a refilling bucket), which is why the ratio is taken against least_time.

What it does:
1. (Re)creates the database herald_bench_klaviyo_sync, migrates it, makes a workspace, its
   email channel's Klaviyo source (the key sealed, base_url the fake) and --existing
   people (default 50,000, by COPY) whose emails are those of every other Klaviyo
   profile, so half the profiles are matched by email and half become new people.
2. Starts the fake with --segments (default 5) segments of --per-segment (default
   20,000) profiles each, no profile in two segments (the fake's phones, +1555..., are
   not valid numbers: they are left out of the people and counted, as the sync does).
3. Times one channel_sync_run of a full sync job (created as channel_sync_start creates
   it; the benchmark runs it in place of a worker). Then checks: the job is done, each
   segment's entry has its 20,000 members, every profile is a person, the fake answered
   no 429 and counted the requests the job did (the line is printed either way; the exit
   status says which).

The limits make it take about a minute and a few seconds: run it once, with nothing else
busy (other benchmarks take the same lock):
    flock /tmp/bench.lock .venv/bin/python benchmarks/klaviyo_sync.py [--keep]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PG_SERVER = "postgres://root@127.0.0.1:5432"
DB_NAME = "herald_bench_klaviyo_sync"
BURST, PER_MINUTE = 75, 750
TARGET = 90  # %


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_env() -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"{PG_SERVER}/{DB_NAME}",
        DEBUG="0",
        PROVIDER_SECRET_KEYS="dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
        SECRET_KEY="bench-only-secret-key-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        STATIC_MANIFEST="0",
        LOG_LEVEL="WARNING",
        REDIS_URL="redis://127.0.0.1:6379/9",  # settings need it; nothing is enqueued
        # the fake listens on 127.0.0.1: a private host, allowed as for tests
        ALLOW_PRIVATE_PROVIDER_HOSTS="1",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def migrate(env: dict) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def copy_people(workspace_id: int, profiles: int, existing: int) -> None:
    """`existing` people whose emails are those of the fake's even-numbered profiles
    (person<n>@example.com, tests.channels.klaviyo_fake.FakeKlaviyo.fill), by COPY."""
    from django.db import connection

    now = datetime.now(UTC)
    columns = (
        "workspace_id, external_id, email, phone, first_name, last_name, gender, country, "
        "city, address, attributes, created_at, updated_at"
    )
    with connection.cursor() as c:
        with c.cursor.copy(f"COPY people_person ({columns}) FROM STDIN") as copy:
            for n in range(0, min(profiles, 2 * existing), 2):
                copy.write_row(
                    (workspace_id, f"crm-{n}", f"person{n}@example.com", "", "", "", "", "",
                     "", "", "{}", now, now)
                )  # fmt: skip
        c.execute("VACUUM ANALYZE people_person")


def start_fake(port: int, segments: int, per_segment: int) -> subprocess.Popen:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.channels.klaviyo_fake", "--port", str(port),
         "--segments", str(segments), "--per-segment", str(per_segment),
         "--burst", str(BURST), "--per-minute", str(PER_MINUTE)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    if fake.stdout.readline().strip() != "ready":
        fake.kill()
        raise SystemExit("the Klaviyo fake did not start")
    return fake


def fake_stats(fake: subprocess.Popen) -> dict:
    fake.stdin.write("?\n")
    fake.stdin.flush()
    return json.loads(fake.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=5)
    parser.add_argument("--per-segment", type=int, default=20_000)
    parser.add_argument("--existing", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    profiles = args.segments * args.per_segment

    env = bench_env()
    log(f"database {DB_NAME}: creating and migrating")
    recreate_database()
    fake = None
    try:
        migrate(env)
        os.environ.update(env)
        import django

        django.setup()
        from klaviyo_pull import free_port, least_time

        from accounts.audit import Actor
        from accounts.jobs import JobStatus
        from accounts.models import Workspace
        from channels.list_services import segment_source_set
        from channels.models import ChannelSegment, ChannelSync
        from channels.sync_services import channel_sync_run
        from people.models import Person
        from tests.channels.klaviyo_fake import API_KEY

        workspace = Workspace.objects.create(name="Bench", slug="bench")
        copy_people(workspace.id, profiles, args.existing)
        port = free_port()
        segment_source_set(
            workspace=workspace, channel="email", kind="klaviyo",
            settings={"base_url": f"http://127.0.0.1:{port}"}, secrets={"api_key": API_KEY},
            actor=Actor.of_system("benchmark"),
        )  # fmt: skip
        log(f"fake Klaviyo: {args.segments} segments of {args.per_segment:,} profiles")
        fake = start_fake(port, args.segments, args.per_segment)
        # the row channel_sync_start makes, without enqueueing it: this process is the worker
        job = ChannelSync.objects.create(
            workspace=workspace, channel="email", full=True, status=JobStatus.QUEUED
        )
        log("syncing")
        began = time.perf_counter()
        job = channel_sync_run(sync_id=job.pk)
        elapsed = time.perf_counter() - began
        stats = fake_stats(fake)
        log(f"job: {job.status}: {job.detail}")

        entries = ChannelSegment.objects.for_workspace(workspace).filter(channel="email")
        counts = sorted(e.segment.people_count for e in entries.select_related("segment"))
        people = Person.objects.for_workspace(workspace).count()
    finally:
        if fake is not None:
            fake.kill()
            fake.wait()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database()
            log(f"database {DB_NAME} dropped")

    requests = job.requests
    least = least_time(requests, burst=BURST, per_minute=PER_MINUTE)
    print(
        f"klaviyo_sync profiles={job.profiles} segments={job.groups} requests={requests} "
        f"people_created={job.people_created} elapsed={elapsed:.1f}s "
        f"rate={60 * requests / elapsed:.0f}req/min ceiling={PER_MINUTE}/min ({BURST}/s burst) "
        f"least={least:.1f}s ratio={100 * least / elapsed:.0f}% (target >={TARGET}%)"
    )
    problems = []
    if job.status != JobStatus.DONE:
        problems.append(f"the sync ended {job.status}: {job.detail}")
    if counts != [args.per_segment] * args.segments:
        problems.append(f"members per entry {counts}, not {args.per_segment} in each")
    if people != profiles or job.profiles != profiles:
        problems.append(f"{people} people and {job.profiles} profiles read, of {profiles}")
    if stats["throttled"]:
        problems.append(f"the fake answered {stats['throttled']} requests with 429")
    if stats["requests"] != requests:
        problems.append(f"the fake counted {stats['requests']} requests, the job {requests}")
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
