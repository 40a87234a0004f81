"""The public banner API under load (issue 16, Numbers): gunicorn serving Herald (its
production server, pyproject), load from a second local process (an asyncio HTTP/1.1
client written here), requests per second and p99 of
GET /public/v1/banners?key=<publishable>&placement=top,hero,sidebar&person=<external id>
against a static JSON view ({"banners": []}, a JsonResponse through the same middleware)
measured in the same run, warm cache.

Target: >= 50% of the static view's requests/s, p99 <= 50 ms.

Data: (re)creates the database herald_bench_banners (dropped at the end, --keep keeps it)
and uses Redis db 12 whatever the shell has; one workspace, 1,000,000 people (COPY), 5
static segments of about 20% of the people each (stored memberships, INSERT ... SELECT),
50 live banners over top / hero / sidebar (campaign_create + campaign_launch), each
including one segment, every 10th to Everyone; a publishable key. The person cycles
through a pool of 2,000 external ids, each requested once before the measurement (the
per-person state cached in Redis, the live banners and the key per process: see
campaigns/banners.py). Before the load, in this process, a warm
campaigns.banners.serve() call is checked to make 0 database queries (queries_warm).
Every measured response must be 200; those with at least one banner are counted.

    cd /work/main && flock /tmp/bench.lock .venv/bin/python benchmarks/banners_public.py \
        [--seconds 8] [--concurrency 16] [--workers 2] [--people 1000000] [--keep]

Prints one result line."""

