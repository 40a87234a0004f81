"""The launch (freeze) of a 1,000,000-recipient email campaign: the recipients frozen into
the Delivery ledger with their skip reasons, against a plain INSERT ... SELECT of the same
people into a table shaped like the ledger, in one run.

Issue target (campaigns, "Numbers"): "Launch (freeze) of 1M recipients <= 10 s."

Prints ONE line:
    campaign_freeze recipients=N target=everyone queued=Q skipped=S seconds=..
    ratio=..% of 10 s reference=..s (x.. of the plain INSERT ... SELECT)

What it does: (re)creates the database herald_bench_cfreeze and migrates it; COPYs
--recipients people (default 1,000,000; 97% with an email, every 200th of those on email
Do Not Contact, every 500th with the address of the person before), VACUUM ANALYZE. An
email campaign to Everyone (--target everyone) or to a static segment holding them all
(--target segment: one EXISTS over 1M stored memberships), launched with campaign_launch;
then campaign_launch_run, the body of the launch task, is timed: job claim, the freeze
(one INSERT ... SELECT into campaigns_delivery with every index and the unique
constraint, skip reasons computed in the same statement), the counts, the job row done.
The dispatch tasks it enqueues on commit are purged (no worker runs here).

The reference, measured after it: CREATE TABLE ... (LIKE campaigns_delivery INCLUDING ALL)
(the same columns, defaults, indexes and unique constraint), then one INSERT ... SELECT of
the same people's ids and addresses as queued rows: the cost of writing the rows, with no
targeting, no skip reasons, no duplicate detection.

--all-on (issue 15, "Numbers": "Launch of a 1M-recipient campaign with caps, quiet
hours and recipient time zones all on: <= 20 s"): the workspace in Europe/Berlin with
quiet hours 21:00-08:00 and caps "email 1 per 16h" and "any 3 per 168h"; the people
spread over 12 time zones (every 13th none: the workspace's; every 101st an unknown
one); every 10th person sent another campaign an hour ago (capped); the campaign sent in
each recipient's time zone, two hours from now in Berlin's wall-clock time.

--variants (with --all-on: the same target, A/B variants on too): three variants of the
subject (50/30/20), a test phase on 20% of the recipients: each row's variant and whether
it is held for the winner computed in the same statement.

Run:
    flock /tmp/bench.lock .venv/bin/python benchmarks/campaign_freeze.py
    flock /tmp/bench.lock .venv/bin/python benchmarks/campaign_freeze.py --all-on --variants
    flock /tmp/bench.lock .venv/bin/python benchmarks/campaign_freeze.py --all-on
    flock /tmp/bench.lock .venv/bin/python benchmarks/campaign_freeze.py --target segment
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "herald_bench_cfreeze"
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
# its own database and Redis db, whatever the shell has (the database is dropped at the end)
os.environ.update(DATABASE_URL=f"{PG_SERVER}/{DB}", REDIS_URL="redis://127.0.0.1:6379/13")

TARGET_SECONDS = 10.0
ALL_ON_TARGET_SECONDS = 20.0
ZONES = ["Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
         "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney", "Pacific/Auckland",
         "Pacific/Kiritimati", "Pacific/Honolulu", "America/Sao_Paulo", "Africa/Lagos"]  # fmt: skip
CONTENT = {
    "subject": "{{ person.first_name | default: 'Hello' }}, spring is here",
    "text": "Everything is 20% off until Sunday.",
    "html": "<p>Everything is <b>20% off</b> until Sunday.</p>",
}


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


def zone_of(i: int) -> str:
    if i % 101 == 3:
        return "Mars/Olympus"  # unknown: the workspace's
    return "" if i % 13 == 0 else ZONES[i % len(ZONES)]


# the ledger's columns the benchmark's own INSERTs set (the rest: the model's defaults)
SET_HERE = {"id", "workspace_id", "campaign_id", "person_id", "is_test", "address", "status",
            "reason", "created_at", "sent_at"}  # fmt: skip


def build(recipients: int, target: str, all_on: bool = False, variants: bool = False):
    from django.db import connection

    from accounts.audit import Actor
    from accounts.models import Workspace
    from campaigns.services import campaign_create
    from segments.models import Segment

    actor = Actor(system="benchmark")
    ws = Workspace.objects.create(name="Bench", slug="bench")
    if all_on:
        import datetime as dt

        ws.time_zone = "Europe/Berlin"
        ws.quiet_hours_start, ws.quiet_hours_end = dt.time(21), dt.time(8)
        ws.frequency_caps = [{"channel": "email", "max": 1, "period": 16},
                             {"channel": "any", "max": 3, "period": 168}]  # fmt: skip
        ws.save()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY people_person (workspace_id, external_id, email, phone, first_name, last_name,"
            " gender, country, city, address, attributes, time_zone, created_at, updated_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(recipients):
                n = i - 1 if i % 500 == 499 else i  # a duplicate address every 500th
                email = "" if i % 33 == 5 else f"person{n}@example.com"  # 3% without
                zone = zone_of(i) if all_on else ""
                copy.write_row((ws.pk, f"p{i}", email, "", "Ann", "Lee", "", "UK", "London", "",
                                "{}", zone, "2026-01-01T00:00:00Z",
                                "2026-01-01T00:00:00Z"))  # fmt: skip
        with cursor.cursor.copy(
            "COPY people_donotcontact (workspace_id, channel, address, reason, source, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(7, recipients, 200):
                copy.write_row((ws.pk, "email", f"person{i}@example.com", "", "manual",
                                "2026-01-01T00:00:00Z"))  # fmt: skip
        include = []
        if target == "segment":
            segment = Segment.objects.create(workspace=ws, name="Everybody, listed", kind="static")
            cursor.execute(
                "INSERT INTO segments_segmentmember (workspace_id, segment_id, person_id, "
                "entered_at) SELECT workspace_id, %s, id, now() FROM people_person "
                "WHERE workspace_id = %s",
                [segment.pk, ws.pk],
            )
            include = [segment]
            cursor.execute("VACUUM ANALYZE segments_segmentmember")
        cursor.execute("VACUUM ANALYZE people_person")
        cursor.execute("VACUUM ANALYZE people_donotcontact")
    if all_on:  # every 10th person was sent another campaign an hour ago: capped
        from campaigns.dispatch.freeze import _column_defaults
        from campaigns.models import Campaign

        earlier = Campaign.objects.create(workspace=ws, name="Earlier", channel="email",
                                          status="sent", content=CONTENT)  # fmt: skip
        defaults = _column_defaults(SET_HERE)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO campaigns_delivery
                    (workspace_id, campaign_id, person_id, is_test, address, status, reason,
                     created_at, sent_at{"".join(f", {c}" for c, _ in defaults)})
                SELECT workspace_id, %s, id, false, email, 'sent', '', now() - interval '1 hour',
                       now() - interval '1 hour'{", %s" * len(defaults)}
                FROM people_person WHERE workspace_id = %s AND id %% 10 = 3 AND email <> ''
                """,  # noqa: S608 - column names of ours
                [earlier.pk, *(v for _, v in defaults), ws.pk],
            )
            cursor.execute("VACUUM ANALYZE campaigns_delivery")
    campaign = campaign_create(workspace=ws, name="Spring sale", channel="email",
                               content=CONTENT, everyone=target == "everyone", include=include,
                               actor=actor)  # fmt: skip
    if all_on:
        from django.utils import timezone

        from campaigns.models import Campaign

        Campaign.objects.filter(pk=campaign.pk).update(in_recipient_time_zone=True)
        campaign.in_recipient_time_zone = True
        # two hours from now on Berlin's clock: the first zones are past it, launched now
        campaign.send_at = timezone.now() + dt.timedelta(hours=2)
    if variants:
        from campaigns.services import campaign_update

        send_at = campaign.send_at
        campaign = campaign_update(campaign=campaign, actor=actor, variants=[
            {"percent": 50}, {"percent": 30, "content": {"subject": "Last day"}},
            {"percent": 20, "content": {"subject": "🌷 Spring sale"}},
        ], ab_test={"percent": 20, "metric": "open", "decide_after_hours": 4})  # fmt: skip
        campaign.send_at = send_at
    return ws, campaign, actor


