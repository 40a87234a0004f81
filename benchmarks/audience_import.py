"""Audience CSV import at scale: a 1,000,000-row per_row file over 100 audiences.

Issue targets: "Import in per_row mode of 1,000,000 rows over 100 audiences: <= 30 s end to
end; >= 30% of the rate of a raw psycopg COPY of the same file into a two-column table in
the same run; >= 20x django-import-export (use_bulk, batch_size 1000) importing the first
50,000 rows into the membership model in the same run; worker peak memory <= 300 MB and
the same for 100,000 and 1,000,000 rows."

Prints ONE line:
    audience_import rows=1000000 seconds=.. rate=../s copy_ratio=..% vs_import_export=..x
    peak_rss_mb=.. (100k: ..MB) targets: <=30s >=30% >=20x <=300MB

- seconds/rate: end to end through the services, in a separate worker-like process:
  audience_import_start (the upload is stored under MEDIA_ROOT and checked) then
  audience_import_run (the body of the Celery task: stream -> COPY -> one merge
  transaction -> recount), identifiers = external ids of 1,000,000 existing people.
- copy_ratio: our rate as a share of a raw psycopg COPY of the same file (its bytes, as
  CSV with `;`) into a two-column TEMP table.
- floor: not a target, context for copy_ratio. The time of the one write no import can
  skip: INSERT ... SELECT of the same memberships (sorted as the import sorts them) from a
  TEMP table into an EMPTY table shaped like the membership table (same key and index),
  and our time as a multiple of it.
- vs_import_export: django-import-export's ModelResource over AudienceMember (use_bulk,
  batch_size 1000, plus the documented bulk settings skip_diff and force_init_instance;
  persons and audiences looked up by ForeignKeyWidget) on the first 50,000 rows of the
  file, into their own audiences, against our rate.
- peak_rss_mb: ru_maxrss of the worker-like process, for the 1M run and for a 100k run.

Uses its own database and temporary folder (files, uploads), created here and dropped at the
end (--keep keeps both):
DATABASE_URL=postgres://root@127.0.0.1:5432/herald_bench_audiences. Run:
    .venv/bin/python benchmarks/audience_import.py [--rows 1000000] [--keep]
"""

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from accounts.audit import Actor

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://root@127.0.0.1:5432"
DB_NAME = "herald_bench_audiences"
IE_ROWS = 50_000
SMALL_ROWS = 100_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_env(media_root: str) -> dict:
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
        HERALD_VAR_DIR=media_root,
        DJANGO_SETTINGS_MODULE="config.settings",
        AUDIENCE_IMPORT_MAX_MB="1024",
    )
    return env


def django_setup(env: dict) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- Setup ----------------------------------------------------------------------------


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
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def copy_people(workspace_id: int, n: int) -> None:
    """`n` people (external ids c1..cN) in one COPY, then VACUUM ANALYZE."""
    from django.db import connection

    now = datetime.now(UTC)
    columns = (
        "workspace_id, external_id, email, phone, first_name, last_name, gender, country, "
        "city, address, attributes, created_at, updated_at"
    )
    with connection.cursor() as c:
        cursor = c.cursor
        with cursor.copy(f"COPY people_person ({columns}) FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row(
                    (workspace_id, f"c{i}", f"person{i}@example.com", f"+4479{i:08d}",
                     "Ann", "Smith", "", "GB", "London", "", "{}", now, now)
                )  # fmt: skip
        cursor.execute("VACUUM ANALYZE people_person")


