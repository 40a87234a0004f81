"""The campaigns fault scenario at full size: a 50,000-recipient SMS campaign against the
Twilio fake and a 50,000-recipient email campaign to an SMTP sink, each while the worker
is killed with SIGKILL five times mid-batch, Redis is restarted empty and every
PostgreSQL connection of the database is dropped (tests/campaigns/test_faults.py, which
`make test` runs at a few thousand recipients; this script runs the same tests at
--recipients).

Issue target (campaigns): "every recipient ends sent, failed, skipped or unknown (none
silently lost, none left queued), 0 duplicates at the fake, unknown at most the in-flight
batch per kill".

Prints ONE line per channel:
    campaign_faults channel=sms recipients=50000 sent=.. unknown=.. failed=.. lost=0
        duplicates=0 unknown_limit=.. seconds=.. ok=yes
(unknown_limit = the batch size times the faults that can leave a batch unanswered:
the five kills and the dropped connections.)

Run (PostgreSQL and Redis as for `make test`; about 10 minutes on 2 cores):
    .venv/bin/python benchmarks/campaign_faults.py [--recipients 50000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 500  # campaigns.dispatch.send.BATCH
FAULTS_LEAVING_UNKNOWN = 6  # five kills and the dropped database connections
FINAL = ("sent", "delivered", "failed", "bounced", "skipped", "unknown")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-faults-") as folder:
        report = os.path.join(folder, "report.jsonl")
        database = os.environ.get("TEST_DATABASE_NAME", "test_herald_faults")
        env = dict(os.environ, HERALD_FAULTS_RECIPIENTS=str(args.recipients),
                   HERALD_FAULTS_REPORT=report, TEST_DATABASE_NAME=database)  # fmt: skip
        env.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
        env.setdefault("PROVIDER_SECRET_KEYS", "dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=")
        env.setdefault("DEBUG", "0")
        env.setdefault("SECURE_SSL_REDIRECT", "0")
        env.setdefault("STATIC_MANIFEST", "0")
        env.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/campaigns/test_faults.py"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        lines = []
        if os.path.exists(report):
            with open(report) as answers:
                lines = answers.read().splitlines()
    if not lines:
        print("campaign_faults failed: no run reported")
        print(run.stdout[-4000:] + run.stderr[-2000:])
        return 1
    ok = run.returncode == 0
    for line in lines:
        result = json.loads(line)
        counts = result["counts"]
        ended = sum(counts.get(s, 0) for s in FINAL)
        limit = 0 if result["channel"] == "sms" else BATCH * FAULTS_LEAVING_UNKNOWN
        good = (
            ended == args.recipients
            and result["duplicates"] == 0
            and counts.get("unknown", 0) <= limit
        )
        ok = ok and good
        print(
            f"campaign_faults channel={result['channel']} recipients={args.recipients} "
            f"sent={counts.get('sent', 0)} unknown={counts.get('unknown', 0)} "
            f"failed={counts.get('failed', 0)} lost={args.recipients - ended} "
            f"duplicates={result['duplicates']} unknown_limit={limit} "
            f"seconds={result['seconds']} ok={'yes' if good else 'no'}"
        )
    if run.returncode != 0:
        print(run.stdout[-3000:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
