"""Signals: SIGTERM drains gracefully (bounded by drain_timeout), SIGUSR1
reopens log files."""

import os
import signal
import socket
import time

from conftest import Background, Conn, get, port_open, proxy_conf, run_atrium, wait_until


def status_or_error(port, path):
    try:
        return get(port, path).status
    except (OSError, ValueError) as e:
        return type(e).__name__


def connect_refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def stop_while_holding(a, o, ms, fetch=get, settle=0.0):
    """A request the origin holds for ms, then SIGTERM while it is in flight;
    returns the request's Background."""
    held = Background(fetch, a.port, "/hold?ms=%d" % ms)
    assert wait_until(lambda: o.stats()["inflight"] == 1, 10.0)
    time.sleep(settle)
    a.send_signal(signal.SIGTERM)
    a.stopped = True
    return held


def test_graceful_stop_finishes_inflight(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="drain_timeout 30s;"))
    held = stop_while_holding(a, o, 2000, settle=0.3)
    # the listener closes at once: new connections are refused while the
    # held request is still running
    assert wait_until(lambda: connect_refused(a.port), 1.2), "listener still open after SIGTERM"
    assert o.stats()["inflight"] == 1, "the held request ended too early"
    r = held.result(10)
    assert (r.status, r.text()) == (200, "held 2000 A")
    assert a.proc.wait(10) == 0


def test_sighup_and_sigusr1_while_draining_do_not_kill(atrium, origin):
    """A reload or a logrotate SIGUSR1 that comes during a graceful stop is handled
    (caught and dropped), not the default action: the process used to die and cut
    the request in flight."""
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="drain_timeout 30s;"))
    held = stop_while_holding(a, o, 1500)
    time.sleep(0.2)
    a.send_signal(signal.SIGHUP)
    a.send_signal(signal.SIGUSR1)
    r = held.result(10)
    assert (r.status, r.text()) == (200, "held 1500 A")
    assert a.proc.wait(10) == 0


def test_graceful_stop_closes_idle_keepalive(atrium, origin):
    """Idle keep-alive connections do not hold up the exit."""
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="drain_timeout 30s; keepalive_timeout 60s;"))
    with Conn(a.port) as c:
        assert c.request("GET", "/name").status == 200
        a.send_signal(signal.SIGTERM)
        a.stopped = True
        assert c.closed_by_peer(timeout=5.0), "idle keep-alive connection kept open"
    assert a.proc.wait(5) == 0


def test_drain_timeout_bounds_stop(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="drain_timeout 1s;"))
    held = stop_while_holding(a, o, 8000, fetch=status_or_error)
    rc = a.proc.wait(6)           # well before the held request could finish
    assert rc == 0
    assert held.result(10) != 200


def test_sigusr1_reopens_access_log(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log combined;"))
    log = a.dir / "access.log"
    assert get(a.port, "/name?first").status == 200
    assert wait_until(lambda: log.exists() and "/name?first" in log.read_text(), 10.0)
    rotated = a.dir / "access.log.1"
    os.rename(log, rotated)
    a.send_signal(signal.SIGUSR1)

    def reopened():
        assert get(a.port, "/name?second").status == 200
        return log.exists() and "/name?second" in log.read_text()
    assert wait_until(reopened, 10.0, interval=0.1), "no new access.log after SIGUSR1"
    assert "/name?first" in rotated.read_text()
    assert "/name?first" not in log.read_text()
    assert a.alive()


def test_sigusr1_reopens_error_log(atrium):
    a = atrium('host * { route / { return 200 "x"; } }')
    rotated = a.dir / "error.log.1"
    os.rename(a.error_log_path, rotated)
    a.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: a.error_log_path.exists(), 10.0, interval=0.1), \
        "no new error.log after SIGUSR1"
    assert get(a.port, "/").status == 200
    assert a.alive()


