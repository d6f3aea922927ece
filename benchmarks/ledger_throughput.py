"""Ledger throughput benchmark: prints numbers, asserts nothing.

    .venv/bin/python benchmarks/ledger_throughput.py --pg postgresql://postgres@127.0.0.1:5432/test

On the given PostgreSQL server it creates a database of its own (bench_<random>), builds the
schema with the app's Alembic migrations (pointsmall.create_app + flask_migrate.upgrade), and
measures:

- transfers/s between random volunteer accounts (10,000, funded) with 1, 4 and 8 workers,
  each worker committing one transfer per transaction through ledger.run_in_transaction;
- the same with every transfer debiting one issuance account (an award; allow_negative,
  16 stripes) and, to show what striping buys, the same account with one stripe;
- hold + post pairs/s (two transactions each);
- ledger.verify over 1,000,000 postings, bulk-loaded first: rows and hashes computed with
  ledger.chain exactly as ledger/writes.py computes them, COPYed in by parallel processes
  into the migrated schema with every constraint and trigger in force;
- a 50-row ledger.history page of a busy account with those postings in the table (median
  and p99 over many calls, each in a fresh session);
- pgbench's built-in TPC-B script (pgbench -i -s 10 into a database of its own,
  bench_<random>_pgbench; then pgbench -c N -j N -T secs) with the same client counts, run
  just before our runs with the same count, and the ratio ours / pgbench;

Workers are processes by default (one Python process per worker, as gunicorn runs them):
threads in one process share the GIL; the random case is also measured with threads at the
largest count so the difference shows (--mode threads swaps the two).

Each run also reports CPU per operation, split into the client (the worker's Python) and the
server (its PostgreSQL backend, read from /proc), and how many cores the machine was busy
against how many of them were ours: other work on a shared machine shows up there. Both
databases are dropped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import platform
import queue
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.orm as so

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ledger  # noqa: E402
from ledger import chain, clock  # noqa: E402
from ledger.models import Account, Balance  # noqa: E402

ASSET = "POINTS"
FUNDING = 1_000_000  # points each volunteer starts with: no benchmark transfer can drain it
ISSUER = "community:bench:issuance"  # striped; funds the volunteers, debited by awards
ISSUER_FLAT = "community:bench:issuance-flat"  # the same, one stripe
BUSY = "merchant:bench:busy"  # the account whose history pages are read
MERCHANTS = 50  # holds are posted to one of these

TARGETS = {
    "random": ("pgbench", 0.5),
    "issuance-16": ("pgbench", 0.3),
    "verify": ("max_s", 10.0),
    "history": ("max_ms", 5.0),
}


def volunteer(i: int) -> str:
    return f"volunteer:{i}:points"


def merchant(i: int) -> str:
    return f"merchant:{i}:points"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- set-up


def sqlalchemy_url(raw: str) -> str:
    from pointsmall.config import database_url

    return database_url(raw, "")


def build_schema(url: str) -> None:
    """Build the schema the way production does: the app's Alembic migrations."""
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret")
    import logging

    from flask_migrate import upgrade

    from pointsmall import create_app
    from pointsmall.extensions import db

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()
    logging.getLogger("alembic").setLevel(logging.WARNING)


def make_engine(url: str, pool_size: int = 1) -> sa.Engine:
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size)


def open_accounts(engine: sa.Engine, n_accounts: int, batch: int = 500) -> None:
    """Open the volunteers, merchants and issuance accounts, and fund every volunteer."""
    with so.Session(engine) as s:
        ledger.open_account(s, ISSUER, ASSET, allow_negative=True, stripes=16)
        ledger.open_account(s, ISSUER_FLAT, ASSET, allow_negative=True, stripes=1)
        ledger.open_accounts(s, [(BUSY, ASSET)] + [(merchant(m), ASSET) for m in range(MERCHANTS)]
                             + [(volunteer(i), ASSET) for i in range(n_accounts)])
        s.commit()
        # Fund through the API, in transactions of one debit and `batch` credits.
        for start in range(0, n_accounts, batch):
            ids = range(start, min(start + batch, n_accounts))
            legs = [ledger.Leg(ISSUER, -FUNDING * len(ids))]
            legs += [ledger.Leg(volunteer(i), FUNDING) for i in ids]
            ledger.run_in_transaction(s, lambda s, legs=legs, start=start: ledger.transfer(
                s, legs, key=f"fund:{start}", kind="award", memo="benchmark funding"))


