"""Tracking endpoints under load (issue 15, Numbers): gunicorn serving Herald (its
production server, pyproject), load from a second local process (an asyncio HTTP/1.1
client written here), requests per second and p99 of GET /t/o/<token>.gif and
GET /t/c/<token> against a static view (a fixed 200, through the same middleware) measured
in the same run. Targets: >= 50% of the static view's requests/s, p99 <= 50 ms.

    . /tmp/env.sh && flock /tmp/bench.lock .venv/bin/python benchmarks/tracking.py \
        [--seconds 8] [--concurrency 16] [--workers 2]

Uses DATABASE_URL / REDIS_URL (the hits go to Redis; the flush is not part of the hot
path and runs after, to show they were all applied). Prints one result line."""

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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

WSGI = textwrap.dedent(
    """
    import os
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.conf import settings
    django.setup()
    from django.http import HttpResponse
    from django.urls import path
    from config import urls as herald_urls

    def static_view(request):
        return HttpResponse(b"ok", content_type="text/plain")

    urlpatterns = [path("bench/static", static_view), *herald_urls.urlpatterns]
    settings.ROOT_URLCONF = __name__
    from django.core.wsgi import get_wsgi_application
    application = get_wsgi_application()
    """
)


def _setup() -> tuple[str, str]:
    import django

    django.setup()
    from django.utils import timezone

    from campaigns import tracking
    from campaigns.models import Campaign, Delivery
    from campaigns.templating import clean_content
    from tests.factories import PersonFactory, WorkspaceFactory

    stamp = int(time.time())
    ws = WorkspaceFactory(name=f"Tracking bench {stamp}", slug=f"tracking-bench-{stamp}")
    content = clean_content(
        "email", {"subject": "Hi", "text": "Hi", "html": '<a href="https://example.com/">x</a>'}
    )
    campaign = Campaign.objects.create(
        workspace=ws, name="bench", channel="email", status="sent", content=content,
        launched_at=timezone.now(),
    )  # fmt: skip
    person = PersonFactory(workspace=ws, external_id="bench")
    delivery = Delivery.objects.create(
        workspace=ws, campaign=campaign, person=person, status="sent", sent_at=timezone.now()
    )
    tracking.email_html(campaign, content["html"], delivery.pk)  # stores the link
    open_path = tracking.open_url(campaign, delivery.pk).split("/t/", 1)[1]
    click_path = tracking.click_url(campaign, delivery.pk, 0).split("/t/", 1)[1]
    return f"/t/{open_path}", f"/t/{click_path}"


async def _one(port: int, path: str, latencies: list, errors: list) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux) "
            f"Firefox/133.0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status = await reader.readline()
        await reader.read()
        writer.close()
        if status.split()[1] not in (b"200", b"302"):
            errors.append(status)
    except OSError as e:
        errors.append(str(e).encode())
    latencies.append(time.perf_counter() - started)


async def _load(port: int, path: str, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors: list = []
    end = time.perf_counter() + seconds

    async def worker():
        while time.perf_counter() < end:
            await _one(port, path, latencies, errors)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("inf")
    return {"n": len(latencies), "rps": len(latencies) / elapsed, "p99_ms": p99 * 1000,
            "errors": len(errors)}  # fmt: skip


def _client(port, paths, seconds, concurrency, out):
    for name, path in paths:
        out[name] = asyncio.run(_load(port, path, seconds, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    open_path, click_path = _setup()
    import redis
    from django.conf import settings

    from campaigns import tracking

    r = redis.Redis.from_url(settings.REDIS_URL)
    before = r.llen(tracking.HITS)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="herald-bench-")
    Path(tmp, "bench_tracking_wsgi.py").write_text(WSGI)
    env = {**os.environ, "PYTHONPATH": f"{tmp}:{ROOT}", "DEBUG": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bench_tracking_wsgi:application", "-b",
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
        # warm up every worker (imports, the link cache)
        manager = multiprocessing.Manager()
        warm = manager.dict()
        paths = [("static", "/bench/static"), ("open", open_path), ("click", click_path)]
        p = multiprocessing.Process(target=_client, args=(port, paths, 1.0, 4, warm))
        p.start()
        p.join()
        out = manager.dict()
        p = multiprocessing.Process(
            target=_client, args=(port, paths, args.seconds, args.concurrency, out)
        )
        p.start()
        p.join()
        results = dict(out)
    finally:
        server.terminate()
        server.wait(timeout=10)
    queued = r.llen(tracking.HITS) - before
    applied = tracking.flush(hold=0)
    static = results["static"]["rps"]
    line = (
        f"tracking: static {static:.0f} req/s p99 {results['static']['p99_ms']:.1f} ms; "
        f"/t/o {results['open']['rps']:.0f} req/s ({results['open']['rps'] / static:.0%}) "
        f"p99 {results['open']['p99_ms']:.1f} ms; /t/c {results['click']['rps']:.0f} req/s "
        f"({results['click']['rps'] / static:.0%}) p99 {results['click']['p99_ms']:.1f} ms; "
        f"errors {sum(x['errors'] for x in results.values())}; hits queued {queued}, "
        f"flushed {applied}; gunicorn -w {args.workers}, {args.concurrency} connections"
    )
    print(line)


if __name__ == "__main__":
    main()
