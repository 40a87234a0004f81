"""Rate limits per provider account: a token bucket in Redis shared by every worker, so
four Celery workers sending one campaign together stay within what the account allows
(Twilio's messages per second of a number, an ESP's plan, an SMTP relay's limit).

One Lua script takes the tokens atomically on Redis's own clock (workers' clocks do not
matter). It reserves: a batch that finds too few tokens takes them anyway (the balance
goes negative) and is told how long to wait, so concurrent callers queue in arrival
order and nobody polls. A throttled send waits; it is never dropped. The `limits`
library has fixed and moving windows, not a bucket with a burst and a refill rate, nor
reservations, hence the script."""

import math
import time
from collections.abc import Sequence
from functools import cache

import redis
from django.conf import settings

from channels.transports.base import (
    TEMPORARY,
    OutboundMessage,
    Outcome,
    Transport,
    TransportError,
)

# KEYS[1] the bucket; ARGV rate (tokens/s), burst, tokens wanted. Answers the seconds to
# wait (as a string: Lua numbers become integers on the way out) before using them.
_TAKE = """
local rate, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


@cache
def _script(url: str):
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return client.register_script(_TAKE)


class RateLimited(Exception):
    """The limiter could not be asked (Redis down): nothing is sent unthrottled."""


def take(key: str, *, rate: float, burst: int, tokens: int = 1) -> float:
    """Reserve `tokens` of the bucket `key` (refilled at `rate` per second up to `burst`):
    the seconds the caller must wait before using them (0: at once)."""
    if rate <= 0 or burst < 1 or tokens < 1:
        raise ValueError("a bucket needs a positive rate, a burst and tokens of at least 1")
    try:
        wait = _script(settings.REDIS_URL)(keys=[key], args=[rate, burst, tokens])
    except redis.RedisError as e:
        raise RateLimited(f"The rate limiter (Redis) is unavailable: {e}") from e
    return float(wait)


def bucket_key(provider_id: int) -> str:
    return f"herald:rate:provider:{provider_id}"


class Throttled(Transport):
    """A transport whose batches take their tokens first: a batch is split into chunks of
    at most `burst` messages, each sent when its tokens are due."""

    def __init__(self, inner: Transport, *, key: str, rate: float, burst: int, sleep=time.sleep):
        self.inner = inner
        self.channel = inner.channel
        self.key, self.rate, self.burst = key, rate, burst
        self._sleep = sleep

    def __getattr__(self, name):  # the inner transport's own attributes (status_callback...)
        return getattr(self.inner, name)

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(messages), self.burst):
            chunk = messages[start : start + self.burst]
            try:
                wait = take(self.key, rate=self.rate, burst=self.burst, tokens=len(chunk))
            except RateLimited as e:
                # the rest waits for a retry rather than going out unthrottled
                failed = TransportError(TEMPORARY, str(e))
                outcomes.extend(failed for _ in messages[start:])
                return outcomes
            if wait > 0:
                self._sleep(wait)
            outcomes.extend(self.inner.send_many(chunk))
        return outcomes

    def close(self) -> None:
        self.inner.close()


def default_burst(rate: float) -> int:
    """One second's worth, at least one message."""
    return max(1, math.ceil(rate))
