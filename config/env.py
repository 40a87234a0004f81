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
