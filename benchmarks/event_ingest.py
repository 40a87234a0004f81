"""Event ingest over the HTTP API against a raw COPY of the same rows.

Issue target: "Event ingest over the API with 1000-event batches: >= 10,000 events/s on
this 2-core machine, client and server together, and >= 40% of a raw psycopg COPY of the
same rows into the same table in the same run."

Prints ONE line:
    event_ingest events=200000 api=..events/s copy=..rows/s ratio=..% (targets ...)

What it does, all from this one script:

1. (Re)creates the database herald_bench_events, migrates it, creates a workspace and an
   API key with the management commands, and COPYs 20,000 people into it, so that the
   measure is of events (the people exist, as they do for a live app).
2. Pre-generates 200 batches x 1000 realistic events (skewed event names, typed
   properties, ISO timestamps over the last 30 days) as ready-to-send JSON bodies.
3. Starts the real app server: gunicorn `config.wsgi:application`, production settings
   (DEBUG=0), on a free port of 127.0.0.1.
4. Sends the batches from several client threads, each keeping one persistent HTTP/1.1
   connection (stdlib http.client), after a warm-up of two batches per connection;
   api = events accepted / wall time from the first request to the last response. Every
   answer must be a 202 accepting the whole batch, and the rows are counted afterwards.
5. copy: the same 200,000 rows with raw psycopg (`cursor.copy`: one COPY, one
   transaction) into people_event, once before and once after the API run (the machine
   is shared, its load varies); the faster of the two is the reference. The rows are
   deleted after each.
6. Stops the server and drops the database (unless --keep).

Server choice (--worker-class, --workers, --threads, --clients): gthread, 2 workers x
2 threads, 4 client connections. gunicorn's sync worker answers every request with
`Connection: close` (a new TCP connection per batch) and its process idles during each
COPY and commit: 2 or 4 sync workers gave a median of ~11,000 events/s (6 runs), gthread
with 2-4 threads per worker ~22,000 (15 runs, 10,700-43,000: 100-batch sweeps on this
machine while other test suites ran, load 4-8). 2x4 threads or 8 connections were not
distinguishable from 2x2 within that noise; 2x2 with 4 connections keeps a thread busy
while another waits on PostgreSQL.

Run:
    .venv/bin/python benchmarks/event_ingest.py            # full scale
    .venv/bin/python benchmarks/event_ingest.py --keep     # keep the database afterwards
"""

import argparse
import http.client
import json
import os
import random
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_SERVER = "postgres://root@127.0.0.1:5432"

FIRST_NAMES = (
    "Olivia Liam Emma Noah Amelia Oliver Sophia Elijah Charlotte James Ava Lucas Mia Mateo "
    "Isabella Leo Sofia Hugo Chloé Louis Léa Gabriel Aisha Omar Yuki Hana Wei Mei Priya Arjun "
    "Fatima Ali Giulia Marco Sven Ingrid Zoé Tomás Lucía Kofi Amara Nia Jonas Emil"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Martin Bernard Dubois Thomas "
    "Robert Richard Petit Durand Leroy Moreau Müller Schmidt Schneider Fischer Weber Rossi "
    "Russo Ferrari Esposito Bianchi Romano Tanaka Suzuki Sato Kim Lee Park Chen Wang Li "
    "Singh Patel Kumar Silva Santos Oliveira Nowak Kowalski Jansen Andersson"
).split()
CITIES = [
    ("London", "GB", 30),
    ("Paris", "FR", 18),
    ("Berlin", "DE", 12),
    ("Madrid", "ES", 9),
    ("Manchester", "GB", 8),
    ("Lyon", "FR", 6),
    ("Amsterdam", "NL", 6),
    ("Milan", "IT", 5),
    ("Lisbon", "PT", 3),
    ("Dublin", "IE", 3),
]
PATHS = ["/", "/pricing", "/blog", "/blog/launch-notes", "/docs", "/signup", "/cart", "/account"]
REFERRERS = ["google", "newsletter", "twitter", "direct", "partner", "facebook"]
PRODUCTS = [f"SKU-{n:05d}" for n in range(1, 400)]


def _page_viewed(rng):
    return {
        "path": rng.choice(PATHS),
        "referrer": rng.choice(REFERRERS),
        "duration_ms": rng.randint(200, 90_000),
    }


def _purchase(rng):
    items = rng.randint(1, 5)
    return {
        "order_id": "ord_" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=12)),
        "amount": round(rng.uniform(5, 400), 2),
        "currency": rng.choice(["EUR", "GBP", "USD"]),
        "items": items,
        "skus": rng.sample(PRODUCTS, items),
        "coupon": rng.choice([None, None, None, "WELCOME10", "BLACKFRIDAY"]),
    }


def _product(rng):
    return {"sku": rng.choice(PRODUCTS), "quantity": rng.randint(1, 3)}


def _email(rng):
    return {"campaign_id": rng.randint(1, 80), "link": rng.choice(PATHS)}


def _app(rng):
    return {
        "platform": rng.choice(["ios", "android", "web"]),
        "app_version": f"4.{rng.randint(0, 12)}.{rng.randint(0, 9)}",
        "push_enabled": rng.random() < 0.6,
    }


