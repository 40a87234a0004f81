"""Rate limits per provider account on real Redis: a token bucket shared by processes
(each reservation gets its own slot, none two at once), a throttled send waits rather
than being dropped, bad limits are form errors, and with Redis down nothing goes out
unthrottled."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.audit import Actor
from channels.models import SandboxMessage
from channels.providers import clean_provider, transport_for
from channels.ratelimit import take
from channels.services import provider_set
from channels.transports.base import OutboundMessage

RATE, BURST = 40.0, 4


def test_a_bucket_gives_its_burst_at_once_then_one_slot_per_token():
    key = f"herald:test:rate:{uuid.uuid4()}"
    assert [take(key, rate=10, burst=3) for _ in range(3)] == [0, 0, 0]
    waits = [take(key, rate=10, burst=3) for _ in range(3)]
    # reservations queue: the 4th waits ~0.1 s, the 5th ~0.2 s, the 6th ~0.3 s
    assert waits == pytest.approx([0.1, 0.2, 0.3], abs=0.03)
    assert take(key, rate=10, burst=3, tokens=2) == pytest.approx(0.5, abs=0.03)


# a separate Python process (its own Redis connection), as another Celery worker is
_RESERVE = """
import json, sys, time
import django
django.setup()
from channels.ratelimit import take
key, count, rate, burst = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # all processes start reserving together
slots = []
for _ in range(count):
    wait = take(key, rate=rate, burst=burst)
    slots.append(time.time() + wait)  # when this reservation may send
print(json.dumps(slots))
"""


def test_processes_sharing_a_bucket_never_get_the_same_slot():
    key = f"herald:test:rate:{uuid.uuid4()}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "REDIS_URL": settings.REDIS_URL}  # fmt: skip
    command = [sys.executable, "-c", _RESERVE, key, "15", str(RATE), str(BURST)]
    workers = [
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=settings.BASE_DIR,
        )  # fmt: skip
        for _ in range(4)
    ]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [worker.stdout.read() for worker in workers]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0, 0, 0]
    slots = sorted(s for out in outputs for s in json.loads(out))
    assert len(slots) == 60
    # the bucket's promise: in any half second, at most the burst plus half a second of
    # refill is sent, whichever process reserved; and all 60 take their time
    most = max(sum(1 for t in slots if start <= t < start + 0.5) for start in slots)
    assert most <= BURST + RATE * 0.5 + 1
    assert slots[-1] - slots[0] >= (60 - BURST - 1) / RATE * 0.9


def test_a_throttled_provider_waits_and_sends_everything(db, workspace):
    provider = provider_set(
        workspace=workspace, channel="sms", kind="sandbox",
        settings={"rate_per_second": 20, "burst": 5}, secrets={}, actor=Actor.of_system("t"),
    )  # fmt: skip
    assert provider.settings == {"rate_per_second": 20.0, "burst": 5}
    messages = [OutboundMessage("sms", f"+1415555{n:04d}", body="hi") for n in range(15)]
    started = time.monotonic()
    with transport_for(provider) as transport:
        outcomes = transport.send_many(messages)
    elapsed = time.monotonic() - started
    assert all(o.provider_message_id for o in outcomes)
    assert SandboxMessage.objects.for_workspace(workspace).count() == 15
    assert elapsed >= (15 - 5) / 20 * 0.9  # 10 messages past the burst at 20 a second


@pytest.mark.parametrize(
    ("given", "field"),
    [({"rate_per_second": "fast"}, "rate_per_second"), ({"rate_per_second": 0}, "rate_per_second"),
     ({"burst": 3}, "burst"), ({"rate_per_second": 5, "burst": 0}, "burst"),
     ({"rate_per_second": 5, "burst": 1.5}, "burst")],
)  # fmt: skip
def test_bad_limits_name_their_field(given, field):
    with pytest.raises(ValidationError) as caught:
        clean_provider(channel="sms", kind="sandbox", settings=given, secrets={})
    assert field in caught.value.message_dict


def test_with_redis_down_nothing_is_sent_unthrottled(db, workspace, settings):
    provider = provider_set(
        workspace=workspace, channel="email", kind="sandbox",
        settings={"rate_per_second": "5"}, secrets={}, actor=Actor.of_system("t"),
    )  # fmt: skip
    assert provider.settings == {"rate_per_second": 5.0, "burst": 5}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with transport_for(provider) as transport:
        outcomes = transport.send_many([OutboundMessage("email", "a@example.com", text="x")])
    assert outcomes[0].kind == "temporary" and "Redis" in outcomes[0].message
    assert not SandboxMessage.objects.exists()
