"""WSGI app for the SCGI tests (run by uWSGI with --scgi-socket).

  .../respond?status=201+Created  -> that status, X-App: wsgi, two Set-Cookie fields
  .../big?n=BLOCKS                -> BLOCKS blocks of 65536 bytes (block k = b"%08d" % k + 65528
                                     x b"x"), no Content-Length, one write per block
  .../hold?gate=NAME              -> waits (at most 10 s) until $GW_STATE_DIR/gate-NAME exists;
                                     $GW_STATE_DIR/inflight-NAME exists while it waits
  anything else                   -> JSON: a subset of environ, every HTTP_* variable,
                                     and the request body's length and SHA-256
"""

import hashlib
import json
import os
import time
from urllib.parse import parse_qs

STATE_DIR = os.environ.get("GW_STATE_DIR", "/tmp")
KEYS = ("PATH_INFO", "SCRIPT_NAME", "QUERY_STRING", "REQUEST_METHOD", "CONTENT_LENGTH",
        "CONTENT_TYPE", "REQUEST_URI", "SERVER_PROTOCOL", "REMOTE_ADDR", "SERVER_PORT",
        "SERVER_NAME", "SCGI", "GATEWAY_INTERFACE")


def read_body(environ):
    h = hashlib.sha256()
    n = 0
    try:
        left = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        left = 0
    inp = environ["wsgi.input"]
    while left > 0:
        d = inp.read(min(left, 1 << 20))
        if not d:
            break
        n += len(d)
        left -= len(d)
        h.update(d)
    return n, h.hexdigest()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = parse_qs(environ.get("QUERY_STRING", ""))
    n, digest = read_body(environ)

    if path.endswith("/respond"):
        status = q.get("status", ["200 OK"])[0]
        start_response(status, [("Content-Type", "text/plain"), ("X-App", "wsgi"),
                                ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2; Path=/py/")])
        return [b"responded " + status.encode("latin-1")]

    if path.endswith("/big"):
        blocks = int(q.get("n", ["1"])[0])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        tail = b"x" * 65528
        return (b"%08d" % k + tail for k in range(blocks))

    gated = None
    if path.endswith("/hold"):
        name = os.path.basename(q.get("gate", ["g"])[0])
        flag = os.path.join(STATE_DIR, "inflight-" + name)
        open(flag, "w").close()
        gate = os.path.join(STATE_DIR, "gate-" + name)
        end = time.monotonic() + 10
        while not os.path.exists(gate) and time.monotonic() < end:
            time.sleep(0.02)
        gated = os.path.exists(gate)
        os.unlink(flag)

    doc = {
        "environ": {k: environ[k] for k in KEYS if k in environ},
        "http": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "body_len": n,
        "body_sha256": digest,
        "gated": gated,
        "pid": os.getpid(),
    }
    out = json.dumps(doc).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]
