"""Spreadsheet bombs against every upload: prints seconds and peak memory, asserts nothing.

    .venv/bin/python benchmarks/upload_bombs.py [--timeout 60] [--memory-limit-mb 3000]

Builds a SQLite database with the app's migrations in a temporary folder (one community),
then runs each bomb of tests/exports/bombs.py (and, for scale, a plain sheet of 10,000 rows of 8
columns) through each upload, the volunteer import (importer.import_volunteers) and the
sign-in sheet (sheets.read_sign_in_sheet), each in a subprocess of its own that loads the
app as a worker does. It prints the call's wall time, the process's peak RSS
(getrusage ru_maxrss) before the call (the app loaded, the bomb built) and after it, and how
the call ended. A call still running after --timeout seconds is killed; the subprocess's
address space is capped at --memory-limit-mb so that a bomb cannot take the machine.

To measure the code before a change, run it from a copy of that commit, without the
editable install of this one (-S skips site-packages' .pth files, so name them by hand):
    git archive <commit> | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:.venv/lib/python3.11/site-packages \
        .venv/bin/python -S benchmarks/upload_bombs.py
"""

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "exports"))

import bombs  # noqa: E402

UPLOADS = ("volunteer import", "sign-in sheet")


def plain_sheet(rows: int = 10_000) -> tuple[str, bytes]:
    """A sheet of `rows` volunteers and three more columns, as a staff member might send."""
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append([*bombs.HEADER, "备注", "楼栋", "签到"])
    for n in range(rows):
        sheet.append([f"志愿者{n}", 13900000000 + n, "1栋", "2024-03-01", "是", "x", "y", "z"])
    buffer = io.BytesIO()
    book.save(buffer)
    return "plain.xlsx", buffer.getvalue()


FILES = {**{name: build for name, (build, _reason) in bombs.BOMBS.items()},
         # The most nodes a part may have (uploads.MAX_NODES), in a styles part (refused
         # since TREE_PART_NODES) and in a part that names itself a sheet: what a tree costs.
         "styles of 790,000 nodes": lambda: bombs.node_bomb(790_000),
         "styles of 79,000 nodes (ref.)": lambda: bombs.node_bomb(79_000),
         "sheet of 790,000 nodes (ref.)": lambda: bombs.node_bomb(790_000, bombs.SHEET),
         "plain 10,000 x 8 (reference)": plain_sheet}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, upload: str, file: str, memory_limit_mb: int) -> None:
    """Run one upload of one file in this process; print a JSON line of what it cost."""
    limit = memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from werkzeug.datastructures import FileStorage

    from pointsmall import create_app
    from pointsmall.earning import sheets
    from pointsmall.extensions import db
    from pointsmall.people import importer

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "TESTING": True})
    with app.test_request_context("/"):
        name, data = FILES[file]()
        before = peak_mb()
        wall = time.perf_counter()
        try:
            if upload == "volunteer import":
                importer.import_volunteers(db.session, 1, name, data)
            else:
                sheets.read_sign_in_sheet(db.session, 1, FileStorage(io.BytesIO(data),
                                                                     filename=name))
            outcome = "accepted"
        except MemoryError:
            outcome = "MemoryError"
        except Exception as error:  # what the page would answer
            message = getattr(error, "message", "") or str(error)
            errors = getattr(error, "errors", None) or {}
            outcome = f"{type(error).__name__}: {message} {list(errors.values())[:1]}"[:110]
        wall = time.perf_counter() - wall
        db.session.rollback()
    print(json.dumps({"seconds": wall, "before_mb": before, "peak_mb": peak_mb(),
                      "bytes": len(data), "outcome": outcome}))


def build_database(folder: str) -> str:
    from flask_migrate import upgrade

    from pointsmall import create_app
    from pointsmall.extensions import db
    from pointsmall.people import communities

    url = f"sqlite:///{folder}/bombs.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        community = communities.create_community(db.session, "基准社区")
        communities.create_grid(db.session, community.id, "一网格")
        db.session.commit()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--memory-limit-mb", type=int, default=3000)
    parser.add_argument("--child", nargs=3, metavar=("URL", "UPLOAD", "FILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.memory_limit_mb)
        return
    import pointsmall

    print(f"code: {Path(pointsmall.__file__).parent}")
    print(f"{'file':30} {'upload':17} {'KB':>7} {'seconds':>8} {'RSS before':>10} "
          f"{'peak RSS':>9}  outcome")
    with tempfile.TemporaryDirectory() as folder:
        url = build_database(folder)
        for file in FILES:
            for upload in UPLOADS:
                command = [sys.executable, *(["-S"] if sys.flags.no_site else []), __file__,
                           "--memory-limit-mb", str(args.memory_limit_mb), "--child", url,
                           upload, file]
                try:
                    done = subprocess.run(command, capture_output=True, text=True,
                                          timeout=args.timeout, check=False)
                except subprocess.TimeoutExpired:
                    print(f"{file:30} {upload:17} {'':>7} {'>' + str(int(args.timeout)):>8} "
                          f"{'':>10} {'':>9}  killed after {args.timeout:.0f} s")
                    continue
                lines = done.stdout.strip().splitlines()
                if done.returncode or not lines:
                    tail = (done.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"{file:30} {upload:17} crashed: {tail[:90]}")
                    continue
                got = json.loads(lines[-1])
                print(f"{file:30} {upload:17} {got['bytes'] / 1024:7.1f} "
                      f"{got['seconds']:8.3f} {got['before_mb']:10.0f} {got['peak_mb']:9.0f}"
                      f"  {got['outcome']}")


if __name__ == "__main__":
    main()
