"""Contact import at scale: 1,000,000 rows (and 100,000 for the memory check).

Prints ONE line:
    contact_import rows=1000000 seconds=.. rate=../s copy_ratio=..% vs_import_export=..x
    peak_rss_mb=.. (100k: ..MB)

- seconds/rate: the import job (contact_import_run, the body of the Celery task) on a
  fresh workspace, in a separate worker-like process; the analysis that precedes it is
  timed too and printed on stderr.
- copy_ratio: our rate as a share of a raw psycopg COPY of the same rows into
  people_person (same indexes and foreign keys; those rows are deleted afterwards).
- vs_import_export: django-import-export's PersonResource (use_bulk, batch_size 1000) on
  the first 50,000 rows, against our import of the same 50,000 rows.
- peak_rss_mb: ru_maxrss of the worker-like process (analysis + import), for 1M rows and
  for 100k rows: streaming keeps them the same.

Uses its own database: DATABASE_URL=postgres://root@127.0.0.1:5432/herald_bench (created
and migrated when missing). Run:
    .venv/bin/python benchmarks/contact_import.py [--rows 1000000]
"""

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from accounts.audit import Actor

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://root@127.0.0.1:5432/herald_bench"
TMP = Path(os.environ.get("BENCH_TMP", "/tmp"))
IE_ROWS = 50_000

FIRST = [
    "Ann",
    "Bob",
    "Chloé",
    "David",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Inès",
    "Jonas",
    "Karin",
    "Luca",
    "Maya",
    "Noah",
    "Olga",
    "Pavel",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
]
LAST = [
    "Smith",
    "Jones",
    "Martin",
    "Müller",
    "Rossi",
    "García",
    "Dubois",
    "Novak",
    "Kowalski",
    "Jensen",
    "Silva",
    "Ivanova",
    "Nguyen",
    "Okafor",
    "Brown",
    "Lefèvre",
    "Costa",
    "Berg",
]
CITIES = [
    ("GB", "London"),
    ("GB", "Manchester"),
    ("FR", "Paris"),
    ("FR", "Lyon"),
    ("DE", "Berlin"),
    ("IT", "Rome"),
    ("ES", "Madrid"),
    ("NL", "Amsterdam"),
]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk"]
PLANS = ["free", "pro", "team", "enterprise"]
HEADER = ["external_id", "email", "phone", "first_name", "last_name", "gender", "country",
          "city", "company", "plan", "score", "signup_date"]  # fmt: skip


def phone_for(i: int, rng: random.Random) -> str:
    # valid mobile numbers: UK 07911 ......, France 06 12 .. .. ..
    if rng.random() < 0.5:
        return f"+447400{i % 1_000_000:06d}"
    return f"+33612{i % 1_000_000:06d}"


def generate(path: Path, rows: int) -> None:
    """A contact file like a CRM export: every row has an id and an email, 60% a phone,
    half a company, and three custom attributes (text, number, date)."""
    if path.exists() and path.stat().st_size > 0:
        with open(path, newline="") as f:
            if sum(1 for _ in f) == rows + 1:
                return
    rng = random.Random(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(1, rows + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            country, city = rng.choice(CITIES)
            writer.writerow([
                f"C{i:08d}",
                f"{first.lower()}.{last.lower()}.{i}@{rng.choice(DOMAINS)}".encode(
                    "ascii", "ignore").decode(),
                phone_for(i, rng) if rng.random() < 0.6 else "",
                first, last, rng.choice(["female", "male", ""]), country, city,
                f"Company {rng.randrange(5000)}" if rng.random() < 0.5 else "",
                rng.choice(PLANS), rng.randrange(1000),
                f"20{rng.randrange(15, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            ])  # fmt: skip


def head(src: Path, dest: Path, rows: int) -> None:
    with open(src, newline="") as f, open(dest, "w", newline="") as out:
        for n, line in enumerate(f):
            if n > rows:
                break
            out.write(line)


# --- the worker-like child ---------------------------------------------------------------


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def child(file: str, label: str) -> None:
    """Import `file` into a fresh workspace like a worker would; print a JSON result."""
    setup_django()
    from django.core.files import File
    from django.db import transaction

    from accounts.models import Workspace
    from people.imports import services
    from people.models import ContactImport

    workspace = Workspace.objects.create(name=f"Bench {label}", slug=f"bench-{label}-{os.getpid()}")
    with open(file, "rb") as f, transaction.atomic():
        job = services.contact_import_create(
            workspace=workspace,
            uploaded_by=None,
            file=File(f, name=os.path.basename(file)),
            actor=Actor(system="benchmark"),
        )
    # The services enqueue tasks on commit; this process plays the worker instead.
    started = time.perf_counter()
    job = services.contact_import_analyze(contact_import=job)
    analyze_seconds = time.perf_counter() - started
    assert job.stage == ContactImport.Stage.ANALYZED, job.detail
    job = services.contact_import_confirm(
        contact_import=job, options={"policy": "overwrite"}, actor=Actor(system="benchmark")
    )
    started = time.perf_counter()
    job = services.contact_import_run(import_id=job.id)
    seconds = time.perf_counter() - started
    assert job.status == "done", job.detail
    me = resource.getrusage(resource.RUSAGE_SELF)
    helpers = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "seconds": seconds, "analyze_seconds": analyze_seconds,
        "peak_rss_mb": me.ru_maxrss / 1024, "helper_peak_rss_mb": helpers.ru_maxrss / 1024,
        "cpu_seconds": me.ru_utime + me.ru_stime,
        "helper_cpu_seconds": helpers.ru_utime + helpers.ru_stime,
        "created": job.created_count, "errors": job.error_count, "rows": job.total_rows,
    }))  # fmt: skip


def run_child(file: Path, label: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(file), "--label", label],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"the import of {file} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- references ----------------------------------------------------------------------------


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=os.environ.copy(), check=True,
    )  # fmt: skip