# ----------------------------------------------------------------------------- bulk load


def bulk_group(url: str, group: int, n_tx: int, tx_id0: int, p_id0: int,
               accounts: list[tuple[int, int, str, int, int, str]], busy_share: float,
               seed: int, base: datetime) -> tuple[int, float]:
    """Compute and COPY `n_tx` transfers among `accounts` (disjoint from other groups').

    Rows and hashes are exactly those ledger.move would write: the transaction seal from
    chain.transaction_hash, one debit then one credit, each chained onto its stripe's head
    with chain.posting_hash, balance_after the stripe's running total; no overdraft.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    # state per balance: [account_id, address, posted, seq, head]
    state = {b: [a, addr, posted, seq, head] for a, b, addr, posted, seq, head in accounts}
    balance_ids = [b for _, b, *_ in accounts]
    busy = balance_ids[0] if busy_share else None
    senders = balance_ids[1:] if busy is not None else balance_ids
    tx_lines: list[str] = []
    p_lines: list[str] = []
    kind, memo, meta, meta_text = "transfer", "", {}, "{}"
    tx_hash_fn, post_hash_fn, req_hash_fn = (chain.transaction_hash, chain.posting_hash,
                                             chain.request_hash)
    p_id = p_id0
    for i in range(n_tx):
        tx_id = tx_id0 + i
        src = rng.choice(senders)
        if busy is not None and rng.random() < busy_share:
            dst = busy
        else:
            dst = rng.choice(senders)
            while dst == src:
                dst = rng.choice(senders)
        amount = rng.randint(1, 100)
        s_state, d_state = state[src], state[dst]
        if s_state[2] < amount:  # never happens with the funding; never write an overdraft
            raise RuntimeError("bulk load would overdraw an account")
        key = f"bulk:{group}:{i}"
        created = base + timedelta(microseconds=i)
        tx_hash = tx_hash_fn(key, kind, memo, meta, None, created)
        req = req_hash_fn("transfer", legs=[[s_state[1], -amount], [d_state[1], amount]],
                          kind=kind, memo=memo, meta=meta, asset=None)
        tx_lines.append(f"{tx_id}\t{key}\t{req}\t{kind}\t{memo}\t{meta_text}\t\\N\t"
                        f"{created.isoformat()}\t{tx_hash}\n")
        for bal, st, amt in ((src, s_state, -amount), (dst, d_state, amount)):
            posted = st[2] + amt
            seq = st[3] + 1
            digest = post_hash_fn(st[4], bal, seq, tx_id, tx_hash, st[0], ASSET, amt, posted)
            p_lines.append(f"{p_id}\t{tx_id}\t{st[0]}\t{bal}\t{ASSET}\t{amt}\t{seq}\t{posted}\t"
                           f"{digest}\n")
            p_id += 1
            st[2], st[3], st[4] = posted, seq, digest
    computed = time.perf_counter() - started

    import psycopg

    with psycopg.connect(sa.make_url(url).set(drivername="postgresql")
                         .render_as_string(hide_password=False)) as conn:
        with conn.cursor() as cur:
            for table, cols, lines in (
                ("ledger_transactions", "id, idempotency_key, request_hash, kind, memo, meta, "
                 "reverses_id, created_at, hash", tx_lines),
                ("ledger_postings", "id, transaction_id, account_id, balance_id, asset_code, "
                 "amount, seq, balance_after, hash", p_lines),
            ):
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for start in range(0, len(lines), 20_000):
                        copy.write("".join(lines[start:start + 20_000]))
            cur.execute("CREATE TEMP TABLE heads (id bigint, posted bigint, seq bigint, "
                        "head_hash text) ON COMMIT DROP")
            with cur.copy("COPY heads FROM STDIN") as copy:
                buf = io.StringIO()
                for bal, (_, _, posted, seq, head) in state.items():
                    buf.write(f"{bal}\t{posted}\t{seq}\t{head}\n")
                copy.write(buf.getvalue())
            cur.execute("UPDATE ledger_balances b SET posted = h.posted, seq = h.seq, "
                        "head_hash = h.head_hash FROM heads h WHERE b.id = h.id "
                        "AND b.seq <> h.seq")
        conn.commit()
    return p_id - p_id0, computed


def bulk_load(url: str, target_postings: int, procs: int) -> dict:
    """Fill the postings table up to `target_postings` rows in `procs` parallel groups."""
    engine = make_engine(url)
    started = time.perf_counter()
    with engine.connect() as conn:
        existing = conn.scalar(sa.text("SELECT count(*) FROM ledger_postings"))
        seqs = {t: conn.scalar(sa.text(f"SELECT pg_get_serial_sequence('{t}', 'id')"))
                for t in ("ledger_transactions", "ledger_postings")}
        max_ids = {t: conn.scalar(sa.text(f"SELECT coalesce(max(id), 0) FROM {t}"))
                   for t in seqs}
        rows = conn.execute(
            sa.select(Account.id, Balance.id, Account.address, Balance.posted, Balance.seq,
                      Balance.head_hash)
            .join(Balance, Balance.account_id == Account.id)
            .where(sa.or_(Account.address.like("volunteer:%"), Account.address == BUSY))
            .order_by(Account.address != BUSY, Balance.id)
        ).all()
    engine.dispose()
    n_tx_total = max(0, (target_postings - existing) // 2)
    busy_row, volunteers = rows[0], rows[1:]
    groups = [list(volunteers[g::procs]) for g in range(procs)]
    groups[0].insert(0, busy_row)
    per = [n_tx_total // procs + (1 if g < n_tx_total % procs else 0) for g in range(procs)]
    tx0, p0 = max_ids["ledger_transactions"] + 1, max_ids["ledger_postings"] + 1
    base = clock.utcnow() - timedelta(days=30)
    jobs = []
    for g in range(procs):
        jobs.append((url, g, per[g], tx0, p0, [tuple(r) for r in groups[g]],
                     0.2 if g == 0 else 0.0, 1000 + g, base + timedelta(days=g)))
        tx0 += per[g]
        p0 += 2 * per[g]
    with mp.get_context("fork").Pool(procs) as pool:
        results = pool.starmap(bulk_group, jobs)
    engine = make_engine(url)
    with engine.begin() as conn:
        for table, seq in seqs.items():
            conn.execute(sa.text(f"SELECT setval('{seq}', (SELECT max(id) FROM {table}))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE ledger_transactions, ledger_postings, "
                             "ledger_balances")
        total = conn.scalar(sa.text("SELECT count(*) FROM ledger_postings"))
        busy_postings = conn.scalar(sa.text(
            "SELECT count(*) FROM ledger_postings p JOIN ledger_accounts a "
            "ON a.id = p.account_id WHERE a.address = :a"), {"a": BUSY})
    engine.dispose()
    return {
        "seconds": time.perf_counter() - started,
        "compute_seconds": max(c for _, c in results),
        "loaded_postings": sum(n for n, _ in results),
        "postings": total,
        "busy_postings": busy_postings,
        "procs": procs,
    }


# ----------------------------------------------------------------------------- workloads


def make_op(scenario: str, n_accounts: int, rng: random.Random,
            tag: str) -> Callable[[so.Session, int], None]:
    """Return op(session, i): one unit of work, committed through run_in_transaction."""
    run = ledger.run_in_transaction

    if scenario == "random":
        def op(s: so.Session, i: int) -> None:
            a, b = rng.sample(range(n_accounts), 2)
            run(s, lambda s: ledger.move(s, volunteer(a), volunteer(b), 1,
                                         key=f"{tag}:{i}", kind="transfer"))
    elif scenario.startswith("issuance"):
        issuer = ISSUER if scenario == "issuance-16" else ISSUER_FLAT

        def op(s: so.Session, i: int) -> None:
            b = rng.randrange(n_accounts)
            run(s, lambda s: ledger.move(s, issuer, volunteer(b), 1, key=f"{tag}:{i}",
                                         kind="award"))
    elif scenario == "holdpost":
        def op(s: so.Session, i: int) -> None:
            a, m = rng.randrange(n_accounts), rng.randrange(MERCHANTS)
            hold_id = run(s, lambda s: ledger.hold(s, volunteer(a), merchant(m), 1,
                                                   key=f"{tag}:h:{i}", kind="redemption").id)
            run(s, lambda s: ledger.post_hold(s, hold_id, key=f"{tag}:p:{i}"))
    else:
        raise ValueError(scenario)
    return op


def backend_cpu(pid: int | None) -> float | None:
    """CPU seconds a local PostgreSQL backend has used, or None where it cannot be read."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_busy() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def worker(url: str, scenario: str, n_accounts: int, duration: float, wid: int, tag: str,
           barrier, results) -> None:
    """Warm up, wait for the others, then run `scenario` for `duration` seconds."""
    try:
        engine = make_engine(url)
        rng = random.Random(hash((tag, wid)))
        op = make_op(scenario, n_accounts, rng, f"{tag}:{wid}")
        with so.Session(engine) as s:
            for i in range(10):
                op(s, -1 - i)
            pid = None
            if engine.dialect.name == "postgresql":  # the pool of one keeps this connection
                pid = s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
                s.commit()
            barrier.wait()
            n = errors = 0
            first_error = ""
            latencies = []
            server_before, client_before = backend_cpu(pid), time.thread_time()
            busy_before = machine_busy() if wid == 0 else None
            start = time.perf_counter()
            deadline = start + duration
            now = start
            while now < deadline:
                try:
                    op(s, n)
                    n += 1
                except Exception as exc:  # counted and reported, never hidden
                    s.rollback()
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
                    if errors > 1000:
                        break
                t = time.perf_counter()
                latencies.append(t - now)
                now = t
            elapsed = now - start
            client = time.thread_time() - client_before
            server_after = backend_cpu(pid)
            busy_after = machine_busy() if wid == 0 else None
            busy = (None if busy_before is None or busy_after is None
                    else (busy_after - busy_before) / elapsed)
            server = None if server_before is None or server_after is None else (
                server_after - server_before)
        engine.dispose()
        results.put({"wid": wid, "ops": n, "elapsed": elapsed, "errors": errors,
                     "first_error": first_error, "latencies": latencies,
                     "client_cpu": client, "server_cpu": server, "busy_cores": busy})
    except Exception as exc:
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put({"wid": wid, "ops": 0, "elapsed": 0.0, "errors": 1,
                     "first_error": f"{type(exc).__name__}: {exc}"[:300], "latencies": [],
                     "client_cpu": 0.0, "server_cpu": None, "busy_cores": None})


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def summarise(out: list[dict], duration: float) -> dict:
    """Sum the workers' counts; latency percentiles; CPU per operation, client and server."""
    done = sum(r["ops"] for r in out)
    elapsed = max(r["elapsed"] for r in out) or duration
    latencies = sorted(x for r in out for x in r["latencies"])
    servers = [r["server_cpu"] for r in out]
    return {
        "ops": done, "rate": done / elapsed,
        "p50_ms": 1000 * percentile(latencies, 0.5) if latencies else None,
        "p99_ms": 1000 * percentile(latencies, 0.99) if latencies else None,
        "errors": sum(r["errors"] for r in out),
        "first_error": next((r["first_error"] for r in out if r["first_error"]), ""),
        "client_cpu_ms": 1000 * sum(r["client_cpu"] for r in out) / done if done else None,
        "server_cpu_ms": (1000 * sum(servers) / done
                          if done and all(x is not None for x in servers) else None),
        # Cores the machine was busy during the run, and how many of them were ours (our
        # workers and their PostgreSQL backends): the rest is other work on the machine.
        "busy_cores": next((r["busy_cores"] for r in out if r["busy_cores"] is not None), None),
        "our_cores": (sum(r["client_cpu"] + (r["server_cpu"] or 0.0) for r in out) / elapsed
                      if elapsed else None),
    }


