"""Out of file descriptors (reliability.md L-25): with RLIMIT_NOFILE lowered
under it, Atrium keeps serving the connections it has, logs EMFILE at most
once a second per listener, does not spin on the listener, and accepts again
as soon as descriptors are free."""

import os
import socket
import subprocess
import time

from conftest import Conn, get, wait_until


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])        # utime + stime


def test_emfile_no_spin_and_recovery(atrium):
    a = atrium('host * { route / { return 200 "ok"; } }')
    with Conn(a.port) as held:                           # established before the limit
        assert held.request("GET", "/").status == 200
        nfds = len(os.listdir("/proc/%d/fd" % a.pid))
        limit = nfds + 8
        subprocess.run(["prlimit", "--pid", str(a.pid), "--nofile=%d:%d" % (limit, limit)],
                       check=True)
        flood = []
        try:
            for _ in range(40):
                s = socket.socket()
                s.settimeout(5)
                s.connect(("127.0.0.1", a.port))
                flood.append(s)
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
    # Descriptors come back: new connections are served again.
    assert wait_until(lambda: len(os.listdir("/proc/%d/fd" % a.pid)) < limit - 2, 10.0)
    assert get(a.port, "/").status == 200
    assert a.alive()