def write_file(path: Path, rows: int, people: int, audiences: int, prefix: str, seed: int):
    """`rows` lines `c<n>; <prefix> <k>` of random people and audiences (a few repeats,
    as real files have)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(rows):
            f.write(f"c{rng.randint(1, people)}; {prefix} {rng.randint(1, audiences)}\n")


# --- The measured runs ----------------------------------------------------------------


def child_main(path: str, workspace_id: int) -> None:
    """The worker-like process: one import through the services, timed end to end."""
    from django.core.files import File

    from accounts.models import Workspace
    from audiences.import_services import audience_import_run, audience_import_start

    workspace = Workspace.objects.get(pk=workspace_id)
    started = time.perf_counter()
    with open(path, "rb") as f:
        job = audience_import_start(
            workspace=workspace,
            uploaded_by=None,
            file=File(f, name=os.path.basename(path)),
            mode="per_row",
            identifier="external_id",
            actor=Actor(system="benchmark"),
        )
    job = audience_import_run(import_id=job.id)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_kb / 1024,
                "status": job.status,
                "rows": job.total_rows,
                "matched": job.matched,
                "unmatched": job.unmatched,
                "invalid": job.invalid,
                "created": len(job.audiences_created),
                "detail": job.detail,
            }
        )
    )


def run_child(env: dict, path: Path, workspace_id: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--workspace", str(workspace_id)],
        cwd=ROOT,
        env={**env, "LOG_LEVEL": "INFO"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"the import process failed:\n{done.stdout}\n{done.stderr}")
    for line in done.stderr.splitlines():
        if "audiences.imports.run" in line:
            log("  " + line.split(": ", 1)[-1])  # where the time went
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "done":
        raise SystemExit(f"the import did not finish: {result}")
    return result


def raw_copy_seconds(path: Path) -> float:
    """A raw psycopg COPY of the file's bytes into a two-column TEMP table."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/{DB_NAME}") as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE raw_copy (identifier text, audience text)")
        conn.commit()
        started = time.perf_counter()
        query = "COPY raw_copy FROM STDIN (FORMAT csv, DELIMITER ';')"
        with cursor.copy(query) as copy, open(path, "rb") as f:
            while block := f.read(1 << 20):
                copy.write(block)
        conn.commit()
        return time.perf_counter() - started