def truncate_people(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE people_persontag, people_pushtoken, people_event, people_person, "
            "people_company, people_tag, people_attributedefinition CASCADE"
        )
        conn.execute("VACUUM ANALYZE people_person")
        conn.execute("CHECKPOINT")


def raw_copy_seconds(url: str, src: Path) -> float:
    """COPY the same rows, already in people_person's shape, straight into the table."""
    import psycopg

    copy_file = src.with_suffix(".copy.tsv")
    with psycopg.connect(url, autocommit=True) as conn:
        ws = conn.execute(
            "INSERT INTO accounts_workspace (name, slug, time_zone, created_at) "
            "VALUES ('Bench raw', %s, 'UTC', now()) RETURNING id",
            [f"bench-raw-{os.getpid()}"],
        ).fetchone()[0]
    now = "2026-11-25 12:00:00+00"
    with open(src, newline="") as f, open(copy_file, "w") as out:
        reader = csv.reader(f)
        next(reader)
        for r in reader:
            attributes = json.dumps({"plan": r[9], "score": int(r[10]), "signup_date": r[11]})
            out.write("\t".join([
                str(ws), r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], "", attributes,
                now, now, "\\N",
            ]) + "\n")  # fmt: skip
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY people_person (workspace_id, external_id, email, phone, first_name, "
                "last_name, gender, country, city, address, attributes, created_at, updated_at, "
                "company_id) FROM STDIN"
            ) as copy,
            open(copy_file, "rb") as f,
        ):
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        conn.commit()
    seconds = time.perf_counter() - started
    copy_file.unlink()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM people_person WHERE workspace_id = %s", [ws])
    return seconds


def import_export_seconds(src: Path) -> float:
    """django-import-export's PersonResource (use_bulk, batch_size 1000) on `src`."""
    setup_django()
    import tablib

    from accounts.models import Membership, User, Workspace
    from people.admin import PersonResource

    workspace = Workspace.objects.create(name="Bench IE", slug=f"bench-ie-{os.getpid()}")
    user = User.objects.create_user(f"bench-{os.getpid()}@example.test", "x")
    Membership.objects.create(workspace=workspace, user=user, role="owner")
    headers = ["workspace", "external_id", "email", "phone", "first_name", "last_name",
               "gender", "country", "city", "attributes"]  # fmt: skip
    data = tablib.Dataset(headers=headers)
    with open(src, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for r in reader:
            attributes = json.dumps({"plan": r[9], "score": int(r[10]), "signup_date": r[11]})
            data.append([workspace.id, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], attributes])
    resource_ = PersonResource(user=user)
    assert resource_._meta.use_bulk and resource_._meta.batch_size == 1000
    started = time.perf_counter()
    result = resource_.import_data(data, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - started
    assert not result.has_errors() and not result.has_validation_errors()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--child")
    parser.add_argument("--label", default="")
    parser.add_argument("--import-export")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.label)
        return
    if args.import_export:
        print(json.dumps({"seconds": import_export_seconds(Path(args.import_export))}))
        return

    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    env = os.environ.copy()
    env.update(
        DATABASE_URL=url,
        DEBUG="1",
        HERALD_VAR_DIR=str(TMP / "herald-bench-var"),
        CELERY_TASK_ALWAYS_EAGER="0",
        # settings need a Redis since the SQLite mode went; the import itself does not use it
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
    )
    os.environ.update(env)
    ensure_database(url)

    big = TMP / f"herald_contacts_{args.rows}.csv"
    small = TMP / f"herald_contacts_{args.small}.csv"
    first = TMP / f"herald_contacts_first_{IE_ROWS}.csv"
    generate(big, args.rows)
    head(big, small, args.small)
    head(big, first, IE_ROWS)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    truncate_people(url)
    copy_seconds = raw_copy_seconds(url, big)
    log(f"raw COPY of {args.rows:,} rows into people_person: {copy_seconds:.1f} s")
    truncate_people(url)
    result = run_child(big, "big", env)
    log(f"import of {args.rows:,} rows: {json.dumps(result)}")
    truncate_people(url)
    small_result = run_child(small, "small", env)
    log(f"import of {args.small:,} rows: {json.dumps(small_result)}")
    truncate_people(url)
    ours_first = run_child(first, "first", env)
    truncate_people(url)
    out = subprocess.run(
        [sys.executable, __file__, "--import-export", str(first)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    ie_seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    log(f"first {IE_ROWS:,} rows: ours {ours_first['seconds']:.2f} s, "
        f"django-import-export {ie_seconds:.1f} s")  # fmt: skip
    truncate_people(url)

    seconds = result["seconds"]
    rate = args.rows / seconds
    print(
        f"contact_import rows={args.rows} seconds={seconds:.1f} rate={rate:,.0f}/s "
        f"copy_ratio={100 * copy_seconds / seconds:.0f}% "
        f"vs_import_export={ie_seconds / ours_first['seconds']:.0f}x "
        f"peak_rss_mb={result['peak_rss_mb']:.0f} (100k: {small_result['peak_rss_mb']:.0f}MB)"
    )


if __name__ == "__main__":
    main()
