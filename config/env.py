"""Reading settings from the environment.

Every helper raises ImproperlyConfigured naming the variable and what was wrong, so a
malformed value stops start-up with a message a person can act on.
"""

import os
import zoneinfo
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_time_zone(name: str, default: str) -> str:
    value = env_str(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a known time zone (e.g. 'UTC' or 'Europe/Paris')."
        ) from None
    return value


def env_database(name: str, fallback_url: str | None = None) -> dict:
    """The database the URL in `name` names (or `fallback_url`, when it is unset)."""
    import dj_database_url

    raw = env_str(name) or fallback_url
    if not raw:
        raise ImproperlyConfigured(f"{name} is not set (postgres://user@host:5432/herald).")
    scheme = urlparse(raw).scheme
    if scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"{name} must be a postgres:// URL, got scheme {scheme!r}.")
    try:
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
    except ValueError as e:
        raise ImproperlyConfigured(f"{name} is malformed: {e}") from None
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} names no database (…/dbname at the end).")
    return config


def env_redis_url(name: str) -> str | None:
    raw = env_str(name)
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a redis:// URL (e.g. redis://127.0.0.1:6379/0)."
        )
    try:
        parsed.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} has a malformed port.") from None
    return raw


_RATE_PERIODS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
}  # fmt: skip


def parse_rate(value: str) -> tuple[int, int]:
    """'3000/m' as (3000, 60): a number of requests per second, minute, hour or day
    (`s`, `m`, `h`, `d`, or the words). Raises ValueError for anything else."""
    amount, _, period = value.strip().partition("/")
    seconds = _RATE_PERIODS.get(period.strip().lower())
    if not amount.strip().isdigit() or int(amount) < 1 or seconds is None:
        raise ValueError(f"{value!r} is not a rate")
    return int(amount), seconds


def env_rate(name: str, default: str) -> str:
    value = env_str(name, default)
    try:
        parse_rate(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: write requests per period, e.g. '3000/m' "
            "(periods s, m, h, d; at least 1 request)."
        ) from None
    return value


def trusted_proxy_settings(count: int) -> dict:
    """The django-axes / django-ipware settings that read the client address through
    `count` trusted reverse proxies (axes.helpers.get_client_ip_address, also used by the
    API's failed-key limit).

    0: REMOTE_ADDR only, so an X-Forwarded-For a client sends changes nothing. N > 0: each
    proxy appends the address it was reached from to X-Forwarded-For, so the client is the
    N-th address from the right; what a client wrote before that is ignored. ipware counts
    the proxies listed in the header after the client, and the nearest proxy is not listed
    (it is REMOTE_ADDR), hence N - 1. Not strict: a client that sends its own header (a
    corporate proxy does) makes the chain longer, which must not turn it into the proxy's
    address.
    """
    if count < 0:
        raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")
    if count == 0:
        return {
            "AXES_IPWARE_PROXY_COUNT": None,
            "AXES_IPWARE_META_PRECEDENCE_ORDER": ("REMOTE_ADDR",),
            "IPWARE_STRICT": False,
        }
    return {
        "AXES_IPWARE_PROXY_COUNT": count - 1,
        "AXES_IPWARE_META_PRECEDENCE_ORDER": ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"),
        "IPWARE_STRICT": False,
    }
