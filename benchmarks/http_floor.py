"""The ceiling under redemption_http.py: the same HTTP load against endpoints that do nothing.

    .venv/bin/python benchmarks/http_floor.py [--pg postgresql://postgres@127.0.0.1:5432/test]

Prints numbers, asserts nothing. It starts gunicorn (`-w 4`, sync workers, as
redemption_http.py does) on a Flask app of two routes shaped like the redemption API's,
`POST /api/v1/redemptions` (answers 201 and a code) and
`POST /api/v1/merchant/redemptions/<code>/confirm` (answers 200), and drives them with
redemption_http.py's own closed-loop clients (16 by default; `--client raw` or `httpx`).
Two app variants:

- `empty`: no database, no sign-in: Flask, gunicorn and the JSON in and out only;
- `one-query` (with --pg): each request also runs one `SELECT 1` and a COMMIT on a pooled
  SQLAlchemy connection to the given PostgreSQL.

Whatever a pair of real requests costs comes on top of this; so the pairs per second printed
here bound what the redemption API can reach on this machine with this load generator
beside it.
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from redemption_http import (  # noqa: E402
    BIN,
    Load,
    cpu_times,
    free_port,
    run_load,
    summarise,
    worker_pids,
)


def floor_app():
    """The gunicorn entry point: two routes that answer like the redemption API's."""
    from flask import Flask, jsonify, request

    app = Flask(__name__)
    url = os.environ.get("FLOOR_DATABASE_URL")
    engine = None
    if url:
        import sqlalchemy as sa

        engine = sa.create_engine(url, pool_size=1)

    def touch_database() -> None:
        if engine is not None:
            with engine.begin() as connection:
                connection.exec_driver_sql("SELECT 1")

    @app.post("/api/v1/redemptions")
    def create():
        body = request.get_json()
        touch_database()
        return jsonify({"id": 1, "code": "ABCDE23456", "status": "reserved",
                        "points": 2 * body["quantity"]}), 201

    @app.post("/api/v1/merchant/redemptions/<code>/confirm")
    def confirm(code):
        touch_database()
        return jsonify({"code": code, "status": "fulfilled"})

    return app


def measure(variant: str, url: str | None, clients: int, seconds: float,
            client: str) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    if url:
        env["FLOOR_DATABASE_URL"] = url
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", "4", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "http_floor:floor_app()"], env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.0)
        load = Load(f"http://127.0.0.1:{port}", 1, ["volunteer"], "merchant")
        asyncio.run(run_load(load, clients, 2.0, client))  # warm-up
        workers = worker_pids(server)
        app_cpu, own_cpu = sum(cpu_times(workers).values()), time.process_time()
        tally, elapsed = asyncio.run(run_load(load, clients, seconds, client))
        cpu = {"app": sum(cpu_times(workers).values()) - app_cpu,
               "client": time.process_time() - own_cpu}
        row = summarise(clients, tally, elapsed, cpu)
        row["variant"] = variant
        return row
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="a PostgreSQL URL for the one-query variant")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="redemption_http.py's load generator client")
    args = parser.parse_args()
    variants = [("empty", None)]
    if args.pg:
        from sqlalchemy.engine import make_url

        url = make_url(args.pg).set(drivername="postgresql+psycopg")
        variants.append(("one-query", url.render_as_string(hide_password=False)))
    print(f"{os.cpu_count()} cores; {args.clients} {args.client} clients; "
          f"{args.seconds:.0f} s per variant; "
          f"load average at the start {os.getloadavg()[0]:.1f}")
    for variant, url in variants:
        row = measure(variant, url, args.clients, args.seconds, args.client)
        print(f"{variant:>9}: {row['per_second']:.0f} pairs/s; create p50/p99 "
              f"{row['create']['p50_ms']}/{row['create']['p99_ms']} ms; confirm p50/p99 "
              f"{row['confirm']['p50_ms']}/{row['confirm']['p99_ms']} ms; errors "
              f"{row['errors']}; CPU ms per pair {row.get('cpu_ms')}")


if __name__ == "__main__":
    main()