def measure(url: str, scenario: str, n_accounts: int, workers: int, duration: float,
            mode: str) -> dict:
    """Run `workers` workers (processes or threads) on one scenario and sum their rates."""
    tag = f"{scenario}:{mode}:{workers}:{uuid.uuid4().hex[:8]}"
    if mode == "processes":
        ctx = mp.get_context("fork")
        barrier, results = ctx.Barrier(workers), ctx.Queue()
        procs = [ctx.Process(target=worker, args=(url, scenario, n_accounts, duration, w, tag,
                                                  barrier, results)) for w in range(workers)]
    else:
        barrier, results = threading.Barrier(workers), queue.Queue()
        procs = [threading.Thread(target=worker, args=(url, scenario, n_accounts, duration, w,
                                                       tag, barrier, results))
                 for w in range(workers)]
    for p in procs:
        p.start()
    out = [results.get(timeout=duration + 300) for _ in procs]
    for p in procs:
        p.join()
    return {"scenario": scenario, "workers": workers, "mode": mode, **summarise(out, duration)}


def checkpoint(url: str) -> None:
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CHECKPOINT")
    engine.dispose()


# ----------------------------------------------------------------------------- reads


def measure_verify(url: str) -> dict:
    engine = make_engine(url)
    with so.Session(engine) as s:
        pid = s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        server_before, client_before = backend_cpu(pid), time.process_time()
        busy_before = machine_busy()
        started = time.perf_counter()
        report = ledger.verify(s)
        seconds = time.perf_counter() - started
        client, server_after = time.process_time() - client_before, backend_cpu(pid)
        busy_after = machine_busy()
    engine.dispose()
    server = None if server_before is None or server_after is None else (
        server_after - server_before)
    return {"seconds": seconds, "ok": report.ok, "counts": report.counts,
            "violations": [str(v) for v in report.violations[:5]],
            "client_cpu": client, "server_cpu": server,
            "busy_cores": None if busy_before is None or busy_after is None
            else (busy_after - busy_before) / seconds,
            "our_cores": (client + (server or 0.0)) / seconds}


