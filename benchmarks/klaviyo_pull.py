"""A Klaviyo pull through channels.klaviyo.KlaviyoClient against a local fake of Klaviyo
(tests/channels/klaviyo_fake.py, in another process) enforcing Klaviyo's real limits for
these endpoints: 75 requests in any second (burst), 750 in any minute (steady).

Issue target (Klaviyo sync): "respecting its rate limits (75/s burst, 750/min steady; on
429 wait for Retry-After and continue)"; the benchmark's target: the pull runs at >= 90%
of what those limits allow, with no 429.

Prints ONE line:
    klaviyo_pull profiles=N requests=R elapsed=..s rate=..req/min ceiling=750/min ratio=..%
    (target >=90%)

What it does: starts the fake with --segments (default 5) segments of --per-segment
(default 20,000) profiles each, no profile in two segments (100,000 distinct profiles),
then times one client reading /api/segments and every segment's profiles, 100 a page
(about 1,000 requests). Every profile must come exactly once and the fake must have
answered no 429 (the line is printed either way; the exit status says which).

ratio = the least time the limits allow for R requests / elapsed. That least time is the
start of the last request when every request goes as early as both windows let it (answers
taking no time): 750 in the first 10 s (75 a second), then nothing until the first of them
is a minute old, and so on; for 1,001 requests, 63 s. (Counting only 75 at once and then
750 a minute evenly, 12.5 a second, would give 74 s and a ratio over 100%: Klaviyo's
windows are fixed, not a refilling bucket, so a client may spend a minute's 750 in ten
seconds, and rate= can exceed 750/min in a run this short.)

The limits make it take about a minute: run it once, with nothing else busy.
    .venv/bin/python benchmarks/klaviyo_pull.py
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
# settings need them; the benchmark never connects to either
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
# the fake listens on 127.0.0.1: a private host, allowed as for tests
os.environ.setdefault("ALLOW_PRIVATE_PROVIDER_HOSTS", "1")

BURST, PER_MINUTE = 75, 750
TARGET = 90  # %


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def least_time(requests: int, *, burst: int = BURST, per_minute: int = PER_MINUTE) -> float:
    """The earliest start of the last of `requests` with at most `burst` in any 1 s and
    `per_minute` in any 60 s, every request going as soon as both windows allow."""
    starts: list[float] = []
    for i in range(requests):
        t = starts[-1] if starts else 0.0
        if i >= burst:
            t = max(t, starts[i - burst] + 1.0)
        if i >= per_minute:
            t = max(t, starts[i - per_minute] + 60.0)
        starts.append(t)
    return starts[-1] if starts else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=5)
    parser.add_argument("--per-segment", type=int, default=20_000)
    args = parser.parse_args()

    import django

    django.setup()
    from channels.klaviyo import KlaviyoClient
    from tests.channels.klaviyo_fake import API_KEY

    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.channels.klaviyo_fake", "--port", str(port),
         "--segments", str(args.segments), "--per-segment", str(args.per_segment),
         "--burst", str(BURST), "--per-minute", str(PER_MINUTE)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if fake.stdout.readline().strip() != "ready":
            raise SystemExit("the Klaviyo fake did not start")
        seen: set[str] = set()
        pulled = 0
        began = time.perf_counter()
        with KlaviyoClient(API_KEY, base_url=f"http://127.0.0.1:{port}") as klaviyo:
            for segment in list(klaviyo.segments()):
                for profile in klaviyo.profiles("segment", segment.id):
                    seen.add(profile.id)
                    pulled += 1
        elapsed = time.perf_counter() - began
        fake.stdin.write("?\n")
        fake.stdin.flush()
        stats = json.loads(fake.stdout.readline())
    finally:
        fake.kill()
        fake.wait()
    requests = klaviyo.requests_made
    ratio = 100 * least_time(requests) / elapsed
    print(
        f"klaviyo_pull profiles={pulled} requests={requests} elapsed={elapsed:.1f}s "
        f"rate={60 * requests / elapsed:.0f}req/min ceiling={PER_MINUTE}/min "
        f"ratio={ratio:.0f}% (target >={TARGET}%)"
    )
    expected = args.segments * args.per_segment
    if pulled != expected or len(seen) != expected:
        raise SystemExit(f"pulled {pulled} profiles, {len(seen)} distinct, of {expected}")
    if stats["throttled"] or klaviyo.rate_limited:
        raise SystemExit(f"the fake answered {stats['throttled']} requests with 429")
    if stats["requests"] != requests:
        raise SystemExit(f"the fake counted {stats['requests']} requests, the client {requests}")


if __name__ == "__main__":
    main()