import argparse
import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "herald_bench_banners"
PG_SERVER = "postgres://root@127.0.0.1:5432"
for _name, _value in {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-" + "k" * 50,
    "PROVIDER_SECRET_KEYS": "dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "STATIC_MANIFEST": "0",
    "LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_name, _value)
# its own database and Redis db, whatever the shell has (the database is dropped at the end)
os.environ.update(DATABASE_URL=f"{PG_SERVER}/{DB}", REDIS_URL="redis://127.0.0.1:6379/12")

PLACEMENTS = ["top", "hero", "sidebar"]
SEGMENTS = 5
BANNERS = 50
POOL = 2_000
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0

WSGI = textwrap.dedent(
    """
    import os
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.conf import settings
    django.setup()
    from django.http import JsonResponse
    from django.urls import path
    from config import urls as herald_urls

    def static_view(request):
        return JsonResponse({"banners": []})

    urlpatterns = [path("bench/static", static_view), *herald_urls.urlpatterns]
    settings.ROOT_URLCONF = __name__
    from django.core.wsgi import get_wsgi_application
    application = get_wsgi_application()
    """
)


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


def build(people: int):
    """The workspace, its people, segments, live banners and a publishable key."""
    from django.db import connection

    from accounts.audit import Actor
    from accounts.models import ApiKeyKind, Workspace
    from accounts.services import api_key_create
    from campaigns.services import campaign_create, campaign_launch
    from segments.models import Segment
    from segments.services import segment_create

    actor = Actor(system="benchmark")
    ws = Workspace.objects.create(name="Bench", slug="bench")
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY people_person (workspace_id, external_id, email, phone, first_name, last_name,"
            " gender, country, city, address, attributes, time_zone, created_at, updated_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(people):
                copy.write_row((ws.pk, f"p{i}", f"person{i}@example.com", "", "Ann", "Lee", "",
                                "UK", "London", "", "{}", "", "2026-01-01T00:00:00Z",
                                "2026-01-01T00:00:00Z"))  # fmt: skip
        cursor.execute("VACUUM ANALYZE people_person")
    segments = []
    for k in range(SEGMENTS):
        segment = segment_create(workspace=ws, name=f"Static {k}", kind="static", actor=actor)
        with connection.cursor() as cursor:
            # about 20% of the people each, independently (a person may be in several or none)
            cursor.execute(
                "INSERT INTO segments_segmentmember (workspace_id, segment_id, person_id, "
                "entered_at, exited_at) SELECT workspace_id, %s, id, now(), NULL "
                "FROM people_person WHERE workspace_id = %s "
                "AND abs(hashtext(id::text || ':' || %s::text)) %% 5 = 0",
                [segment.pk, ws.pk, k],
            )
            count = cursor.rowcount
        Segment.objects.unscoped().filter(pk=segment.pk).update(people_count=count)
        segments.append(segment)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE segments_segmentmember")
    for i in range(BANNERS):
        everyone = i % 10 == 9
        campaign = campaign_create(
            workspace=ws, name=f"B{i}", channel="banner",
            content={"placement": PLACEMENTS[i % len(PLACEMENTS)], "title": f"Banner {i}",
                     "body": "Body", "priority": 1 + i, "cta_label": "Go",
                     "cta_url": "https://shop.example.com/"},
            include=[] if everyone else [segments[i % SEGMENTS]], everyone=everyone,
            actor=actor,
        )  # fmt: skip
        campaign = campaign_launch(campaign=campaign, actor=actor)
        if campaign.status != "live":
            raise SystemExit(f"banner {i} is {campaign.status}, not live")
    _, raw = api_key_create(workspace=ws, name="bench", actor=actor, kind=ApiKeyKind.PUBLISHABLE)
    return ws, raw


async def _one(port: int, path: str, latencies: list, errors: list, counts: list) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux) "
            f"Firefox/133.0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status = await reader.readline()
        rest = await reader.read()
        writer.close()
        if status.split()[1] != b"200":
            errors.append(status)
        elif b'"banners": []' not in rest:
            counts[0] += 1  # at least one banner
            counts[1] += rest.count(b'"token"')
    except (OSError, IndexError) as e:
        errors.append(str(e).encode())
    latencies.append(time.perf_counter() - started)


async def _load(port: int, paths: list, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors: list = []
    counts = [0, 0]
    end = time.perf_counter() + seconds
    nxt = [0]

    def path_of():
        p = paths[nxt[0] % len(paths)]
        nxt[0] += 1
        return p

    async def worker():
        while time.perf_counter() < end:
            await _one(port, path_of(), latencies, errors, counts)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("inf")
    return {"n": len(latencies), "rps": len(latencies) / elapsed, "p99_ms": p99 * 1000,
            "errors": len(errors), "first_error": errors[0] if errors else b"",
            "with_banner": counts[0], "served": counts[1]}  # fmt: skip


async def _warm(port: int, paths: list, concurrency: int) -> dict:
    """Each path once (the people's state into Redis), a few at a time."""
    latencies, errors, counts = [], [], [0, 0]
    queue = list(paths)

    async def worker():
        while queue:
            await _one(port, queue.pop(), latencies, errors, counts)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"n": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else b"", "with_banner": counts[0]}  # fmt: skip


def _client(port, runs, seconds, concurrency, out):
    for name, paths in runs:
        out[name] = asyncio.run(_load(port, paths, seconds, concurrency))


def _client_warm(port, paths, concurrency, out):
    out["warm"] = asyncio.run(_warm(port, paths, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    log(f"database {DB}: creating and migrating")
    recreate_database()
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # db 12: the benchmark's own
    log(f"building {args.people:,} people, {SEGMENTS} segments, {BANNERS} banners")
    began = time.perf_counter()
    ws, raw = build(args.people)
    log(f"built in {time.perf_counter() - began:.1f} s")
    try:
        from config.celery import app

        app.control.purge()  # whatever the launches queued: no worker runs here
    except Exception as e:  # noqa: BLE001 - nothing queued is fine
        log(f"purge: {e}")

    from campaigns import banners

    step = max(1, args.people // POOL)
    pool = [f"p{i * step}" for i in range(POOL)]
    # in-process: a warm call makes no query
    banners.serve(ws.pk, PLACEMENTS, pool[0])
    with CaptureQueriesContext(connection) as ctx:
        warm_answer = banners.serve(ws.pk, PLACEMENTS, pool[0])
    queries_warm = len(ctx.captured_queries)
    if queries_warm:
        log("warm queries: " + "; ".join(q["sql"][:200] for q in ctx.captured_queries))
    log(f"in-process warm serve: {queries_warm} queries, {len(warm_answer)} banners")
    connection.close()

    base = f"/public/v1/banners?key={raw}&placement={','.join(PLACEMENTS)}&person="
    banner_paths = [base + e for e in pool]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="herald-bench-")
    Path(tmp, "bench_banners_wsgi.py").write_text(WSGI)
    env = {**os.environ, "PYTHONPATH": f"{tmp}:{ROOT}", "DEBUG": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bench_banners_wsgi:application", "-b",
         f"127.0.0.1:{port}", "-w", str(args.workers), "--log-level", "warning",
         "--backlog", "2048"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        manager = multiprocessing.Manager()
        # every person once (their state into Redis), then both views briefly (every worker)
        warm = manager.dict()
        p = multiprocessing.Process(target=_client_warm, args=(port, banner_paths, 8, warm))
        p.start()
        p.join()
        warm = dict(warm)["warm"]
        log(f"warm-up: {warm['n']} requests, {warm['errors']} errors "
            f"{warm['first_error']!r}, {warm['with_banner']} with a banner")  # fmt: skip
        runs = [("static", ["/bench/static"]), ("banners", banner_paths)]
        scratch = manager.dict()
        p = multiprocessing.Process(target=_client, args=(port, runs, 1.0, 4, scratch))
        p.start()
        p.join()
        out = manager.dict()
        load = os.getloadavg()[0]  # other work on the machine skews both views
        p = multiprocessing.Process(
            target=_client, args=(port, runs, args.seconds, args.concurrency, out)
        )
        p.start()
        p.join()
        results = dict(out)
    finally:
        server.terminate()
        server.wait(timeout=10)
    static, target = results["static"], results["banners"]
    ratio = target["rps"] / static["rps"]
    ok = ratio >= TARGET_RATIO and target["p99_ms"] <= TARGET_P99_MS and not target["errors"]
    for name, r in results.items():
        if r["errors"]:
            log(f"{name}: {r['errors']} errors, first {r['first_error']!r}")
    print(
        f"banners_public: static {static['rps']:.0f} req/s p99 {static['p99_ms']:.1f} ms; "
        f"/public/v1/banners {target['rps']:.0f} req/s ({ratio:.0%} of static, target "
        f">= {TARGET_RATIO:.0%}) p99 {target['p99_ms']:.1f} ms (target <= {TARGET_P99_MS:.0f}); "
        f"{target['n']} requests, {target['with_banner']} with >= 1 banner "
        f"({target['served'] / max(target['n'], 1):.2f} banners each), errors "
        f"{static['errors'] + target['errors']}; queries_warm={queries_warm}; "
        f"{args.people} people, {BANNERS} live banners, {len(PLACEMENTS)} placements, "
        f"{POOL} people cycled; gunicorn -w {args.workers}, {args.concurrency} connections; "
        f"load average {load:.2f} at the start; "
        f"{'PASS' if ok and not queries_warm else 'FAIL'}"
    )
    if not args.keep:
        drop_database()


if __name__ == "__main__":
    main()