def measure_history(url: str, calls: int) -> dict:
    """Time ledger.history pages of the busy account, each in a fresh session."""
    engine = make_engine(url, pool_size=2)
    with so.Session(engine) as s:
        account = ledger.get_account(s, BUSY)
        ids = s.scalars(sa.text("SELECT id FROM ledger_postings WHERE account_id = :a"),
                        {"a": account.id}).all()
    rng = random.Random(7)
    out = {}
    busy_before, started = machine_busy(), time.perf_counter()
    for name, cursor in (("first", lambda: None), ("deep", lambda: rng.choice(ids))):
        times = []
        for _ in range(20):  # warm-up
            with so.Session(engine) as s:
                ledger.history(s, BUSY, limit=50, before=cursor())
        for _ in range(calls):
            before = cursor()
            with so.Session(engine) as s:
                t = time.perf_counter()
                page = ledger.history(s, BUSY, limit=50, before=before)
                times.append(time.perf_counter() - t)
            assert len(page.entries) == 50 or before is not None
        times.sort()
        out[name] = {"p50_ms": 1000 * statistics.median(times),
                     "p99_ms": 1000 * times[int(len(times) * 0.99)], "calls": calls}
    out["busy_postings"] = len(ids)
    out["calls"] = calls
    busy_after = machine_busy()
    out["busy_cores"] = (None if busy_before is None or busy_after is None
                         else (busy_after - busy_before) / (time.perf_counter() - started))
    engine.dispose()
    return out


