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