def _search(rng):
    return {
        "query": rng.choice(["shoes", "running", "gift card", "jacket", "sale"]),
        "results": rng.randint(0, 120),
    }


def _nothing(rng):
    return {}


# (name, weight, properties): a skewed mix, as a real product sees.
EVENT_KINDS = [
    ("Page Viewed", 40, _page_viewed),
    ("App Opened", 14, _app),
    ("Product Viewed", 12, _product),
    ("Search", 8, _search),
    ("Added To Cart", 7, _product),
    ("Email Opened", 6, _email),
    ("Email Clicked", 3, _email),
    ("Checkout Started", 3, _product),
    ("Purchase", 3, _purchase),
    ("Signed In", 2, _nothing),
    ("Push Opened", 1, _app),
    ("Subscription Renewed", 1, _purchase),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- Setup --------------------------------------------------------------------------------


def server_env(db_name: str, static_root: str) -> dict:
    env = dict(os.environ)
    env.update(
        DEBUG="0",
        PROVIDER_SECRET_KEYS="dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
        SECRET_KEY="bench-only-secret-key-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        STATIC_MANIFEST="0",
        STATIC_ROOT=static_root,  # an empty folder: WhiteNoise warns when it is missing
        DATABASE_URL=f"{PG_SERVER}/{db_name}",
        REDIS_URL="redis://127.0.0.1:6379/9",
        API_RATE_LIMIT="1000000/m",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


def manage(env, *argv) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def recreate_database(db_name: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')


def drop_database(db_name: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def copy_people(conn, workspace_id: int, n: int, rng) -> list[str]:
    """`n` people with realistic fields, in one COPY; returns their external ids."""
    now = datetime.now(UTC)
    weights = [w for _, _, w in CITIES]
    external_ids = []
    columns = (
        "workspace_id, external_id, email, phone, first_name, last_name, gender, country, "
        "city, address, attributes, created_at, updated_at"
    )
    with conn.cursor() as cur, cur.copy(f"COPY people_person ({columns}) FROM STDIN") as copy:
        for i in range(n):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            city, country, _ = rng.choices(CITIES, weights)[0]
            external_id = f"user-{i:07d}"
            external_ids.append(external_id)
            copy.write_row(
                (
                    workspace_id,
                    external_id,
                    f"{first}.{last}.{i}@example.com".lower(),
                    f"+4477{i:08d}",
                    first,
                    last,
                    rng.choice(["female", "male", ""]),
                    country,
                    city,
                    f"{rng.randint(1, 200)} High Street",
                    Jsonb({"plan": rng.choice(["free", "pro", "team"])}),
                    now,
                    now,
                )
            )
    return external_ids


def make_batches(rng, external_ids, batches: int, size: int) -> list[list[dict]]:
    now = datetime.now(UTC)
    names = [k[0] for k in EVENT_KINDS]
    weights = [k[1] for k in EVENT_KINDS]
    makers = {k[0]: k[2] for k in EVENT_KINDS}
    out = []
    for _ in range(batches):
        batch = []
        for name in rng.choices(names, weights, k=size):
            at = now - timedelta(
                seconds=rng.randint(0, 30 * 86400), microseconds=rng.randint(0, 999_999)
            )
            batch.append(
                {
                    "person": rng.choice(external_ids),
                    "name": name,
                    "occurred_at": at.isoformat().replace("+00:00", "Z"),
                    "properties": makers[name](rng),
                }
            )
        out.append(batch)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, env, port: int) -> subprocess.Popen:
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--log-level",
        "warning",
    ]
    if args.worker_class == "gthread":
        cmd += ["--threads", str(args.threads), "--keep-alive", "30"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/openapi.json")
            conn.getresponse().read()
            conn.close()
            return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("gunicorn did not answer within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # graceful: gunicorn's arbiter stops its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- The scenario -------------------------------------------------------------------------


def accepted_whole_batch(status: int, answer: dict | None, expected: int) -> str | None:
    """The event API's answer to a batch of `expected` events, or what is wrong with it."""
    if status != 202:
        return f"HTTP {status}"
    if answer["accepted"] != expected or answer["errors"]:
        return f"accepted {answer['accepted']} of {expected}: {answer}"
    return None


def send_all(
    port: int, key: str, bodies: list[tuple[bytes, int]], clients: int,
    *, path: str = "/api/v1/events", check=accepted_whole_batch,
) -> float:  # fmt: skip
    """Sends every (body, expected) to `path` from `clients` threads with one keep-alive
    connection each; `check(status, answer, expected)` says what is wrong with an answer
    (None: nothing). Returns the wall time from the first request to the last response."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    lock = threading.Lock()
    pending = list(reversed(bodies))
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start.wait()
        try:
            while True:
                with lock:
                    if not pending or errors:
                        return
                    body, expected = pending.pop()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                answer = json.loads(data) if response.status < 300 else None
                problem = check(response.status, answer, expected)
                if problem:
                    errors.append(f"{problem}: {data[:300]!r}")
                    return
        except Exception as e:  # noqa: BLE001 - reported below: the run fails
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise SystemExit(f"ingest failed: {errors[0]}")
    return elapsed


def copy_rows(conn, workspace_id: int, batches: list[list[dict]]) -> list[tuple]:
    """The batches as people_event rows (person ids resolved, types parsed), untimed."""
    ids = dict(
        conn.execute(
            "SELECT external_id, id FROM people_person WHERE workspace_id = %s", [workspace_id]
        ).fetchall()
    )
    received_at = datetime.now(UTC)
    return [
        (
            workspace_id,
            ids[e["person"]],
            e["name"],
            datetime.fromisoformat(e["occurred_at"]),
            Jsonb(e["properties"]),
            received_at,
        )
        for batch in batches
        for e in batch
    ]


def copy_reference(conn, rows: list[tuple]) -> float:
    """The reference: the same rows in one raw COPY (one transaction) into people_event;
    returns the seconds it took. The rows are deleted (and vacuumed away) afterwards, so
    the table is as it was."""
    (before,) = conn.execute("SELECT coalesce(max(id), 0) FROM people_event").fetchone()
    copy_sql = (
        "COPY people_event (workspace_id, person_id, name, occurred_at, properties, received_at) "
        "FROM STDIN"
    )
    began = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row(row)
    elapsed = time.perf_counter() - began
    deleted = conn.execute("DELETE FROM people_event WHERE id > %s", [before]).rowcount
    if deleted != len(rows):
        raise SystemExit(f"the COPY reference stored {deleted} rows, expected {len(rows)}")
    conn.execute("VACUUM ANALYZE people_event")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4, help="client connections (threads)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    parser.add_argument("--threads", type=int, default=2, help="threads per gthread worker")
    parser.add_argument("--db", default="herald_bench_events")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    rng = random.Random(20261125)
    static_root = tempfile.TemporaryDirectory(prefix="herald-bench-static-")
    env = server_env(args.db, static_root.name)
    log(f"creating and migrating {args.db}")
    recreate_database(args.db)
    server = None
    try:
        manage(env, "migrate", "--noinput")
        slug = manage(env, "create_workspace", "Bench Events", "--owner", "bench@example.com")
        key = manage(env, "create_api_key", "--workspace", slug, "--name", "benchmark")
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            (workspace_id,) = conn.execute(
                "SELECT id FROM accounts_workspace WHERE slug = %s", [slug]
            ).fetchone()
            log(f"copying {args.people:,} people")
            with conn.transaction():
                external_ids = copy_people(conn, workspace_id, args.people, rng)
            conn.execute("ANALYZE")

            log(f"generating {args.batches} x {args.batch_size} events")
            warmup = make_batches(rng, external_ids, 2 * args.clients, args.batch_size)
            batches = make_batches(rng, external_ids, args.batches, args.batch_size)
            encode = json.JSONEncoder(separators=(",", ":")).encode
            warmup_bodies = [(encode({"events": b}).encode(), len(b)) for b in warmup]
            bodies = [(encode({"events": b}).encode(), len(b)) for b in batches]
            events = sum(n for _, n in bodies)
            log(f"{len(bodies)} bodies, {sum(len(b) for b, _ in bodies) / 1e6:.1f} MB of JSON")

            rows = copy_rows(conn, workspace_id, batches)
            copy_times = [copy_reference(conn, rows)]
            log(f"COPY before the API run: {len(rows):,} rows in {copy_times[0]:.2f} s")

            port = free_port()
            log(
                f"gunicorn {args.worker_class} workers={args.workers}"
                + (f" threads={args.threads}" if args.worker_class == "gthread" else "")
                + f" on 127.0.0.1:{port}, {args.clients} client connections, "
                + f"load average {os.getloadavg()[0]:.2f}"
            )
            server = start_server(args, env, port)
            send_all(port, key, warmup_bodies, args.clients)
            elapsed = send_all(port, key, bodies, args.clients)
            stop_server(server)
            server = None
            api_rate = events / elapsed
            log(f"API: {events:,} events in {elapsed:.2f} s")

            (stored,) = conn.execute(
                "SELECT count(*) FROM people_event WHERE workspace_id = %s", [workspace_id]
            ).fetchone()
            expected = events + sum(n for _, n in warmup_bodies)
            if stored != expected:
                raise SystemExit(f"the API stored {stored} events, expected {expected}")
            copy_times.append(copy_reference(conn, rows))
            log(f"COPY after the API run: {len(rows):,} rows in {copy_times[1]:.2f} s")
        copy_rate = len(rows) / min(copy_times)
        print(
            f"event_ingest events={events} api={api_rate:.0f}events/s copy={copy_rate:.0f}rows/s "
            f"ratio={100 * api_rate / copy_rate:.0f}% (targets >=10000/s, >=40%)",
            flush=True,
        )
    finally:
        if server is not None:
            stop_server(server)
        static_root.cleanup()
        if args.keep:
            log(f"kept the database {args.db}")
        else:
            drop_database(args.db)


if __name__ == "__main__":
    main()
