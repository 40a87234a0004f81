"""`make run` and `make test` on a machine with only Python: the launcher starts the
embedded PostgreSQL and Valkey from scratch, serves the demo, refuses a second run, stops
everything on Ctrl-C, keeps the data, gets past what a killed run leaves behind, and
answers every set-up problem with one line."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
DROPPED = {"DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "HERALD_PORT", "DEBUG"}


def _env(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, env, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "config.launch", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120, **kwargs,
    )  # fmt: skip


class Run:
    """`python -m config.launch run` in the background, its output in a file."""

    def __init__(self, var: Path, port: int):
        self.var, self.port = var, port
        self.log = var.parent / f"run-{time.monotonic_ns()}.log"
        self.url = f"http://127.0.0.1:{port}"
        out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "config.launch", "run"], cwd=ROOT,
            env=_env(HERALD_VAR_DIR=str(var), HERALD_PORT=str(port)),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def output(self):
        return self.log.read_text(errors="replace")

    def wait_until_up(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"web       {self.url}" in self.output():
                return
            assert self.proc.poll() is None, f"the run stopped:\n{self.output()[-3000:]}"
            time.sleep(0.5)
        raise AssertionError(f"not up after {timeout} s:\n{self.output()[-3000:]}")

    def ctrl_c(self):
        """What the terminal does: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=90)

    def kill(self):
        """After a failure: the launcher and everything under it (honcho starts web, worker
        and beat in sessions of their own), and the servers it started."""
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for proc in [*tree, *_servers_on(self.var)]:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310
        return r.status, r.read().decode()


def _manage(var, code):
    """A manage.py command beside the run, with no URLs set: settings find its servers."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT,
        env=_env(HERALD_VAR_DIR=str(var), DEBUG="1"), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _servers_on(var):
    """Embedded server processes whose command line names a folder under `var`."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(var) in cmd:
            found.append(proc)
        elif "valkey-server" in (proc.info["name"] or ""):
            try:
                if Path(proc.cwd()).is_relative_to(var) or str(var) in cmd:
                    found.append(proc)
            except psutil.Error:
                pass
    return found


COUNT = (
    "from django.db import connection; from people.models import Person; "
    "from accounts.models import Workspace; "
    "print(json.dumps([Person.objects.unscoped().count(), "
    "sorted(Workspace.objects.values_list('name', flat=True)), "
    "connection.cursor().connection.info.server_version // 10000]))"
)


def test_make_run_starts_the_embedded_pair_from_scratch_and_keeps_the_data(tmp_path):
    var = tmp_path / "var"
    run = Run(var, _free_port())
    try:
        run.wait_until_up()
        out = run.output()
        assert "database  embedded PostgreSQL 18" in out
        assert "broker    embedded Valkey 8" in out
        assert "owner@demo.herald" in out and "herald-demo" in out
        status, body = _get(f"{run.url}/healthz")
        assert status == 200
        assert json.loads(body)["checks"] == {"database": "ok", "broker": "ok"}
        # The demo is there, on the embedded PostgreSQL.
        people, workspaces, major = json.loads(_manage(var, "import json; " + COUNT))
        assert people > 4500 and major == 18  # the demo's people and those it imports
        assert workspaces == ["Acme Retail", "Globex Mobile"]
        _manage(
            var,
            "from accounts.models import Workspace; "
            "Workspace.objects.create(name='Kept across runs', slug='kept'); print(1)",
        )

        # A second run on the same folder says where the first one serves, and starts nothing.
        second = _launch(["run"], _env(HERALD_VAR_DIR=str(var), HERALD_PORT=str(_free_port())))
        assert second.returncode == 1
        assert f"Herald is already running at {run.url}" in second.stdout
        assert len(second.stdout.strip().splitlines()) == 1

        assert _servers_on(var), "the embedded servers should be running"
        assert run.ctrl_c() == 0
        assert "stopping the embedded servers" in run.output()
        assert "Traceback" not in run.output()
        # A fast stop flushes the demo's data to disk: on a machine busy with other work that
        # can take a while, and the launcher waits for it (then stops it immediately).
        left = psutil.wait_procs(_servers_on(var), timeout=120)[1]
        assert left == [], f"{left} still run after:\n{run.output()[-2000:]}"
        assert not (var / "run.json").exists()
    finally:
        run.kill()

    # What a killed run leaves behind: a postmaster.pid and a Valkey pid file naming a live
    # process that is not theirs, and the socket lock file. The next run gets past them.
    (var / "postgres" / "postmaster.pid").write_text(
        f"{os.getpid()}\n{var / 'postgres'}\n1764000000\n5432\n{var / 'postgres'}\n\n0 0\nready\n"
    )
    (var / "postgres" / ".s.PGSQL.5432.lock").write_text(f"{os.getpid()}\n")
    (var / "valkey" / "valkey.pid").write_text(f"{os.getpid()}\n")
    again = Run(var, _free_port())
    try:
        again.wait_until_up()
        again_people, workspaces, _ = json.loads(_manage(var, "import json; " + COUNT))
        assert again_people == people  # the demo was not loaded twice
        assert "Kept across runs" in workspaces  # nor was anything of the earlier run lost
        assert again.ctrl_c() == 0
    finally:
        again.kill()


