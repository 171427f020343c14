"""Out of file descriptors (reliability.md L-25): with RLIMIT_NOFILE lowered
under it, Atrium keeps serving the connections it has, logs EMFILE at most
once a second per listener, does not spin on the listener, and accepts again
as soon as descriptors are free."""

import collections
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import Conn, get, open_fds, wait_until


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])        # utime + stime


def fd_kinds(pid):
    """How many descriptors of each kind (socket, pipe, /dev/null, file) pid has open."""
    return dict(collections.Counter(
        t.split(":[")[0] if ":[" in t or t.startswith("/dev/") else "file"
        for t in open_fds(pid).values()))


@pytest.mark.parametrize("workers", [1, 2])
def test_emfile_no_spin_and_recovery(atrium, workers):
    # With two workers the fd table is shared: a descriptor one worker gives up
    # to shed its waiting clients can be taken by the other's accept, and the
    # first then has nothing to shed and nothing to reserve (it used to spin).
    a = atrium('workers %d;\nhost * { route / { return 200 "ok"; } }' % workers)
    with Conn(a.port) as held:                           # established before the limit
        assert held.request("GET", "/").status == 200
        nfds = len(open_fds(a.pid))
        limit = nfds + 6
        subprocess.run(["prlimit", "--pid", str(a.pid), "--nofile=%d:%d" % (limit, limit)],
                       check=True)
        flood = []
        lock = threading.Lock()

        def connect_some(n):
            for _ in range(n):
                s = socket.socket()
                s.settimeout(5)
                try:
                    s.connect(("127.0.0.1", a.port))
                except OSError:
                    s.close()
                    continue
                with lock:
                    flood.append(s)
        try:
            threads = [threading.Thread(target=connect_some, args=(30,)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert wait_until(lambda: "Too many open files" in a.error_log, 5.0), \
                a.error_log[-2000:]
            # Saturated: nothing may spin. A busy accept loop would burn a whole CPU.
            t0, c0 = time.monotonic(), cpu_ticks(a.pid)
            time.sleep(2.0)
            used = (cpu_ticks(a.pid) - c0) / os.sysconf("SC_CLK_TCK")
            assert used < 0.5 * (time.monotonic() - t0), "%.2f s of CPU in 2 s" % used
            lines = a.error_log.count("Too many open files")
            assert lines <= 6, "EMFILE logged %d times" % lines
            # What was established keeps working.
            assert held.request("GET", "/").status == 200
        finally:
            for s in flood:
                s.close()
    # Descriptors come back: every connection is closed (the listeners are the only
    # sockets left), and no spare is leaked: /dev/null is at most stdin and, per worker,
    # Atrium's spare and the one libuv opens for its loop at the first connection. (A
    # count taken before the flood is no baseline: a worker's loop may meet its first
    # connection, or with a loaded host even adopt its listener, only during the flood.)
    def recovered():
        k = fd_kinds(a.pid)
        return k.get("socket", 0) == workers and k.get("/dev/null", 0) <= 1 + 2 * workers
    assert wait_until(recovered, 10.0), fd_kinds(a.pid)
    time.sleep(0.3)                                   # a paused listener polls again
    assert get(a.port, "/").status == 200
    assert a.alive()


def test_max_connections_queues_the_rest_in_the_backlog(atrium):
    """At max_connections a worker stops accepting: further clients wait in the
    listen backlog (not refused, not sharing descriptors the proxied requests
    need) and are taken as soon as a connection closes."""
    a = atrium('max_connections 3;\nhost * { route / { return 200 "ok"; } }')
    idle = [socket.create_connection(("127.0.0.1", a.port), timeout=5) for _ in range(3)]
    try:
        assert wait_until(lambda: "max_connections (3) reached" in a.error_log or
                          len(idle) == 3, 2.0)
        waiting = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        waiting.settimeout(1.0)
        try:
            early = waiting.recv(100)
        except socket.timeout:
            early = None
        assert early is None, "a fourth connection was served: %r" % early
        assert "max_connections (3) reached" in a.error_log
        idle.pop().close()                            # a slot frees: the waiting one goes
        waiting.settimeout(5.0)
        assert waiting.recv(100).startswith(b"HTTP/1.1 200")
        waiting.close()
    finally:
        for s in idle:
            s.close()
    assert get(a.port, "/").status == 200


def test_listener_added_while_at_max_connections_does_not_spin(atrium):
    """A reload that adds a listener while the worker is at max_connections: the new
    listener waits like the others (it polled on, found the worker full each time,
    and spun)."""
    from conftest import free_port
    second = free_port()
    conf = 'max_connections 1;\nhost * { route / { return 200 "ok"; } }'
    a = atrium(conf)
    held = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    try:
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # accepted: the worker is full
        assert held.recv(100).startswith(b"HTTP/1.1 200")
        a.reload("listen 127.0.0.1:{{port}};\nlisten 127.0.0.1:%d;\n%s" % (second, conf))
        waiting = socket.create_connection(("127.0.0.1", second), timeout=5)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)
        c0 = cpu_ticks(a.pid)
        time.sleep(1.5)
        used = (cpu_ticks(a.pid) - c0) / os.sysconf("SC_CLK_TCK")
        assert used < 0.5, "%.2f s of CPU in 1.5 s while waiting" % used
        held.close()                                  # the slot frees: it is served
        waiting.settimeout(5.0)
        assert waiting.recv(100).startswith(b"HTTP/1.1 200")
        waiting.close()
    finally:
        held.close()


def test_memory_of_a_connection_flood_is_given_back(atrium):
    """Connection structs come from slab chunks; once a flood of connections has
    gone, the chunks it filled go back to the kernel (they used to stay mapped
    for good: about 56 MB after 100k connections)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = 4000
    if hard != resource.RLIM_INFINITY and hard < n + 200:
        pytest.skip("RLIMIT_NOFILE hard limit %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 200), hard))
    a = atrium('workers 1;\nmax_connections 10000;\nkeepalive_timeout 60s;\n'
               'host * { route / { return 200 "ok"; } }')
    if a.sanitized():
        pytest.skip("AddressSanitizer's allocator holds freed memory")
    assert get(a.port, "/").status == 200
    time.sleep(1.2)                                      # past the idle tick's trim
    base = a.rss_kb()
    flood = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            flood.append(s)
        req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        for s in flood:                                  # every one accepted and answered
            s.sendall(req)
        for s in flood:
            got = b""
            while not got.endswith(b"ok"):
                chunk = s.recv(4096)
                assert chunk, "connection closed early"
                got += chunk
        peak = a.rss_kb()
        assert peak - base > 1024, (base, peak)          # the flood did cost memory
    finally:
        for s in flood:
            s.close()
    given_back = lambda: a.rss_kb() - base < (peak - base) / 4
    assert wait_until(given_back, 5.0), (base, peak, a.rss_kb())
    assert get(a.port, "/").status == 200
