"""Person upserts over POST /api/v1/people/batch, as a black box, against a raw COPY of
the same rows.

Issue target (real-time segments): "person upserts: POST /api/v1/people/batch (1,000
people a request, half new, 5 custom attributes) ... >= 10,000 people/s with evaluation
on. ... Print the ratio to a COPY of the same rows."

Prints ONE line:
    people_upsert people=N api=..people/s copy=..rows/s ratio=..% (target >=10000/s)

What it does:

1. (Re)creates the database herald_bench_upsert, migrates it, a workspace, an API key,
   --existing people by COPY (default 100,000) and 3 real-time segments on the custom
   attributes (so evaluation has work: a worker is not started, the outbox rows are
   written in each request as they are with evaluation on; their evaluation is the
   realtime_ingest benchmark's business).
2. Pre-builds --batches bodies (default 100) of 1,000 people each: half of them existing
   (random), half new, each with email, first and last name, city and 5 custom
   attributes (plan, score, vip, signup date, interests).
3. Starts gunicorn (2 gthread workers x 2 threads) and sends the bodies from 4 client
   connections (event_ingest.send_all's way); every answer must be 200 with no errors,
   created + updated adding up.
4. copy: the same rows (as new people) in one raw COPY into people_person; the rows are
   deleted afterwards.

Run:
    .venv/bin/python benchmarks/people_upsert.py
"""

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from event_ingest import (  # noqa: E402 - the sibling benchmark's helpers
    CITIES,
    FIRST_NAMES,
    LAST_NAMES,
    copy_people,
    drop_database,
    free_port,
    log,
    manage,
    recreate_database,
    send_all,
    server_env,
    start_server,
    stop_server,
)


def person(rng, external_id: str, i: int) -> dict:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "external_id": external_id,
        # ASCII: an accent in the local part is refused (people.normalize, SMTPUTF8 aside)
        "email": f"{first}.{last}.{i}@example.org".lower().encode("ascii", "ignore").decode(),
        "first_name": first,
        "last_name": last,
        "city": rng.choice(CITIES)[0],
        "attributes": {
            "plan": rng.choice(["free", "pro", "team"]),
            "score": rng.randint(0, 1000),
            "vip": rng.random() < 0.05,
            "signup": (datetime(2024, 1, 1) + timedelta(days=rng.randint(0, 700)))
            .date()
            .isoformat(),
            "interests": rng.sample(["shoes", "bags", "hats", "coats", "socks"], 2),
        },
    }


def send(port: int, key: str, bodies: list[bytes], clients: int) -> tuple[float, int, int]:
    """The bodies to /api/v1/people/batch (event_ingest.send_all's clients): (seconds,
    created, updated); every answer must be a 200 without errors."""
    totals = [0, 0]
    lock = threading.Lock()

    def check(status, answer, expected):
        if status != 200 or answer["errors"]:
            return f"HTTP {status}"
        with lock:
            totals[0] += answer["created"]
            totals[1] += answer["updated"]
        return None

    elapsed = send_all(
        port, key, [(b, 0) for b in bodies], clients, path="/api/v1/people/batch", check=check
    )
    return elapsed, totals[0], totals[1]


def copy_reference(conn, workspace_id: int, people: list[dict]) -> float:
    now = datetime.now(UTC)
    columns = (
        "workspace_id, external_id, email, first_name, last_name, city, attributes, created_at, "
        "updated_at, phone, gender, country, address"
    )
    began = time.perf_counter()
    with (
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(f"COPY people_person ({columns}) FROM STDIN") as copy,
    ):
        for i, p in enumerate(people):
            row = (workspace_id, f"copy-{i}", p["email"], p["first_name"])
            rest = (p["last_name"], p["city"], Jsonb(p["attributes"]), now, now, "", "", "", "")
            copy.write_row((*row, *rest))
    elapsed = time.perf_counter() - began
    conn.execute("DELETE FROM people_person WHERE external_id LIKE 'copy-%%'")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--existing", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--db", default="herald_bench_upsert")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.workers, args.worker_class, args.threads = 2, "gthread", 2
    rng = random.Random(20261202)
    static_root = tempfile.TemporaryDirectory(prefix="herald-bench-static-")
    env = server_env(args.db, static_root.name)
    log(f"creating and migrating {args.db}")
    recreate_database(args.db)
    server = None
    try:
        manage(env, "migrate", "--noinput")
        slug = manage(env, "create_workspace", "Bench Upsert", "--owner", "bench@example.com")
        key = manage(env, "create_api_key", "--workspace", slug, "--name", "benchmark")
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            (workspace_id,) = conn.execute(
                "SELECT id FROM accounts_workspace WHERE slug = %s", [slug]
            ).fetchone()
            with conn.transaction():
                existing = copy_people(conn, workspace_id, args.existing, rng)
            conn.execute("ANALYZE")
            port = free_port()
            server = start_server(args, env, port)
            # the catalogue and 3 real-time segments naming the attributes
            warm = [person(rng, f"warm-{i}", i) for i in range(10)]
            encode = json.JSONEncoder(separators=(",", ":")).encode
            send(port, key, [encode({"people": warm}).encode()], 1)
            for name, rules in [
                ("Pro", {"attribute": "plan", "op": "is", "value": "pro"}),
                ("High score", {"attribute": "score", "op": "gte", "value": 900}),
                ("VIP flag", {"attribute": "vip", "op": "is", "value": True}),
            ]:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                body = json.dumps({"name": name, "kind": "realtime", "rules": rules})
                auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                c.request("POST", "/api/v1/segments", body, auth)
                response = c.getresponse()
                if response.status != 201:
                    raise SystemExit(f"segment: HTTP {response.status} {response.read()[:200]!r}")
                response.read()
                c.close()
            bodies, all_people, n = [], [], 0
            # each existing person once: a batch naming one twice counts it once
            updates = iter(rng.sample(existing, min(len(existing), 500 * args.batches)))
            for b in range(args.batches):
                batch = []
                for i in range(1000):
                    n += 1
                    if i % 2:
                        batch.append(person(rng, next(updates), n))
                    else:
                        batch.append(person(rng, f"new-{b:04d}-{i:04d}", n))
                bodies.append(encode({"people": batch}).encode())
                all_people += batch
            log(f"{len(bodies)} bodies of 1000 people ({sum(map(len, bodies)) / 1e6:.1f} MB)")
            elapsed, created, updated = send(port, key, bodies, args.clients)
            stop_server(server)
            server = None
            total = 1000 * args.batches
            rate = total / elapsed
            log(f"API: {total:,} people ({created:,} new, {updated:,} updated) in {elapsed:.2f} s")
            copy_s = copy_reference(conn, workspace_id, all_people)
            copy_rate = total / copy_s
            log(f"COPY: {total:,} rows in {copy_s:.2f} s")
        print(
            f"people_upsert people={total} api={rate:.0f}people/s copy={copy_rate:.0f}rows/s "
            f"ratio={100 * rate / copy_rate:.0f}% (target >=10000/s)",
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