# ----------------------------------------------------------------------------- pgbench


def pgbench_command(url: str) -> tuple[list[str], dict]:
    u = sa.make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    exe = shutil.which("pgbench") or "/usr/bin/pgbench"
    return [exe, "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432),
            "-U", u.username or "postgres"], env


def pgbench_init(url: str, dbname: str, scale: int) -> dict:
    """pgbench -i -s `scale` into its own database."""
    command, env = pgbench_command(url)
    started = time.perf_counter()
    subprocess.run([*command, "-i", "-s", str(scale), "-q", dbname], env=env, check=True,
                   capture_output=True, text=True)
    log(f"pgbench -i -s {scale} in {time.perf_counter() - started:.1f} s")
    return {"scale": scale, "init_seconds": time.perf_counter() - started, "tps": {},
            "busy_cores": {}}


def pgbench_run(url: str, dbname: str, clients: int, duration: float, out: dict) -> None:
    """The built-in TPC-B-like script: pgbench -c N -j N -T secs."""
    command, env = pgbench_command(url)
    checkpoint(url)
    busy_before, started = machine_busy(), time.perf_counter()
    run = subprocess.run([*command, "-c", str(clients), "-j", str(clients),
                          "-T", str(max(1, round(duration))), dbname],
                         env=env, check=True, capture_output=True, text=True)
    busy_after = machine_busy()
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", run.stdout)
    if not m:
        raise RuntimeError(f"cannot read pgbench output:\n{run.stdout}\n{run.stderr}")
    out["tps"][clients] = float(m.group(1))
    out["busy_cores"][clients] = (None if busy_before is None or busy_after is None
                                  else (busy_after - busy_before) / (time.perf_counter() - started))
    log(f"pgbench TPC-B -c {clients}: {out['tps'][clients]:.0f} tps")


def run(res: dict, url: str, scenario: str, n_accounts: int, workers: int, duration: float,
        mode: str) -> None:
    checkpoint(url)
    r = measure(url, scenario, n_accounts, workers, duration, mode)
    res["runs"].append(r)
    log(f"{scenario} x{workers} {mode}: {r['rate']:.0f}/s, CPU/op {cpu(r)} ms, "
        f"busy/ours {cores(r)} cores, errors {r['errors']} {r['first_error']}")


