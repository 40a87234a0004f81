"""Settings come from the environment; bad values stop start-up naming the variable; the
embedded mode (no DATABASE_URL, no REDIS_URL) migrates on SQLite and serves /healthz;
with DEBUG off `check --deploy` reports nothing."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "x" * 20 + "a-long-enough-and-varied-secret-key-0123456789!@#$%^"


def run_manage(args, env_overrides, timeout=120):
    dropped = {"DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embedded_mode_migrates_on_sqlite_and_serves_healthz(tmp_path):
    env = {"DEBUG": "1", "SECRET_KEY": None, "HERALD_VAR_DIR": str(tmp_path)}
    migrate = run_manage(["migrate", "--noinput", "-v0"], env, timeout=300)
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "herald.sqlite3").exists()

    port = _free_port()
    full_env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    }
    full_env.update({"DEBUG": "1", "HERALD_VAR_DIR": str(tmp_path), "ALLOWED_HOSTS": "127.0.0.1"})
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = (r.status, r.read().decode())
                    break
            except OSError:
                time.sleep(0.2)
        assert body is not None, "the embedded server did not answer"
        status, text = body
        assert status == 200
        assert '"database": "ok"' in text and '"broker": "ok"' in text
        assert (tmp_path / "broker" / "queue").is_dir()  # kombu's filesystem transport
    finally:
        server.terminate()
        server.wait(timeout=10)
