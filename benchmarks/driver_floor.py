"""The floor under a Python transfer: the ledger's work per transfer in bare psycopg.

    .venv/bin/python benchmarks/driver_floor.py --pg postgresql://postgres@127.0.0.1:5432/test

Prints numbers, asserts nothing. On the given server it creates a database of its own
(bench_floor_<random>, dropped at the end) with three plain tables shaped like the ledger's
(accounts with a cached balance and chain head, transactions with a unique key, postings),
and times, in one process, what `ledger.transfer` does for a transfer between two random
accounts of 10,000, with no SQLAlchemy, no ORM and prepared statements:

    SELECT the two accounts FOR NO KEY UPDATE (in id order) and whether the key is taken;
    INSERT the transaction ... ON CONFLICT DO NOTHING RETURNING id;
    UPDATE both balances in one statement; INSERT both postings in one statement;
    two SHA-256 chain hashes and a request hash; COMMIT.

The client CPU per transfer is the least any Python ledger client pays for that work on
this machine; against pgbench's C client on the same cores it bounds what `ledger.transfer`
could reach by dropping SQLAlchemy from its hot path (see benchmarks/README.md).
"""

import argparse
import hashlib
import json
import random
import time
import uuid

import psycopg

SCHEMA = [
    "CREATE TABLE acc (id bigserial PRIMARY KEY, address text UNIQUE, posted bigint,"
    " seq bigint, head text)",
    "CREATE TABLE tx (id bigserial PRIMARY KEY, key text UNIQUE, kind text, meta json,"
    " created_at timestamp, hash text)",
    "CREATE TABLE post (id bigserial PRIMARY KEY, tx_id bigint REFERENCES tx,"
    " acc_id bigint REFERENCES acc, amount bigint, seq bigint, after bigint, hash text,"
    " UNIQUE (acc_id, seq))",
]
LOCK = ("SELECT id, address, posted, seq, head, (SELECT id FROM tx WHERE key = %s)"
        " FROM acc WHERE address = ANY(%s) ORDER BY acc.id FOR NO KEY UPDATE")
INSERT_TX = ("INSERT INTO tx (key, kind, meta, created_at, hash) VALUES (%s, %s, %s, now(), %s)"
             " ON CONFLICT DO NOTHING RETURNING id")
UPDATE = ("UPDATE acc SET posted = v.p, seq = v.s, head = v.h FROM (VALUES"
          " (%s::bigint, %s::bigint, %s::bigint, %s), (%s::bigint, %s::bigint, %s::bigint, %s))"
          " AS v (i, p, s, h) WHERE acc.id = v.i")
INSERT_POSTINGS = ("INSERT INTO post (tx_id, acc_id, amount, seq, after, hash) VALUES"
                   " (%s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s)")


def run(url: str, transfers: int, accounts: int) -> None:
    conn = psycopg.connect(url)
    cur = conn.cursor()
    for statement in SCHEMA:
        cur.execute(statement)
    cur.executemany("INSERT INTO acc (address, posted, seq, head) VALUES (%s, 1000, 0, '')",
                    [(f"v{i}",) for i in range(accounts)])
    conn.commit()

    def transfer() -> None:
        a, b = random.sample(range(accounts), 2)
        key = uuid.uuid4().hex
        rows = cur.execute(LOCK, (key, [f"v{a}", f"v{b}"]), prepare=True).fetchall()
        seal = hashlib.sha256(json.dumps({"legs": [[f"v{a}", -1], [f"v{b}", 1]], "key": key},
                                         sort_keys=True).encode()).hexdigest()
        tx_id = cur.execute(INSERT_TX, (key, "gift", "{}", seal), prepare=True).fetchone()[0]
        balances, postings = [], []
        for account_id, address, posted, seq, head, _taken in rows:
            amount = -1 if address == f"v{a}" else 1
            digest = hashlib.sha256(f"{head}|{account_id}|{seq + 1}|{tx_id}|{seal}|{amount}|"
                                    f"{posted + amount}".encode()).hexdigest()
            balances += [account_id, posted + amount, seq + 1, digest]
            postings += [tx_id, account_id, amount, seq + 1, posted + amount, digest]
        cur.execute(UPDATE, balances, prepare=True)
        cur.execute(INSERT_POSTINGS, postings, prepare=True)
        conn.commit()

    for _ in range(200):
        transfer()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(transfers):
        transfer()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    print(f"bare psycopg transfer, one process: client CPU {1000 * cpu / transfers:.3f} ms, "
          f"wall {1000 * wall / transfers:.3f} ms, {transfers / wall:.0f}/s "
          f"({transfers} transfers between {accounts:,} accounts)")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="any database on the server")
    parser.add_argument("--transfers", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    name = f"bench_floor_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.pg, autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    try:
        run(args.pg.rsplit("/", 1)[0] + f"/{name}", args.transfers, args.accounts)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