# ----------------------------------------------------------------------------- report


def machine(url: str) -> dict:
    engine = make_engine(url)
    with engine.connect() as conn:
        version = conn.scalar(sa.text("SHOW server_version"))
        settings = {k: conn.scalar(sa.text(f"SHOW {k}")) for k in (
            "shared_buffers", "synchronous_commit", "fsync", "max_connections")}
    engine.dispose()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory": mem, "cpu": cpu, "postgresql": version,
            "pg_settings": settings, "python": platform.python_version(),
            "sqlalchemy": sa.__version__, "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def cpu(r: dict) -> str:
    client, server = r.get("client_cpu_ms"), r.get("server_cpu_ms")
    if client is None:
        return ""
    return f"{client:.2f} + {server:.2f}" if server is not None else f"{client:.2f} + ?"


def cores(r: dict) -> str:
    busy, ours = r.get("busy_cores"), r.get("our_cores")
    if busy is None:
        return ""
    return f"{busy:.2f} / {ours:.2f}" if ours is not None else f"{busy:.2f}"


def latency(r: dict) -> str:
    return f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}" if r.get("p50_ms") is not None else ""


def table(res: dict) -> list[list[str]]:
    """The results as rows of text, with the issue's targets and whether each is met."""
    pg = res.get("pgbench", {}).get("tps", {})
    pg_busy = res.get("pgbench", {}).get("busy_cores", {})
    rows = []
    for scenario, label, target in (
        ("random", "transfers/s, random accounts", "random"),
        ("issuance-16", "awards/s, one issuance account, 16 stripes", "issuance-16"),
        ("issuance-1", "awards/s, one issuance account, 1 stripe", None),
        ("holdpost", "hold+post pairs/s", None),
    ):
        for r in res.get("runs", []):
            if r["scenario"] != scenario:
                continue
            base = pg.get(r["workers"])
            ratio = r["rate"] / base if base else None
            tgt = ""
            if target and r["mode"] == res["mode"] and r["workers"] == max(res["workers"]):
                need = TARGETS[target][1]
                tgt = f">= {need} x pgbench" + (f": {verdict(ratio >= need)}" if ratio else "")
            rows.append([f"{label} ({r['mode']})", str(r["workers"]), f"{r['rate']:.0f}",
                         f"{base:.0f}" if base else "", f"{ratio:.2f}" if ratio else "",
                         latency(r), cpu(r), cores(r), str(r["errors"]), tgt])
    for c, tps in pg.items():
        rows.append(["pgbench TPC-B (built-in tpcb-like), pgbench -c N -j N", str(c),
                     f"{tps:.0f}", "", "", "", "", cores({"busy_cores": pg_busy.get(c)}), "",
                     ""])
    if "bulk_load" in res:
        r = res["bulk_load"]
        rows.append([f"bulk load to {r['postings']:,} postings ({r['procs']} processes, COPY)",
                     "", f"{r['seconds']:.1f} s", "", "", "", "", "", "", ""])
    for name, when in (("verify", ""), ("verify_after", ", after the runs")):
        if name in res:
            r = res[name]
            rows.append([f"ledger.verify over {r['counts'].get('postings', 0):,} postings{when} "
                         f"({'clean' if r['ok'] else 'VIOLATIONS'})", "1",
                         f"{r['seconds']:.1f} s", "", "", "",
                         f"{r['client_cpu']:.1f} + {r['server_cpu']:.1f} s in all"
                         if r.get("server_cpu") is not None else "", cores(r), "",
                         f"< 10 s: {verdict(r['seconds'] < 10)}" if name == "verify" else ""])
    if "history" in res:
        r = res["history"]
        for name, what in (("first", "newest page"), ("deep", "random cursor")):
            h = r[name]
            rows.append([f"ledger.history, 50 rows, {what} ({r['busy_postings']:,} postings "
                         f"on the account, {r['calls']} calls)", "1",
                         f"{h['p50_ms']:.2f} ms", "", "", f"{h['p50_ms']:.2f} / {h['p99_ms']:.2f}",
                         "", cores(r), "",
                         f"< 5 ms: median {verdict(h['p50_ms'] < 5)}, "
                         f"p99 {verdict(h['p99_ms'] < 5)}"])
    return rows