def test_signals_handled_as_soon_as_listening(atrium):
    """A signal sent the moment the port accepts must be handled, not kill the
    process (handlers are installed before listeners accept)."""
    for sig in [signal.SIGHUP, signal.SIGUSR1] * 5:
        a = atrium('host * { route / { return 200 "x"; } }', wait_started=False)
        a.send_signal(sig)
        time.sleep(0.15)
        assert a.alive(), "signal %d right after start killed atrium (exit %s)" % (
            sig, a.proc.returncode)
        assert get(a.port, "/").status == 200
        assert a.stop() == 0


def test_sigterm_with_no_traffic_exits_0(atrium):
    a = atrium('host * { route / { return 200 "x"; } }')
    assert get(a.port, "/").status == 200
    assert a.stop(signal.SIGTERM, timeout=5) == 0
    assert not port_open(a.port)


def test_sigusr1_reopen_failure_is_reported(atrium):
    """When the error log cannot be reopened (its directory is gone), Atrium says so
    on stderr and keeps running (the failure was silent)."""
    import shutil
    logdir = atrium.base / "logs"
    logdir.mkdir()
    a = atrium("error_log %s/error.log info;\nhost * { route / { return 204; } }" % logdir)
    shutil.rmtree(logdir)
    a.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: "error_log: reopen failed" in a.stderr, 10.0), a.stderr
    assert get(a.port, "/").status == 204


def test_a_second_atrium_on_the_same_address_refuses_to_start(atrium, tmp_path):
    """SO_REUSEPORT would let a second process in beside the first and split
    the traffic silently: a start refuses an address another process listens
    on (once, with FILE:LINE:COL), -t warns, and the first keeps serving and
    still reloads."""
    first = atrium('host * { route / { return 200 "first"; } }')
    second = tmp_path / "second.conf"
    second.write_text("listen 127.0.0.1:%d;\nhost * { route / { return 200 \"second\"; } }\n"
                      % first.port)
    r = run_atrium(["-c", str(second)])
    assert r.returncode == 1, r
    msg = "second.conf:1:1: cannot listen on 127.0.0.1:%d: another process listens there" % first.port
    assert r.stderr.count(msg) == 1, r.stderr  # printed once
    r = run_atrium(["-t", "-c", str(second)])
    assert r.returncode == 0 and "warning: another process listens on" in r.stderr, r
    assert {get(first.port, "/").body for _ in range(20)} == {b"first"}
    assert first.reload()
    assert get(first.port, "/").body == b"first"


def test_started_comes_after_every_worker_listens(atrium):
    a = atrium('workers 4;\nhost * { route / { return 200 "ok"; } }')
    log = a.error_log
    started = log.index(" started: 4 worker(s)")
    for w in range(1, 5):
        assert 0 <= log.index("w%d: generation 1 active" % w) < started, log


def test_dash_s_signals_the_running_process(atrium, tmp_path):
    """atrium -s reload|reopen|stop, as nginx -s: the pid comes from the config's
    pid_file."""
    a = atrium('pid_file {{dir}}/atrium.pid;\nhost * { route / { return 200 "ok"; } }')
    assert wait_until(lambda: (a.dir / "atrium.pid").exists(), 5)
    conf = str(a.conf_path)
    assert run_atrium(["-s", "reload", "-c", conf]).returncode == 0
    assert wait_until(lambda: "reload: generation 2 active" in a.error_log, 5), a.error_log
    assert run_atrium(["-s", "reopen", "-c", conf]).returncode == 0
    assert get(a.port, "/").body == b"ok"
    r = run_atrium(["-s", "bogus", "-c", conf])
    assert r.returncode == 2 and "expected reload, stop or reopen" in r.stderr
    assert run_atrium(["-s", "stop", "-c", conf]).returncode == 0
    a.proc.wait(15)
    a.stopped = True
    assert a.proc.returncode == 0
    r = run_atrium(["-s", "reload", "-c", conf])
    assert r.returncode == 1, r  # nobody there any more (the pid_file went with it)