def test_a_taken_port_is_one_line_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _launch(["run"], _env(HERALD_VAR_DIR=str(tmp_path), HERALD_PORT=str(port)))
    assert result.returncode == 1
    assert result.stdout.strip() == (
        f"herald | Port {port} is already taken by another program: stop it, or start Herald "
        f"on another port with HERALD_PORT={port + 1} make run."
    )
    assert not (tmp_path / "postgres").exists()


@pytest.mark.parametrize(
    ("variable", "url", "message"),
    [
        ("DATABASE_URL", "postgres://herald:secret@127.0.0.1:{port}/herald",
         "DATABASE_URL (postgres://herald:***@127.0.0.1:{port}/herald) does not answer"),
        ("REDIS_URL", "redis://127.0.0.1:{port}/0",
         "REDIS_URL (redis://127.0.0.1:{port}/0) does not answer"),
    ],
)  # fmt: skip
def test_a_configured_server_that_does_not_answer_is_named(tmp_path, variable, url, message):
    port = _free_port()  # nothing listens there
    env = _env(HERALD_VAR_DIR=str(tmp_path), HERALD_PORT=str(_free_port()))
    # For REDIS_URL the embedded PostgreSQL starts first, and is stopped again.
    env[variable] = url.format(port=port)
    result = _launch(["run"], env)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and message.format(port=port) in lines[0], result.stdout
    assert f"unset {variable}" in lines[0]
    assert "secret" not in result.stdout
    assert not _servers_on(tmp_path)
    assert not (tmp_path / "run.json").exists()


def test_a_data_folder_of_another_postgresql_version_is_left_alone(tmp_path):
    data = tmp_path / "postgres"
    data.mkdir()
    (data / "PG_VERSION").write_text("14\n")
    (data / "base").mkdir()
    result = _launch(["run"], _env(HERALD_VAR_DIR=str(tmp_path), HERALD_PORT=str(_free_port())))
    assert result.returncode == 1
    assert "holds a PostgreSQL 14 database and this Herald ships PostgreSQL 18" in result.stdout
    assert "nothing was changed" in result.stdout
    assert sorted(p.name for p in data.iterdir()) == ["PG_VERSION", "base"]


def test_a_var_folder_that_cannot_be_written_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder cannot be made inside a file, even as root
    result = _launch(["run"], _env(HERALD_VAR_DIR=str(blocker / "var")))
    assert result.returncode == 1
    assert f"{blocker / 'var'} is not writable" in result.stdout
    assert "HERALD_VAR_DIR" in result.stdout


def test_make_test_without_chromium_stops_before_any_test(tmp_path):
    result = _launch(
        ["test", "tests/test_launch.py"], _env(CHROMIUM_PATH=str(tmp_path / "no-chromium"))
    )
    assert result.returncode == 1
    assert result.stdout.strip() == (
        f"herald | CHROMIUM_PATH={tmp_path / 'no-chromium'} is not an executable Chromium: "
        "point it at one, or unset it to use Debian's chromium package (/usr/bin/chromium)."
    )


def test_manage_py_without_urls_or_a_run_says_how_to_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT,
        env=_env(HERALD_VAR_DIR=str(tmp_path), DEBUG="1"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DATABASE_URL is not set. Start Herald with `make run`" in result.stderr
