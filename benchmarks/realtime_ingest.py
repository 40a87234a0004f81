"""Real-time segments under sustained event ingest: latency from the 202 to the transition
row, and ingest throughput with evaluation on against the same run with it off.

Issue target (real-time segments): "sustained 1,000 events/s over /api/v1/events for 5
minutes: p99 from the 202 to the transition row <= 1 s; ingest throughput with
evaluation on >= 60% of the same run with evaluation off; segments_verify drift 0 at the
end" (on the segments benchmark data: 1M people, 10M events, 20 real-time segments).

Prints ONE line:
    realtime_ingest people=N segments=20 paced=1000events/s for Ss p50=..ms p99=..ms
    on=..events/s off=..events/s ratio=..% drift=0 sdk=..events/s lookup_p99=A/Bms (targets)

What it does, all from this one script (helpers of benchmarks/event_ingest.py):

1. (Re)creates the database herald_bench_realtime, migrates it, a workspace and an API
   key; COPYs --people people (default 100,000; the issue's scale is --people 1000000)
   and --history events per person over the last 30 days (default 2), tags 5% VIP.
2. Creates 20 real-time segments through the API: attributes (5 cities, plan, country),
   event windows (Purchase in the last 7 days, at least 3 Page Viewed in 30 days, App
   Opened in the last day, ...), tags, nested ones naming other segments, and "Pinged"
   (event Bench Ping at any time), the probe.
3. Starts the app (gunicorn, 2 gthread workers) and a real Celery worker (solo pool) on
   the benchmark's Redis database, after a VACUUM ANALYZE (the state autovacuum keeps a
   live database in); 5 batches warm the worker up, unmeasured.
4. Paced: one client sends a 1000-event batch every second for --seconds (default 60;
   the issue's 300). Each batch carries one Bench Ping of a new person; a poller thread
   (every 20 ms) sees each ping's "entered" transition row appear: latency = when it was
   seen - when the batch's 202 came back. p50 / p99 over the batches.
5. Throughput: --burst batches (default 100) as fast as 4 clients can send, with the
   worker evaluating (on), then the same with the worker stopped (off: the outbox rows
   wait); the worker is restarted and drains them before the check.
6. segment-analytics-python sends --sdk-events track calls (default 50,000) to /v1/batch
   with a write key (its own batching thread, 500 a request): events/s until all are
   stored. Then the p99 of 950 lookups (after 50 of warm-up) of
   /api/v1/people/{id}/segments and of an OFREP evaluation, one keep-alive client.
7. `manage.py segments_verify`: drift must be 0 for every segment (the script fails
   otherwise). Stops everything and drops the database (unless --keep).

Run:
    .venv/bin/python benchmarks/realtime_ingest.py
    .venv/bin/python benchmarks/realtime_ingest.py --people 1000000 --history 10 --seconds 300
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from event_ingest import (  # noqa: E402 - the sibling benchmark's helpers
    EVENT_KINDS,
    ROOT,
    copy_people,
    drop_database,
    free_port,
    log,
    make_batches,
    manage,
    recreate_database,
    send_all,
    server_env,
    start_server,
    stop_server,
)

PING = "Bench Ping"
CITIES = ["London", "Paris", "Berlin", "Madrid", "Rome"]


def segments_spec() -> list[tuple[str, dict]]:
    """The 20 real-time segments (the last ones name earlier ones by name, resolved to
    ids when created)."""
    within = lambda n, unit="days": {"op": "within_last", "amount": n, "unit": unit}  # noqa: E731
    spec = [(f"In {city}", {"attribute": "city", "op": "is", "value": city}) for city in CITIES]
    spec += [
        ("Pro plan", {"attribute": "plan", "op": "is", "value": "pro"}),
        ("Team plan", {"attribute": "plan", "op": "is", "value": "team"}),
        ("VIP", {"tag": "VIP", "op": "has"}),
        ("Not VIP", {"tag": "VIP", "op": "has_not"}),
        ("Recent buyers", {"event": "Purchase", "time": within(7)}),
        (
            "Engaged readers",
            {"event": "Page Viewed", "count": {"op": "gte", "value": 3}, "time": within(30)},
        ),  # fmt: skip
        ("Opened the app today", {"event": "App Opened", "time": within(1)}),
        ("Searchers", {"event": "Search", "count": {"op": "gte", "value": 2}}),
        (
            "Cart, no purchase",
            {
                "all": [
                    {"event": "Added To Cart", "time": within(14)},
                    {"not": {"event": "Purchase", "time": within(14)}},
                ]
            },
        ),  # fmt: skip
        ("Email clickers", {"event": "Email Clicked", "time": within(30)}),
        (PING, {"event": PING}),
    ]
    nested = [
        ("London buyers", ["In London", "Recent buyers"]),
        ("Pro VIP", ["Pro plan", "VIP"]),
        ("Engaged in Paris", ["In Paris", "Engaged readers"]),
        ("VIP buyers", ["VIP", "Recent buyers"]),
    ]
    return spec, nested


def api(port, key, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
    return json.loads(data) if data else None


def copy_history(conn, workspace_id: int, per_person: int, rng) -> int:
    """`per_person` events of each person over the last 30 days, in one COPY, and the
    event catalogue; returns the number of rows."""
    rows = conn.execute("SELECT id FROM people_person WHERE workspace_id = %s", [workspace_id])
    ids = [r[0] for r in rows.fetchall()]
    names = [k[0] for k in EVENT_KINDS]
    weights = [k[1] for k in EVENT_KINDS]
    now = datetime.now(UTC)
    n = 0
    sql = "COPY people_event (workspace_id, person_id, name, occurred_at, properties, received_at) FROM STDIN"  # noqa: E501
    with conn.transaction(), conn.cursor() as cur, cur.copy(sql) as copy:
        for pk in ids:
            for name in rng.choices(names, weights, k=per_person):
                at = now - timedelta(seconds=rng.randint(0, 30 * 86400))
                copy.write_row((workspace_id, pk, name, at, Jsonb({}), now))
                n += 1
    conn.execute(
        "INSERT INTO people_eventtype (workspace_id, name, first_seen, last_seen, count) "
        "SELECT %s, n, now(), now(), 0 FROM unnest(%s::text[]) n ON CONFLICT DO NOTHING",
        [workspace_id, [*names, PING]],
    )
    return n


def tag_vip(conn, workspace_id: int) -> None:
    conn.execute(
        "INSERT INTO people_tag (workspace_id, name, created_at) VALUES (%s, 'VIP', now())",
        [workspace_id],
    )
    conn.execute(
        "INSERT INTO people_persontag (workspace_id, person_id, tag_id, source, created_at) "
        "SELECT p.workspace_id, p.id, t.id, 'import', now() FROM people_person p "
        "JOIN people_tag t ON t.workspace_id = p.workspace_id AND t.name = 'VIP' "
        "WHERE p.workspace_id = %s AND p.id %% 20 = 0",
        [workspace_id],
    )


def start_worker(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "-Q", "default,segments", "-n", f"bench-{os.getpid()}@%h", "--loglevel", "WARNING",
         "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip


def stop_worker(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def pending(conn) -> int:
    return conn.execute(
        "SELECT count(*) FROM people_personchange WHERE processed_at IS NULL"
    ).fetchone()[0]


def paced(port, key, conn, segment_id: int, batches: list[list[dict]], rate: float):
    """Sends one batch per 1/rate seconds with a Bench Ping of a new person in each;
    returns the latencies (s) from each batch's 202 to its ping's transition being seen."""
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def poll():
        with psycopg.connect(conn.info.dsn, autocommit=True) as watch:
            last = 0
            while not done.is_set() or len(seen) < len(answered):
                rows = watch.execute(
                    "SELECT t.id, p.external_id FROM segments_segmenttransition t "
                    "JOIN people_person p ON p.id = t.person_id "
                    "WHERE t.segment_id = %s AND t.id > %s AND t.kind = 'entered'",
                    [segment_id, last],
                ).fetchall()
                now = time.perf_counter()
                for pk, external_id in rows:
                    last = max(last, pk)
                    seen.setdefault(external_id, now)
                if done.is_set() and time.perf_counter() - done_at[0] > 30:
                    return  # what is not seen 30 s after the last batch counts as lost
                time.sleep(0.02)

    done_at = [0.0]
    watcher = threading.Thread(target=poll)
    watcher.start()
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    began = time.perf_counter()
    for i, batch in enumerate(batches):
        due = began + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        ping = f"ping-{i:06d}"
        body = json.dumps({"events": [*batch[:-1], {"person": ping, "name": PING}]})
        client.request("POST", "/api/v1/events", body=body, headers=headers)
        response = client.getresponse()
        data = response.read()
        if response.status != 202:
            raise SystemExit(f"HTTP {response.status}: {data[:300]!r}")
        answered[ping] = time.perf_counter()
    client.close()
    done_at[0] = time.perf_counter()
    done.set()
    watcher.join()
    lost = [p for p in answered if p not in seen]
    if lost:
        raise SystemExit(f"{len(lost)} pings never entered the segment (first {lost[0]})")
    return [seen[p] - answered[p] for p in answered], time.perf_counter() - began


def drain(conn, limit: float = 900) -> None:
    began = time.monotonic()
    while pending(conn) and time.monotonic() - began < limit:
        time.sleep(0.5)


def segment_sdk(port, write_key, external_ids, n: int, conn) -> float:
    """`n` track calls through segment-analytics-python (its own batching thread, 500
    messages a request) to /v1/batch; events/s from the first call to the last stored."""
    from segment.analytics import Client

    errors = []
    client = Client(
        write_key, host=f"http://127.0.0.1:{port}", upload_size=500, max_queue_size=n + 1,
        on_error=lambda e, batch: errors.append(e), gzip=False,
    )  # fmt: skip
    rng = random.Random(7)
    began = time.perf_counter()
    for i in range(n):
        client.track(rng.choice(external_ids), "SDK Event", {"i": i, "plan": "pro"})
    client.flush()
    elapsed = time.perf_counter() - began
    client.shutdown()
    if errors:
        raise SystemExit(f"segment-analytics-python: {errors[0]}")
    (stored,) = conn.execute(
        "SELECT count(*) FROM people_event WHERE name = 'SDK Event'"
    ).fetchone()
    if stored != n:
        raise SystemExit(f"/v1/batch stored {stored} of {n} SDK events")
    return n / elapsed


def lookup_latencies(port, key, people: list[str], segment_id: int) -> dict[str, float]:
    """p99 (ms) of GET /api/v1/people/{id}/segments and of an OFREP evaluation, one
    keep-alive client, after a warm-up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    out = {}
    for name, call in (
        ("segments", lambda p: ("GET", f"/api/v1/people/{p}/segments", None)),
        (
            "ofrep",
            lambda p: (
                "POST",
                f"/ofrep/v1/evaluate/flags/segment-{segment_id}",
                json.dumps({"context": {"targetingKey": p}}),
            ),
        ),  # fmt: skip
    ):
        times = []
        for i, person in enumerate(people):
            method, path, body = call(person)
            began = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{path}: HTTP {response.status}")
            if i >= 50:  # warm-up
                times.append(1000 * (time.perf_counter() - began))
        times.sort()
        out[name] = times[int(0.99 * len(times))]
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=2, help="past events per person")
    parser.add_argument("--seconds", type=int, default=60, help="paced phase, 1 batch/s")
    parser.add_argument("--rate", type=float, default=1.0, help="batches per second (paced)")
    parser.add_argument("--burst", type=int, default=100, help="batches per throughput run")
    parser.add_argument("--sdk-events", type=int, default=50_000, help="through /v1/batch")
    parser.add_argument("--db", default="herald_bench_realtime")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.workers, args.worker_class, args.threads = 2, "gthread", 2

    rng = random.Random(20261202)
    static_root = tempfile.TemporaryDirectory(prefix="herald-bench-static-")
    env = server_env(args.db, static_root.name)
    log(f"creating and migrating {args.db}")
    recreate_database(args.db)
    server = worker = None
    try:
        manage(env, "migrate", "--noinput")
        slug = manage(env, "create_workspace", "Bench Realtime", "--owner", "bench@example.com")
        key = manage(env, "create_api_key", "--workspace", slug, "--name", "benchmark")
        write_key = manage(
            env, "create_api_key", "--workspace", slug, "--name", "site", "--kind", "write"
        )
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            (workspace_id,) = conn.execute(
                "SELECT id FROM accounts_workspace WHERE slug = %s", [slug]
            ).fetchone()
            log(f"copying {args.people:,} people and {args.history} events each")
            with conn.transaction():
                external_ids = copy_people(conn, workspace_id, args.people, rng)
            history = copy_history(conn, workspace_id, args.history, rng)
            conn.execute(
                "INSERT INTO people_attributedefinition "
                "(workspace_id, key, label, type, inferred, created_at, updated_at) "
                "VALUES (%s, 'plan', 'Plan', 'string', true, now(), now())",
                [workspace_id],
            )
            tag_vip(conn, workspace_id)
            conn.execute("ANALYZE")
            log(f"{history:,} past events")

            port = free_port()
            server = start_server(args, env, port)
            spec, nested = segments_spec()
            ids = {}
            began = time.perf_counter()
            for name, rules in spec:
                body = {"name": name, "kind": "realtime", "rules": rules}
                ids[name] = api(port, key, "POST", "/api/v1/segments", body)["id"]
            for name, parts in nested:
                rules = {"all": [{"segment": ids[p], "op": "in"} for p in parts]}
                body = {"name": name, "kind": "realtime", "rules": rules}
                ids[name] = api(port, key, "POST", "/api/v1/segments", body)["id"]
            log(f"{len(ids)} real-time segments computed in {time.perf_counter() - began:.1f} s")
            # the setup's own changes (people created by COPY record none) are not measured
            conn.execute("UPDATE people_personchange SET processed_at = now()")
            # the steady state of a live database, where autovacuum has been by: statistics
            # of the memberships just computed, and visibility maps for index-only scans
            conn.execute("VACUUM ANALYZE")
            worker = start_worker(env)
            time.sleep(3)
            encode = json.JSONEncoder(separators=(",", ":")).encode
            # warm-up, as for the lookups: a fresh worker's first evaluations connect and
            # fill caches (the first batch took 1.0 s, the next ones 0.3-0.5 s)
            warm = make_batches(rng, external_ids, 5, 1000)
            send_all(port, key, [(encode({"events": b}).encode(), len(b)) for b in warm], 1)
            drain(conn)

            paced_batches = make_batches(rng, external_ids, args.seconds, 1000)
            log(f"paced: {args.rate:g} batch of 1000 events per second for {len(paced_batches)} s")
            latencies, elapsed = paced(port, key, conn, ids[PING], paced_batches, args.rate)
            slowest = sorted(range(len(latencies)), key=lambda i: -latencies[i])[:5]
            log("paced: slowest batches " + ", ".join(
                f"#{i} {1000 * latencies[i]:.0f} ms" for i in slowest
            ))  # fmt: skip
            latencies.sort()
            p50 = 1000 * statistics.median(latencies)
            p99 = 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            paced_rate = 1000 * len(paced_batches) / elapsed
            log(f"paced: {paced_rate:.0f} events/s, latency p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
                f"max {1000 * latencies[-1]:.0f} ms")  # fmt: skip

            burst = make_batches(rng, external_ids, args.burst, 1000)
            bodies = [(encode({"events": b}).encode(), len(b)) for b in burst]
            on = 1000 * args.burst / send_all(port, key, bodies, 4)
            log(f"burst with evaluation on: {on:.0f} events/s")
            deadline = time.monotonic() + 600
            while pending(conn) and time.monotonic() < deadline:
                time.sleep(0.5)
            stop_worker(worker)
            worker = None
            burst = make_batches(rng, external_ids, args.burst, 1000)
            bodies = [(encode({"events": b}).encode(), len(b)) for b in burst]
            off = 1000 * args.burst / send_all(port, key, bodies, 4)
            waiting = pending(conn)
            log(f"burst with evaluation off: {off:.0f} events/s ({waiting} outbox rows wait)")
            worker = start_worker(env)
            began = time.monotonic()
            while pending(conn) and time.monotonic() - began < 900:
                time.sleep(0.5)
            log(f"the worker drained {waiting} outbox rows in {time.monotonic() - began:.1f} s")
            sdk_rate = segment_sdk(port, write_key, external_ids, args.sdk_events, conn)
            log(f"segment-analytics-python to /v1/batch: {sdk_rate:.0f} events/s")
            drain(conn)  # the lookups are timed on a quiet server, as an app sees it
            lookups = lookup_latencies(port, key, rng.sample(external_ids, 1000), ids["VIP"])
            log(
                "lookups p99: /people/{id}/segments "
                f"{lookups['segments']:.1f} ms, OFREP {lookups['ofrep']:.1f} ms"
            )
            stop_worker(worker)
            worker = None
            stop_server(server)
            server = None
        # the clock (beat, every 30 s in production) once, so that windows that closed
        # during the run are noticed before the check
        manage(env, "shell", "-c", "from segments.tasks import realtime_clock_task as t; t()")
        verify = subprocess.run(
            [sys.executable, "manage.py", "segments_verify"], cwd=ROOT, env=env,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        log(verify.stdout.strip())
        drifted = int(verify.stdout.strip().splitlines()[-1].split(", ")[1].split()[0])
        print(
            f"realtime_ingest people={args.people} segments={len(ids)} "
            f"paced={paced_rate:.0f}events/s for {elapsed:.0f}s p50={p50:.0f}ms p99={p99:.0f}ms "
            f"on={on:.0f}events/s off={off:.0f}events/s ratio={100 * on / off:.0f}% "
            f"drift={drifted} sdk={sdk_rate:.0f}events/s lookup_p99={lookups['segments']:.1f}/"
            f"{lookups['ofrep']:.1f}ms (targets p99<=1000ms, >=60%, drift 0, sdk>=5000/s, "
            "lookup<=10ms)",
            flush=True,
        )
        if drifted:
            raise SystemExit("segments_verify found drift")
    finally:
        stop_worker(worker)
        if server is not None:
            stop_server(server)
        static_root.cleanup()
        if args.keep:
            log(f"kept the database {args.db}")
        else:
            drop_database(args.db)


if __name__ == "__main__":
    main()
