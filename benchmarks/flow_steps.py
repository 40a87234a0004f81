"""The flow engine at scale (issue 17, Numbers): 100,000 people entering a live flow at
once (entry, tag, wait 1 minute, branch, add to audience, exit; the clock advanced by the
benchmark), advanced by campaigns.flows.engine.advance in this process.

Target: >= 5,000 non-send step executions per second on 2 cores; the figure per step
type is printed too.

What it does: (re)creates the database herald_bench_flows (dropped at the end, --keep
keeps it) and uses Redis db 11; COPYs --people people (default 100,000; every 3rd with
attribute plan = "pro"); a flow "tag -> wait 1 minute -> branch (plan is pro) -> add to
audience -> exit / exit", published; all of them let in with flow_add_people (one
INSERT ... SELECT, timed apart as "entry"); then advance() until every run is done,
the wait ended by advancing the clock one minute. Checks at the end: every run ended
once, one tag row and one log row per run and step, the audience holds exactly the pro
people.

    flock /tmp/bench.lock .venv/bin/python benchmarks/flow_steps.py [--people 100000]

Prints ONE line."""

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "herald_bench_flows"
PG_SERVER = "postgres://root@127.0.0.1:5432"
for _name, _value in {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-" + "k" * 50,
    "PROVIDER_SECRET_KEYS": "dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
    "ALLOWED_HOSTS": "127.0.0.1",
    "LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_name, _value)
os.environ.update(DATABASE_URL=f"{PG_SERVER}/{DB}", REDIS_URL="redis://127.0.0.1:6379/11")

TARGET_PER_SECOND = 5_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    log(f"database {DB}: creating and migrating")
    recreate_database()
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from accounts.audit import Actor
    from accounts.models import Workspace
    from audiences.models import AudienceMember
    from audiences.services import audience_get_or_create
    from campaigns.flows import engine
    from campaigns.flows.services import flow_add_people, flow_create, flow_publish
    from campaigns.models import FlowRun, FlowRunStep
    from config.celery import app
    from people.models import Person, PersonTag
    from people.services.attributes import attribute_declare

    actor = Actor(system="benchmark")
    ws = Workspace.objects.create(name="Bench", slug="bench")
    attribute_declare(workspace=ws, key="plan", type="string", actor=actor)
    log(f"building {args.people:,} people")
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY people_person (workspace_id, external_id, email, phone, first_name, last_name,"
            " gender, country, city, address, attributes, time_zone, created_at, updated_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(args.people):
                plan = "pro" if i % 3 == 0 else "free"
                copy.write_row((ws.pk, f"p{i}", f"p{i}@example.com", "", "Ann", "Lee", "",
                                "UK", "London", "", f'{{"plan": "{plan}"}}', "",
                                "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))  # fmt: skip
        cursor.execute("VACUUM ANALYZE people_person")
    lounge, _ = audience_get_or_create(workspace=ws, name="Pro lounge", actor=actor)
    flow = flow_create(workspace=ws, name="Onboarding", actor=actor, entry={"type": "manual"},
                       steps=[
        {"id": "tag", "type": "add_tag", "tag": "Onboarding", "next": "wait"},
        {"id": "wait", "type": "wait", "for": {"amount": 1, "unit": "minutes"}, "next": "pro"},
        {"id": "pro", "type": "branch", "rules": {"attribute": "plan", "op": "is",
                                                   "value": "pro"}, "yes": "lounge", "no": "out"},
        {"id": "lounge", "type": "add_to_audience", "audience": lounge.pk, "next": "out"},
        {"id": "out", "type": "exit"},
    ])  # fmt: skip
    flow_publish(flow=flow, actor=actor)
    began = time.perf_counter()
    started = flow_add_people(flow=flow, people=Person.objects.for_workspace(ws), actor=actor)
    entry_seconds = time.perf_counter() - began
    app.control.purge()  # the after-commit kick: no worker runs here
    log(f"entry: {started:,} runs in {entry_seconds:.2f} s")
    now = timezone.now() + timedelta(seconds=1)
    per_type, seconds_by_round = {}, []
    began = time.perf_counter()
    for clock in (now, now + timedelta(minutes=1, seconds=1)):
        t0 = time.perf_counter()
        done = engine.advance(now=clock, batch=5_000)
        seconds_by_round.append(time.perf_counter() - t0)
        for kind, n in done.items():
            per_type[kind] = per_type.get(kind, 0) + n
    seconds = time.perf_counter() - began
    executed = sum(per_type.values())
    # every run ended once; each step once per run; the audience exactly the pro people
    runs = FlowRun.objects.filter(flow=flow)
    assert runs.count() == args.people and runs.filter(status="exited").count() == args.people
    assert FlowRunStep.objects.filter(run__flow=flow).values("run", "step").distinct().count() \
        == FlowRunStep.objects.filter(run__flow=flow).count()  # fmt: skip
    assert PersonTag.objects.filter(tag__name="Onboarding").count() == args.people
    pro = (args.people + 2) // 3
    assert AudienceMember.objects.filter(audience=lounge).count() == pro, "audience count"
    connection.close()
    rate = executed / seconds
    detail = ", ".join(f"{k} {v:,}" for k, v in sorted(per_type.items()))
    print(
        f"flow_steps people={args.people} executed={executed} seconds={seconds:.2f} "
        f"rate={rate:,.0f}/s ({100 * rate / TARGET_PER_SECOND:.0f}% of the "
        f"{TARGET_PER_SECOND:,}/s target) entry={entry_seconds:.2f}s "
        f"rounds={'+'.join(f'{s:.2f}' for s in seconds_by_round)}s "
        f"steps: {detail}; checks: runs ended once, steps once, audience exact"
    )
    if not args.keep:
        drop_database()


if __name__ == "__main__":
    main()
