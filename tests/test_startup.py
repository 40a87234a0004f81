"""Settings come from the environment; bad values stop start-up naming the variable; with
DEBUG off `check --deploy` reports nothing. (The embedded servers: tests/test_launch.py.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "x" * 20 + "a-long-enough-and-varied-secret-key-0123456789!@#$%^"


def run_manage(args, env_overrides, timeout=120):
    dropped = {"DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"SECRET_KEY": GOOD_SECRET, "DEBUG": "0", "ALLOWED_HOSTS": "localhost"})
    env.update(env_overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "mysql://root@localhost/herald", "DATABASE_URL must be a postgres://"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379' is not a redis:// URL"),
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE='Mars/Olympus' is not a known time zone"),
        ("EMAIL_PORT", "twenty-five", "EMAIL_PORT='twenty-five' is not a whole number"),
        ("SECRET_KEY", "short", "SECRET_KEY is too short"),
        ("SECRET_KEY", None, "SECRET_KEY is not set"),
        ("PROVIDER_SECRET_KEYS", None, "PROVIDER_SECRET_KEYS is not set"),
        ("PROVIDER_SECRET_KEYS", "not-a-key", "each key must be a Fernet key"),
        ("ALLOWED_HOSTS", "", "ALLOWED_HOSTS is empty"),
        (
            "AUDIENCE_IMPORT_RETENTION_DAYS",
            "2w",
            "AUDIENCE_IMPORT_RETENTION_DAYS='2w' is not a whole number",
        ),
        (
            "AUDIENCE_IMPORT_RETENTION_DAYS",
            "0",
            "AUDIENCE_IMPORT_RETENTION_DAYS must be at least 1",
        ),
        ("API_RATE_LIMIT", "lots", "API_RATE_LIMIT='lots' is not a rate"),
        ("API_RATE_LIMIT", "0/m", "API_RATE_LIMIT='0/m' is not a rate"),
        ("API_AUTH_FAILURE_LIMIT", "30/fortnight", "API_AUTH_FAILURE_LIMIT='30/fortnight'"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must be 0 or more"),
        ("TRUSTED_PROXY_COUNT", "one", "TRUSTED_PROXY_COUNT='one' is not a whole number"),
        ("AXES_ACCOUNT_FAILURE_LIMIT", "2", "AXES_ACCOUNT_FAILURE_LIMIT must be larger"),
        ("API_KEY_HASH_KEYS", "short", "API_KEY_HASH_KEYS: every key needs at least 32"),
        (
            "API_KEY_HASH_KEYS",
            f"{'k' * 40},{'k' * 40}",
            "API_KEY_HASH_KEYS lists the same key twice",
        ),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_it(variable, value, message, tmp_path):
    result = run_manage(["check"], {variable: value, "HERALD_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert message in result.stderr


def test_check_deploy_reports_nothing_with_debug_off(tmp_path):
    result = run_manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "DATABASE_URL": "postgres://root@127.0.0.1:5432/herald",
            "SECURE_SSL_REDIRECT": None,
            "SESSION_COOKIE_SECURE": None,
            "HERALD_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_static_files_collect_with_hashed_names(tmp_path):
    """Production serves hashed static files; every vendored file must collect cleanly."""
    result = run_manage(
        ["collectstatic", "--noinput", "-v0"],
        {
            "STATIC_MANIFEST": "1",
            "HERALD_VAR_DIR": str(tmp_path),
            "STATIC_ROOT": str(tmp_path / "s"),
        },
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s" / "staticfiles.json").exists()


def test_trusted_proxy_count_reads_the_client_address_through_that_many_proxies(tmp_path):
    """TRUSTED_PROXY_COUNT=1: the address the proxy appended to X-Forwarded-For; a forged
    address before it is ignored. Unset: REMOTE_ADDR, whatever the header says."""
    script = (
        "from django.test import RequestFactory; from axes.helpers import get_client_ip_address;"
        "r = RequestFactory().get('/', REMOTE_ADDR='10.0.0.2',"
        " HTTP_X_FORWARDED_FOR='203.0.113.9, 198.51.100.1');"
        "print(get_client_ip_address(r))"
    )
    shell = ["shell", "--no-imports", "-c", script]
    behind_one = run_manage(shell, {"TRUSTED_PROXY_COUNT": "1", "HERALD_VAR_DIR": str(tmp_path)})
    assert behind_one.returncode == 0, behind_one.stderr
    assert behind_one.stdout.strip() == "198.51.100.1"
    direct = run_manage(shell, {"TRUSTED_PROXY_COUNT": None, "HERALD_VAR_DIR": str(tmp_path)})
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.strip() == "10.0.0.2"
