"""First hour of a newcomer: a fresh clone to `/healthz` 200 under `make run`, and
(with --test) a fresh clone's `make test` with no servers configured.

    .venv/bin/python benchmarks/first_hour.py            # make run, pip cache as it is
    .venv/bin/python benchmarks/first_hour.py --cold     # make run, pip and uv download everything
    .venv/bin/python benchmarks/first_hour.py --test     # also make test (embedded servers)

Clones the committed HEAD of this checkout into a temporary folder, so only what is on
`main` counts. `make test` runs with HERALD_TEST_SERVICES=embedded: it starts its own
PostgreSQL and Valkey even though this machine's run on 5432 / 6379. Prints one line each:

    first_hour make_run_to_healthz=31.2s pip_cache=warm target<=60s (cold: <=180s)
    first_hour make_test=412s passed=yes chromium=/usr/bin/chromium (installed before: yes)
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DROPPED = {"DATABASE_URL", "REDIS_URL", "HERALD_VAR_DIR", "VIRTUAL_ENV", "DEBUG", "SECRET_KEY"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env["PATH"] = ":".join(
        p for p in env.get("PATH", "").split(":") if not p.startswith(str(ROOT / ".venv"))
    )
    env.update(extra)
    return env


def healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:  # noqa: S310
            return r.status == 200
    except OSError:
        return False


def time_make_run(clone: Path, *, cold: bool) -> float:
    port = free_port()
    cold_env = {"PIP_NO_CACHE_DIR": "1", "UV_NO_CACHE": "1"} if cold else {}
    env = clean_env(HERALD_PORT=str(port), **cold_env)
    log = (clone.parent / "make-run.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while not healthz(port):
            if proc.poll() is not None:
                raise SystemExit(f"make run stopped; see {log.name}")
            if time.monotonic() - started > 900:
                raise SystemExit(f"no /healthz after 900 s; see {log.name}")
            time.sleep(0.2)
        return time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def time_make_test(clone: Path) -> tuple[float, bool]:
    env = clean_env(HERALD_TEST_SERVICES="embedded")
    log = clone.parent / "make-test.log"
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(
            ["make", "test"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    return time.monotonic() - started, code == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="pip without its cache")
    parser.add_argument("--test", action="store_true", help="also time make test")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its logs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="herald-first-hour-"))
    clone = work / "herald"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    try:
        seconds = time_make_run(clone, cold=args.cold)
        print(
            f"first_hour make_run_to_healthz={seconds:.1f}s "
            f"pip_cache={'cold' if args.cold else 'warm'} "
            f"target<={180 if args.cold else 60}s",
            flush=True,
        )
        if args.test:
            had_chromium = bool(shutil.which(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")))
            seconds, passed = time_make_test(clone)
            print(
                f"first_hour make_test={seconds:.0f}s passed={'yes' if passed else 'no'} "
                f"chromium installed before: {'yes' if had_chromium else 'no'}"
            )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