def reference(workspace_id: int) -> tuple[float, int]:
    """A plain INSERT ... SELECT of the people as queued rows into a table like the
    ledger (its columns, defaults, indexes and unique constraint)."""
    from django.db import connection, transaction

    from campaigns.dispatch.freeze import _column_defaults

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_delivery_like")
        cursor.execute("CREATE TABLE bench_delivery_like (LIKE campaigns_delivery INCLUDING ALL)")
        cursor.execute("CHECKPOINT")
        # the other NOT NULL columns with their model defaults, as the freeze fills them
        defaults = _column_defaults(SET_HERE)
        columns = "".join(f", {column}" for column, _ in defaults)
        values = ", %s" * len(defaults)
        began = time.perf_counter()
        with transaction.atomic():
            cursor.execute(
                f"""
                INSERT INTO bench_delivery_like
                    (workspace_id, campaign_id, person_id, is_test, address, status, reason,
                     created_at{columns})
                SELECT workspace_id, 0, id, false, email, 'queued', '', now(){values}
                FROM people_person WHERE workspace_id = %s
                """,  # noqa: S608 - column names of ours
                [*(value for _, value in defaults), workspace_id],
            )
            rows = cursor.rowcount
        seconds = time.perf_counter() - began
        cursor.execute("DROP TABLE bench_delivery_like")
    return seconds, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--target", choices=("everyone", "segment"), default="everyone")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--all-on", action="store_true",
                        help="frequency caps, quiet hours and recipient time zones on")  # fmt: skip
    parser.add_argument("--variants", action="store_true",
                        help="A/B variants with a test phase on too")  # fmt: skip
    args = parser.parse_args()

    log(f"database {DB}: creating and migrating")
    recreate_database()
    import django

    django.setup()
    from django.db import connection

    from campaigns.services import campaign_launch, campaign_launch_run
    from config.celery import app

    log(f"building {args.recipients:,} people")
    ws, campaign, actor = build(args.recipients, args.target, args.all_on, args.variants)
    # the launch task is queued
    campaign = campaign_launch(campaign=campaign, actor=actor, send_at=campaign.send_at)
    if campaign.status != "sending":
        raise SystemExit(f"the campaign is {campaign.status}, not launched")
    launch = campaign.launches.get()
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")  # the build's dirty pages are not the freeze's to write
    log("freezing")
    began = time.perf_counter()
    launch = campaign_launch_run(launch_id=launch.pk)
    seconds = time.perf_counter() - began
    app.control.purge()  # the launch and dispatch tasks: no worker runs here
    if launch.status != "done" or launch.queued + launch.skipped != args.recipients:
        raise SystemExit(f"the launch ended {launch.status}: {launch.detail}")
    log(f"freeze: {launch.detail} in {seconds:.2f} s")
    target_seconds = ALL_ON_TARGET_SECONDS if args.all_on else TARGET_SECONDS
    if args.all_on:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reason || ' ' || variant || CASE WHEN ab_rest THEN ' held' ELSE '' END, "
                "count(*), count(next_attempt_at), min(next_attempt_at), "
                "max(next_attempt_at) FROM campaigns_delivery WHERE campaign_id = %s "
                "GROUP BY 1 ORDER BY 1",
                [launch.campaign_id],
            )
            for row in cursor.fetchall():
                log(f"  reason={row[0] or '-'} rows={row[1]} timed={row[2]} "
                    f"first={row[3]} last={row[4]}")  # fmt: skip
    ref_seconds, ref_rows = reference(ws.pk)
    if ref_rows != args.recipients:
        raise SystemExit(f"the reference inserted {ref_rows} rows")
    log(f"reference: {ref_rows:,} rows in {ref_seconds:.2f} s")
    connection.close()
    print(
        f"campaign_freeze recipients={args.recipients} target={args.target} "
        f"all_on={'yes' if args.all_on else 'no'} variants={'yes' if args.variants else 'no'} "
        f"queued={launch.queued} skipped={launch.skipped} seconds={seconds:.2f} "
        f"ratio={100 * seconds / target_seconds:.0f}% of {target_seconds:.0f} s "
        f"reference={ref_seconds:.2f}s (x{seconds / ref_seconds:.2f} of the plain "
        f"INSERT ... SELECT)"
    )
    if not args.keep:
        drop_database()


if __name__ == "__main__":
    main()