HEADER = ["measure", "workers", "result", "pgbench tps", "ours / pgbench",
          "latency p50 / p99 ms", "CPU ms per op, client + server", "busy / ours, cores",
          "errors",
          "target"]


def print_table(res: dict) -> None:
    rows = table(res)
    widths = [max(len(str(x[i])) for x in [HEADER, *rows]) for i in range(len(HEADER))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", required=True, help="PostgreSQL server URL (any database on it)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per throughput measurement (default 10)")
    parser.add_argument("--workers", default="1,4,8", help="worker counts (default 1,4,8)")
    parser.add_argument("--mode", choices=("processes", "threads"), default="processes")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--postings", type=int, default=1_000_000,
                        help="postings in the table for verify and history (default 1e6)")
    parser.add_argument("--load-procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--history-calls", type=int, default=500)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--skip", default="",
                        help="comma list of: load,random,issuance,holdpost,threads,pgbench")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    skip = set(filter(None, args.skip.split(",")))

    server = sa.make_url(sqlalchemy_url(args.pg))
    suffix = uuid.uuid4().hex[:10]
    name, pgb_name = f"bench_{suffix}", f"bench_{suffix}_pgbench"
    url = server.set(database=name).render_as_string(hide_password=False)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    res: dict = {"mode": args.mode, "workers": workers, "runs": [], "database": name}
    created: list[str] = []
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            created.append(name)
        log(f"created database {name}; building the schema with the migrations")
        build_schema(url)
        res["machine"] = machine(url)
        res["load_at_start"] = os.getloadavg()[0]
        started = time.perf_counter()
        engine = make_engine(url)
        open_accounts(engine, args.accounts)
        engine.dispose()
        res["setup_seconds"] = time.perf_counter() - started
        log(f"opened and funded {args.accounts} accounts in {res['setup_seconds']:.1f} s")

        if "load" not in skip:
            res["bulk_load"] = bulk_load(url, args.postings, args.load_procs)
            log(f"bulk load: {res['bulk_load']}")
            res["verify"] = measure_verify(url)
            log(f"verify: {res['verify']['seconds']:.2f} s ok={res['verify']['ok']} "
                f"{res['verify']['counts']} {res['verify']['violations']}")
            res["history"] = measure_history(url, args.history_calls)
            log(f"history: {res['history']}")

        scenarios = [name for name, part in (
            ("random", "random"), ("issuance-16", "issuance"), ("issuance-1", "issuance"),
            ("holdpost", "holdpost")) if part not in skip]
        if "pgbench" not in skip:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{pgb_name}"')
                created.append(pgb_name)
            res["pgbench"] = pgbench_init(url, pgb_name, args.pgbench_scale)
        # Other work on the machine comes and goes: run pgbench and ours for one client count
        # back to back, so that each ratio compares runs made minutes apart at most.
        for w in workers:
            if "pgbench" not in skip:
                pgbench_run(url, pgb_name, w, args.duration, res["pgbench"])
            for scenario in scenarios:
                run(res, url, scenario, args.accounts, w, args.duration, args.mode)
        if "random" not in skip and "threads" not in skip:
            other = "threads" if args.mode == "processes" else "processes"
            run(res, url, "random", args.accounts, max(workers), args.duration, other)

        if res["runs"] and "load" not in skip:
            res["verify_after"] = measure_verify(url)
            log(f"verify after the runs: {res['verify_after']['seconds']:.2f} s "
                f"ok={res['verify_after']['ok']} {res['verify_after']['violations']}")

    finally:
        with admin.connect() as conn:
            for db in reversed(created):
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.dispose()
        log(f"dropped {', '.join(created) or 'nothing'}")

    m = res["machine"]
    print(f"\nmachine: {m['nproc']} cores ({m['cpu']}), {m['memory']}, PostgreSQL "
          f"{m['postgresql']} {m['pg_settings']}, Python {m['python']}, SQLAlchemy "
          f"{m['sqlalchemy']}, {m['date']}")
    print(f"workers are {args.mode}; {args.duration:g} s per throughput run; "
          f"{args.accounts:,} funded volunteer accounts; load average at the start "
          f"{res['load_at_start']:.1f}\n")
    print_table(res)
    if "verify_after" in res:
        print(f"\nverify after all runs: {'clean' if res['verify_after']['ok'] else 'VIOLATIONS'}"
              f", {res['verify_after']['counts']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