def insert_floor_seconds(workspace_id: int) -> float:
    """INSERT ... SELECT of the 1M-row import's memberships into an empty copy of the
    membership table (its key and index included): the database's own floor."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/{DB_NAME}") as conn, conn.cursor() as cursor:
        cursor.execute("SET work_mem = '256MB'")
        cursor.execute(
            "CREATE TEMP TABLE floor_pairs AS SELECT m.workspace_id, m.audience_id, m.person_id "
            "FROM audiences_audiencemember m JOIN audiences_targetaudience a "
            "ON a.id = m.audience_id WHERE a.workspace_id = %s AND a.name LIKE 'Audience %%'",
            [workspace_id],
        )
        cursor.execute("ANALYZE floor_pairs")
        cursor.execute("CREATE TABLE floor_members (LIKE audiences_audiencemember INCLUDING ALL)")
        conn.commit()
        cursor.execute("CHECKPOINT")
        started = time.perf_counter()
        cursor.execute(
            "INSERT INTO floor_members (workspace_id, audience_id, person_id, source, added_at) "
            "SELECT workspace_id, audience_id, person_id, 'import', now() FROM floor_pairs "
            "ORDER BY person_id, audience_id"
        )
        conn.commit()
        seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE floor_members")
        conn.commit()
        return seconds


def import_export_seconds(path: Path, workspace_id: int, audiences: int) -> tuple[float, int]:
    """django-import-export on the first IE_ROWS rows of the file, into audiences of its
    own ("IE Audience k"), rows naming the same (person, audience) twice counted once."""
    import tablib
    from import_export import fields, resources, widgets

    from audiences.models import AudienceMember, TargetAudience
    from people.models import Person

    TargetAudience.objects.bulk_create(
        [
            TargetAudience(workspace_id=workspace_id, name=f"IE Audience {k}")
            for k in range(1, audiences + 1)
        ]
    )

    class WorkspaceKeyWidget(widgets.ForeignKeyWidget):
        """Looks up within the workspace, so each lookup uses the (workspace, key) index."""

        def get_queryset(self, value, row, *args, **kwargs):
            return self.model.objects.for_workspace(workspace_id)

    class MembershipResource(resources.ModelResource):
        person = fields.Field(
            attribute="person",
            column_name="identifier",
            widget=WorkspaceKeyWidget(Person, "external_id"),
        )
        audience = fields.Field(
            attribute="audience",
            column_name="audience",
            widget=WorkspaceKeyWidget(TargetAudience, "name"),
        )

        class Meta:
            model = AudienceMember
            fields = ("person", "audience")
            use_bulk = True
            batch_size = 1000
            skip_diff = True
            force_init_instance = True

        def before_save_instance(self, instance, row, **kwargs):
            instance.workspace_id = workspace_id
            instance.source = "import"

    data = tablib.Dataset(headers=["identifier", "audience"])
    seen = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            identifier, name = (cell.strip() for cell in line.split(";"))
            if (identifier, name) in seen:
                continue
            seen.add((identifier, name))
            data.append((identifier, "IE " + name))
            if len(data) >= IE_ROWS:
                break
    started = time.perf_counter()
    result = MembershipResource().import_data(data, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - started
    if result.has_errors() or result.has_validation_errors():
        raise SystemExit("django-import-export reported errors")
    return seconds, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--audiences", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        child_main(args.child, args.workspace)
        return

    tmp = Path(tempfile.mkdtemp(prefix="herald-audience-bench-"))
    env = bench_env(str(tmp / "var"))
    log(f"database {DB_NAME}: creating and migrating")
    recreate_database()
    try:
        migrate(env)
        django_setup(env)
        from accounts.models import Workspace

        workspace = Workspace.objects.create(name="Bench", slug="bench")
        started = time.perf_counter()
        copy_people(workspace.id, args.people)
        log(f"{args.people:,} people in {time.perf_counter() - started:.1f}s")

        big = tmp / f"audiences_{args.rows}.csv"
        small = tmp / f"audiences_{SMALL_ROWS}.csv"
        write_file(big, args.rows, args.people, args.audiences, "Audience", seed=1)
        write_file(small, SMALL_ROWS, args.people, args.audiences, "Small audience", seed=2)
        log(f"files: {big} ({big.stat().st_size / 2**20:.1f} MB), {small}")

        small_run = run_child(env, small, workspace.id)
        log(f"100k run: {small_run}")
        big_run = run_child(env, big, workspace.id)
        log(f"1M run: {big_run}")

        copy_seconds = raw_copy_seconds(big)
        log(f"raw COPY of the file: {copy_seconds:.2f}s")
        floor_seconds = insert_floor_seconds(workspace.id)
        log(f"INSERT ... SELECT of the memberships into an empty table: {floor_seconds:.2f}s")
        ie_seconds, ie_rows = import_export_seconds(big, workspace.id, args.audiences)
        log(f"django-import-export: {ie_rows:,} rows in {ie_seconds:.1f}s")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database()
            shutil.rmtree(tmp, ignore_errors=True)
            log(f"database {DB_NAME} and {tmp} dropped")

    seconds = big_run["seconds"]
    rate = args.rows / seconds
    copy_rate = args.rows / copy_seconds
    ie_rate = ie_rows / ie_seconds
    print(
        f"audience_import rows={args.rows} seconds={seconds:.1f} rate={rate:,.0f}/s "
        f"copy_ratio={100 * rate / copy_rate:.1f}% vs_import_export={rate / ie_rate:.0f}x "
        f"peak_rss_mb={big_run['peak_rss_mb']:.0f} (100k: {small_run['peak_rss_mb']:.0f}MB) "
        "targets: <=30s >=30% >=20x <=300MB "
        f"(context: copy={copy_seconds:.2f}s, insert_floor={floor_seconds:.2f}s, "
        f"import/floor={seconds / floor_seconds:.1f}x)"
    )


if __name__ == "__main__":
    main()
