"""`make run` and `make test`: start what Herald needs, then run it.

    python -m config.launch run            # the demo: web, worker and beat (honcho)
    python -m config.launch test [ARGS]    # pytest with ARGS on real servers

With no DATABASE_URL / REDIS_URL, `run` starts the embedded PostgreSQL and Valkey with
their data under HERALD_VAR_DIR (default var/), kept across runs, and stops them on Ctrl-C
after the processes that use them. `test` uses the servers the URLs name, else the ones
answering on 127.0.0.1:5432 / 6379 (HERALD_TEST_SERVICES=embedded skips that look), else
throwaway embedded ones. Problems are one line naming what to do, never a traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from config.embedded import (
    RUN_FILE,
    EmbeddedPostgres,
    EmbeddedRedis,
    ServiceError,
    check_database,
    check_redis,
    ensure_writable,
    running_info,
    wait_for,
)

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DATABASE_URL = "postgres://root@127.0.0.1:5432/herald"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"
CHROMIUM_DEFAULT = "/usr/bin/chromium"

DEMO_LOGINS = [
    ("owner@demo.herald", "owner of Acme Retail and Globex Mobile"),
    ("admin@demo.herald", "admin of Acme Retail"),
    ("marketer@demo.herald", "marketer in both"),
    ("ops@demo.herald", "ops in Acme Retail"),
    ("viewer@demo.herald", "viewer in both"),
]


def say(line: str = "") -> None:
    print(f"herald | {line}" if line else "herald |", flush=True)


def var_dir() -> Path:
    return Path(os.environ.get("HERALD_VAR_DIR") or BASE_DIR / "var").resolve()


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class Services(contextlib.ExitStack):
    """The database and broker a run uses: given by URL, or embedded ones we start (and
    stop when the stack closes, last started first stopped)."""

    def __init__(self):
        super().__init__()
        self.env: dict[str, str] = {}
        self.lines: list[str] = []

    def database(self, *, data_dir: Path, throwaway: bool, probe_local: bool) -> None:
        url = os.environ.get("DATABASE_URL")
        # `make test` creates its own database on the server: only the server must answer.
        check = functools.partial(check_database, server_only=throwaway)
        if url:
            check(url)
            self.lines.append("database  PostgreSQL from DATABASE_URL")
        elif probe_local and _local_answers(LOCAL_DATABASE_URL, check):
            url = LOCAL_DATABASE_URL
            self.lines.append("database  PostgreSQL at 127.0.0.1:5432 (the local server)")
        else:
            server = EmbeddedPostgres(data_dir, throwaway=throwaway)
            url = server.start()
            self.callback(server.stop)
            self.lines.append(
                f"database  embedded PostgreSQL {server.version}, socket in "
                f"{server.socket_dir}, data in {_short(server.data_dir)}"
            )
        self.env["DATABASE_URL"] = url

    def redis(self, *, data_dir: Path, throwaway: bool, probe_local: bool) -> None:
        url = os.environ.get("REDIS_URL")
        if url:
            check_redis(url)
            self.lines.append("broker    Redis from REDIS_URL")
        elif probe_local and _local_answers(LOCAL_REDIS_URL, check_redis):
            url = LOCAL_REDIS_URL
            self.lines.append("broker    Redis at 127.0.0.1:6379 (the local server), db 15")
        else:
            server = EmbeddedRedis(data_dir, throwaway=throwaway)
            url = server.start()
            self.callback(server.stop)
            self.lines.append(
                f"broker    embedded Valkey {server.version} at {url}, data in "
                f"{_short(server.data_dir)}"
            )
        self.env["REDIS_URL"] = url


def _local_answers(url, check) -> bool:
    try:
        check(url)
    except ServiceError:
        return False
    return True


def _short(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# --- make run -------------------------------------------------------------------------
def _port() -> int:
    raw = os.environ.get("HERALD_PORT", "8000")
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ServiceError(f"HERALD_PORT={raw!r} is not a port number (1-65535), e.g. 8000.")
    return int(raw)


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ServiceError(
                f"Port {port} is already taken by another program: stop it, or start Herald "
                f"on another port with HERALD_PORT={port + 1} make run."
            ) from None


def _take_run_lock(folder: Path):
    """One `make run` per var folder: the second one is told where the first serves."""
    handle = open(folder / "run.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        info = running_info(folder) or {}
        where = f" at {info['url']}" if info.get("url") else ""
        pid = f" (pid {info['pid']})" if info.get("pid") else ""
        raise ServiceError(
            f"Herald is already running{where}{pid} from {folder}: use that one, or stop it "
            "with Ctrl-C in its terminal first."
        ) from None
    return handle


def _announce_when_up(url: str, started: float, lines: list[str], stop: threading.Event):
    def healthy() -> bool:
        if stop.is_set():
            return True
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:  # noqa: S310
                return r.status == 200
        except OSError:
            return False

    if wait_for(healthy, timeout=600, interval=0.3) and not stop.is_set():
        say()
        for line in lines:
            say(line)
        say(f"web       {url}  (up {time.monotonic() - started:.1f} s after start)")
        say("Sign in with password herald-demo as:")
        for email, role in DEMO_LOGINS:
            say(f"  {email:<22} {role}")
        say("Ctrl-C stops everything.")
        say()


def run() -> int:
    started = time.monotonic()
    folder = var_dir()
    ensure_writable(folder, purpose="uploads, the embedded servers' data and run files")
    port = _port()
    lock = _take_run_lock(folder)
    _check_port_free(port)
    url = f"http://127.0.0.1:{port}"
    with Services() as services:
        services.database(data_dir=folder / "postgres", throwaway=False, probe_local=False)
        services.redis(data_dir=folder / "valkey", throwaway=False, probe_local=False)
        for line in services.lines:
            say(line)
        env = {
            **os.environ,
            **services.env,
            "DEBUG": os.environ.get("DEBUG", "1"),
            "HERALD_PORT": str(port),
            "HERALD_VAR_DIR": str(folder),
        }
        run_file = folder / RUN_FILE
        run_file.write_text(json.dumps({"pid": os.getpid(), "url": url, **_lower(services.env)}))
        services.callback(run_file.unlink, missing_ok=True)
        for step in (["migrate", "--noinput"], ["seed_demo"]):
            result = subprocess.run([sys.executable, "manage.py", *step], cwd=BASE_DIR, env=env)
            if result.returncode != 0:
                say(f"manage.py {' '.join(step)} failed (its output is above); stopping.")
                return result.returncode
        stop = threading.Event()
        threading.Thread(
            target=_announce_when_up, args=(url, started, services.lines, stop), daemon=True
        ).start()
        code = _supervise([venv_bin("honcho"), "--procfile", "Procfile", "start"], env)
        stop.set()
        say("stopping the embedded servers")
    lock.close()
    return code


def _lower(env: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in env.items()}


def _supervise(command: list[str], env: dict[str, str]) -> int:
    """Run `command` in the foreground. Ctrl-C (which the terminal sends to it as well as
    to us) and SIGTERM (passed on to it) wait for it to stop its processes before we stop
    the servers under them."""
    child = subprocess.Popen(command, cwd=BASE_DIR, env=env)
    stopped = []

    def forward(signum, _frame):
        stopped.append(signum)
        if signum == signal.SIGTERM:  # Ctrl-C's SIGINT reached the child from the terminal
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = child.wait()
                # Stopped on request (Ctrl-C, SIGTERM): that is a clean end, not a failure.
                return 0 if stopped and code in (0, 130, -2, -15, 143) else code
            except KeyboardInterrupt:  # pragma: no cover - the handler above takes SIGINT
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# --- make test ------------------------------------------------------------------------
def chromium_path() -> str:
    """Debian's Chromium for the browser journeys: CHROMIUM_PATH, else /usr/bin/chromium,
    installed with apt when we may; otherwise one line saying how, before any test runs."""
    path = os.environ.get("CHROMIUM_PATH") or CHROMIUM_DEFAULT
    if shutil.which(path):
        return path
    if os.environ.get("CHROMIUM_PATH"):
        raise ServiceError(
            f"CHROMIUM_PATH={path} is not an executable Chromium: point it at one, or unset it "
            "to use Debian's chromium package (/usr/bin/chromium)."
        )
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("Chromium is missing: installing Debian's chromium package for the browser tests")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
        ):
            if subprocess.run(step, env=env, stdout=subprocess.DEVNULL).returncode != 0:
                raise ServiceError(
                    f"`{' '.join(step)}` failed: install Debian's chromium package yourself, "
                    "or set CHROMIUM_PATH to a Chromium binary."
                )
        if shutil.which(CHROMIUM_DEFAULT):
            return CHROMIUM_DEFAULT
    raise ServiceError(
        "The browser tests need Chromium and it is not installed: install Debian's chromium "
        "package (sudo apt-get install chromium), or set CHROMIUM_PATH to a Chromium binary."
    )


def test(pytest_args: list[str]) -> int:
    started = time.monotonic()
    chromium = chromium_path()
    probe_local = os.environ.get("HERALD_TEST_SERVICES", "") != "embedded"
    scratch = Path(tempfile.mkdtemp(prefix="herald-test-"))
    try:
        with Services() as services:
            services.database(
                data_dir=scratch / "postgres", throwaway=True, probe_local=probe_local
            )
            services.redis(data_dir=scratch / "valkey", throwaway=True, probe_local=probe_local)
            for line in services.lines:
                say(line)
            say(f"browser   {chromium}")
            env = {**os.environ, **services.env, "CHROMIUM_PATH": chromium}
            code = _supervise([sys.executable, "-m", "pytest", *pytest_args], env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"make test took {time.monotonic() - started:.0f} s")
    return code


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return run() if argv[0] == "run" else test(argv[1:])
    except ServiceError as e:
        say(str(e))
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: the servers were stopped on the way
        say("stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
