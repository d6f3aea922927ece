"""Demo pages benchmark: the demo's pages on the embedded PostgreSQL server against the
SQLite demo of an earlier checkout; prints milliseconds, asserts nothing.

    .venv/bin/python benchmarks/demo_pages.py --sqlite-checkout ../wt-old [--rounds 3] \
        [--requests 50]

Each round serves both demos, one after the other (the order alternates between rounds),
with `flask --app pointsmall start-demo` of each checkout and its own virtualenv (the
--sqlite-checkout must have its `.venv`, installed with `pip install -e .`): this checkout
on an embedded server whose data folder is made for this run (POINTSMALL_PGDATA; deleted at
the end), the other on its SQLite file in its instance/ folder. Signed in through the login
form, one client asks each page --requests times in a row (after 5 unmeasured requests)
and the median and p90 response times are printed: / signed out (the redirect to sign in),
the volunteer home and the mall as vol2, the staff dashboard as staff1.

Then the embedded server alone: its first start in an empty folder (initdb included) and a
restart of the same folder, --rounds times each, in this process.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent.parent
PAGES = [  # (label, who signs in, path)
    ("/ signed out", None, "/"),
    ("volunteer home", "vol2", "/"),
    ("mall", "vol2", "/mall/"),
    ("staff dashboard", "staff1", "/staff/dashboard"),
]
PASSWORD = "demo1234"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(checkout: Path, env: dict, port: int) -> tuple[subprocess.Popen, float]:
    """Start the checkout's demo; return it and the seconds until it served."""
    started = time.perf_counter()
    demo = subprocess.Popen(
        [str(checkout / ".venv" / "bin" / "flask"), "--app", "pointsmall", "start-demo",
         "--port", str(port)], cwd=checkout, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in demo.stdout:
        seen.append(line)
        if "Running on" in line:
            break
    else:
        raise SystemExit(f"{checkout}: the demo did not start:\n{''.join(seen)}")
    return demo, time.perf_counter() - started


def stop(demo: subprocess.Popen) -> None:
    os.killpg(demo.pid, signal.SIGINT)
    demo.communicate(timeout=120)


def signed_in(base: str, who: str | None) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    if who:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form) or \
            re.search(r'value="([^"]+)"[^>]*name="csrf_token"', form)
        answer = client.post("/login", data={"csrf_token": token.group(1), "login": who,
                                             "password": PASSWORD})
        if answer.status_code != 302:
            raise SystemExit(f"signing in as {who} answered {answer.status_code}")
    return client


def measure(base: str, requests: int) -> dict[str, list[float]]:
    times = {}
    for label, who, path in PAGES:
        client = signed_in(base, who)
        try:
            status = None
            for _ in range(5):
                status = client.get(path).status_code
            took = []
            for _ in range(requests):
                began = time.perf_counter()
                client.get(path)
                took.append((time.perf_counter() - began) * 1000)
            times[label] = took
            times[label + " status"] = [status]
        finally:
            client.close()
    return times


def server_starts(rounds: int) -> tuple[list[float], list[float]]:
    from pointsmall.core import embedded_db

    first, again = [], []
    for _ in range(rounds):
        folder = Path(tempfile.mkdtemp(prefix="pointsmall-bench-"))
        try:
            began = time.perf_counter()
            embedded_db.start(folder / "pgdata")
            first.append(time.perf_counter() - began)
            embedded_db.release(folder / "pgdata")
            began = time.perf_counter()
            embedded_db.start(folder / "pgdata")
            again.append(time.perf_counter() - began)
            embedded_db.release(folder / "pgdata")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return first, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-checkout", required=True, type=Path,
                        help="a checkout whose demo runs on SQLite, with its .venv")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    pgdata = Path(tempfile.mkdtemp(prefix="pointsmall-bench-demo-")) / "pgdata"
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "POINTSMALL_ENV")}
    variants = {
        "embedded": (HERE, {**base_env, "POINTSMALL_PGDATA": str(pgdata)}),
        "sqlite": (args.sqlite_checkout.resolve(), base_env),
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    ready: dict[str, list[float]] = {name: [] for name in variants}
    print(f"{os.cpu_count()} cores; load average at the start {os.getloadavg()[0]:.1f}; "
          f"{args.requests} requests per page, {args.rounds} rounds", flush=True)
    try:
        for round_ in range(args.rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in order:
                checkout, env = variants[name]
                port = free_port()
                demo, seconds = serve(checkout, env, port)
                try:
                    ready[name].append(seconds)
                    results[name].append(measure(f"http://127.0.0.1:{port}", args.requests))
                finally:
                    stop(demo)
                print(f"round {round_ + 1} {name}: served after {seconds:.1f} s", flush=True)
    finally:
        shutil.rmtree(pgdata.parent, ignore_errors=True)

    print(f"\n{'page':<18}" + "".join(f"{name + ' p50/p90 ms':>26}" for name in variants)
          + f"{'ratio p50':>11}")
    for label, _, _ in PAGES:
        row, medians = f"{label:<18}", []
        for name in variants:
            rounds = [run[label] for run in results[name]]
            both = sorted(t for r in rounds for t in r)
            p90 = both[int(len(both) * 0.9)]
            medians.append(statistics.median(both))
            status = results[name][0][label + " status"][0]
            row += f"{statistics.median(both):>12.1f} / {p90:>5.1f} ({status})"
        row += f"{medians[0] / medians[1]:>10.2f}x"
        print(row)
    for name in variants:
        rounds = ", ".join(
            "/".join(f"{statistics.median(run[label]):.1f}" for label, _, _ in PAGES)
            for run in results[name])
        print(f"{name} medians per round (pages in the order above): {rounds}")
    print("demo served after (s): " + "; ".join(
        f"{name} " + ", ".join(f"{s:.1f}" for s in ready[name]) for name in variants))
    first, again = server_starts(args.rounds)
    print("embedded server first start (initdb included), s: "
          + ", ".join(f"{s:.2f}" for s in first))
    print("embedded server restart of the same folder, s: "
          + ", ".join(f"{s:.2f}" for s in again))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
