#!/usr/bin/python3
"""A small, strict HTTP/1.1 origin server for Atrium's integration tests.

    origin.py --port P [--name NAME] [--host 127.0.0.1]

Stdlib only (asyncio). Every response carries `X-Origin: NAME`. Request bodies
are streamed and hashed incrementally, never held in memory.

Endpoints
  GET  / , /name              200, body NAME
  GET|POST /echo, /echo/...   200, JSON: method, target, path, query, version,
                              request_line, headers ([name, value] as received,
                              in order), framing ("none"|"length"|"chunked"),
                              body_len, body_sha256, chunk_exts, trailers
  POST /sha256                200, body = hex sha256 of the body, X-Body-Len
  GET  /bytes?n=N&seed=S      N deterministic bytes (see gen_blocks), 64 KiB writes
                              with backpressure; &chunked=1 for chunked framing
  GET  /hold?ms=M             waits M ms, then 200
  GET  /status/CODE           that status, short body
  GET  /resp-headers?K=V&...  200 with the given response headers added
  GET  /conns                 connections that carried a non-control request
  GET  /reqs                  non-control requests whose head was read
  GET  /stats                 JSON of all counters (accepted, conns, reqs,
                              inflight, max_inflight, bad_requests)
  GET  /bad/<kind>            deliberately broken responses (see BAD)
  GET  /early-hints           103 Early Hints, then 200 "after-103"
  GET  /ws                    RFC 6455 echo server (Upgrade: websocket)

Control endpoints (/conns, /reqs, /stats) are not counted themselves, so tests
can query them directly without disturbing the numbers.

The request parser is strict (what Atrium must send is canonical HTTP/1.1):
anything malformed gets `400` with `X-Origin-Error: <reason>` and a close, and
is counted in `bad_requests`.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import re
import signal
import struct
import sys
import urllib.parse

BLOCK = 64 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
CONTROL = {"/conns", "/reqs", "/stats"}
REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created",
    204: "No Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    413: "Content Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


# ---------------------------------------------------------------- byte streams
# Shared with the tests (they import this module), so both sides agree.

def base_block(seed):
    """64 KiB of pseudo-random bytes derived from seed (a sha256 chain)."""
    out = bytearray()
    h = hashlib.sha256(b"atrium-bytes:" + str(seed).encode()).digest()
    while len(out) < BLOCK:
        out += h
        h = hashlib.sha256(h).digest()
    return bytes(out[:BLOCK])


def gen_blocks(n, seed="0"):
    """Yield the n-byte stream of /bytes?n=N&seed=S in pieces of at most 64 KiB.

    Block k is the seed's base block with its first 8 bytes replaced by k
    (big endian), so a dropped, repeated or reordered block changes the hash.
    """
    tail = base_block(seed)[8:]
    k = 0
    left = n
    while left > 0:
        blk = struct.pack(">Q", k) + tail
        if left < BLOCK:
            blk = blk[:left]
        yield blk
        left -= len(blk)
        k += 1


def bytes_sha256(n, seed="0"):
    h = hashlib.sha256()
    for blk in gen_blocks(n, seed):
        h.update(blk)
    return h.hexdigest()


# ---------------------------------------------------------------- parsing

class BadRequest(Exception):
    pass


class Request:
    def __init__(self):
        self.method = self.target = self.version = self.request_line = ""
        self.path = "/"
        self.query = {}
        self.headers = []          # [(name, value)] as received
        self.framing = "none"      # none | length | chunked
        self.length = 0
        self.chunk_exts = []
        self.trailers = []
        self.body_read = False

    def get(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def tokens(self, name):
        out = []
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out


async def read_line(reader):
    """One CRLF-terminated line without the CRLF. A bare LF is an error."""
    line = await reader.readuntil(b"\n")
    if not line.endswith(b"\r\n"):
        raise BadRequest("bare LF")
    line = line[:-2]
    if b"\r" in line:
        raise BadRequest("bare CR")
    if b"\0" in line:
        raise BadRequest("NUL")
    return line


async def read_head(reader):
    """Parse a request head; None on a clean EOF before any byte."""
    try:
        first = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise BadRequest("truncated request line")
    if not first.endswith(b"\r\n") or b"\r" in first[:-2] or b"\0" in first:
        raise BadRequest("bad request line ending")
    req = Request()
    parts = first[:-2].split(b" ")
    if len(parts) != 3 or not all(parts):
        raise BadRequest("request line is not METHOD SP target SP version")
    if not TOKEN_RE.match(parts[0]):
        raise BadRequest("bad method")
    if not re.match(rb"^HTTP/1\.[01]$", parts[2]):
        raise BadRequest("bad version")
    req.request_line = first[:-2].decode("latin-1")
    req.method, req.target, req.version = (p.decode("latin-1") for p in parts)
    u = urllib.parse.urlsplit(req.target)
    req.path = u.path or "/"
    req.query = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    while True:
        line = await read_line(reader)
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            raise BadRequest("obs-fold")
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN_RE.match(name):
            raise BadRequest("bad header name %r" % name[:40])
        req.headers.append((name.decode("latin-1"),
                            value.strip(b" \t").decode("latin-1")))
    cls = [v for k, v in req.headers if k.lower() == "content-length"]
    tes = [v for k, v in req.headers if k.lower() == "transfer-encoding"]
    hosts = [v for k, v in req.headers if k.lower() == "host"]
    if req.version == "HTTP/1.1" and len(hosts) != 1:
        raise BadRequest("need exactly one Host")
    if cls and tes:
        raise BadRequest("both Content-Length and Transfer-Encoding")
    if len(cls) > 1:
        raise BadRequest("several Content-Length")
    if tes:
        if len(tes) > 1 or tes[0].lower() != "chunked":
            raise BadRequest("Transfer-Encoding is not exactly chunked")
        req.framing = "chunked"
    elif cls:
        if not re.match(r"^[0-9]{1,18}$", cls[0]):
            raise BadRequest("bad Content-Length")
        req.framing = "length"
        req.length = int(cls[0])
    return req


async def body_pieces(req, reader, writer):
    """Yield the request body (de-chunked) in pieces; send 100 if asked."""
    if req.body_read:
        return
    req.body_read = True
    if req.framing == "none" or (req.framing == "length" and req.length == 0):
        return
    if req.version == "HTTP/1.1" and "100-continue" in req.tokens("expect"):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if req.framing == "length":
        left = req.length
        while left:
            data = await reader.read(min(left, BLOCK))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            yield data
        return
    while True:
        line = await read_line(reader)
        size, _, ext = line.partition(b";")
        if ext or _:
            req.chunk_exts.append(ext.decode("latin-1"))
        if not re.match(rb"^[0-9A-Fa-f]{1,15}$", size):
            raise BadRequest("bad chunk size %r" % size[:40])
        left = int(size, 16)
        if left == 0:
            break
        while left:
            data = await reader.readexactly(min(left, BLOCK))
            left -= len(data)
            yield data
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest("chunk data not followed by CRLF")
    while True:
        line = await read_line(reader)
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN_RE.match(name):
            raise BadRequest("bad trailer")
        req.trailers.append([name.decode("latin-1"),
                             value.strip(b" \t").decode("latin-1")])


async def drain_body(req, reader, writer):
    n = 0
    h = hashlib.sha256()
    async for piece in body_pieces(req, reader, writer):
        n += len(piece)
        h.update(piece)
    return n, h.hexdigest()


# ---------------------------------------------------------------- server

class Origin:
    def __init__(self, name):
        self.name = name
        self.stats = dict(accepted=0, conns=0, reqs=0, inflight=0,
                          max_inflight=0, bad_requests=0)

    def head(self, status, headers, close, reason=None):
        reason = reason or REASONS.get(status, "Status")
        lines = ["HTTP/1.1 %d %s" % (status, reason), "X-Origin: " + self.name]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def done_in_flight(self, req):
        """The request stops counting as in flight: when its answer starts (once
        the proxy has the answer it may send the next request, before this
        coroutine runs again), or at the end of its handling."""
        if getattr(req, "in_flight", False):
            req.in_flight = False
            self.stats["inflight"] -= 1

    async def respond(self, req, writer, status, body=b"", headers=(),
                      close=False, ctype="text/plain"):
        self.done_in_flight(req)
        if isinstance(body, str):
            body = body.encode()
        hs = list(headers)
        if status not in (204, 304):
            hs = [("Content-Type", ctype), ("Content-Length", str(len(body)))] + hs
        # head and body in one write, as real servers send a short response
        if req.method == "HEAD" or status in (204, 304):
            body = b""
        writer.write(self.head(status, hs, close) + body)
        await writer.drain()

    def wants_close(self, req):
        conn = req.tokens("connection")
        if "close" in conn:
            return True
        return req.version == "HTTP/1.0" and "keep-alive" not in conn

    async def handle(self, reader, writer):
        writer.transport.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
        st = self.stats
        st["accepted"] += 1
        counted = False
        try:
            while True:
                try:
                    req = await read_head(reader)
                except BadRequest as e:
                    st["bad_requests"] += 1
                    print("origin %s: bad request head: %s" % (self.name, e),
                          file=sys.stderr, flush=True)
                    writer.write(self.head(400, [("X-Origin-Error", str(e)),
                                                 ("Content-Length", "0")], True))
                    await writer.drain()
                    break
                if req is None:
                    break
                control = req.path in CONTROL
                if not control:
                    st["reqs"] += 1
                    if not counted:
                        st["conns"] += 1
                        counted = True
                    st["inflight"] += 1
                    st["max_inflight"] = max(st["max_inflight"], st["inflight"])
                    req.in_flight = True
                try:
                    keep = await self.dispatch(req, reader, writer)
                except BadRequest as e:
                    st["bad_requests"] += 1
                    print("origin %s: bad request body: %s" % (self.name, e),
                          file=sys.stderr, flush=True)
                    writer.write(self.head(400, [("X-Origin-Error", str(e)),
                                                 ("Content-Length", "0")], True))
                    await writer.drain()
                    keep = False
                finally:
                    self.done_in_flight(req)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def dispatch(self, req, reader, writer):
        """Serve one request; return True to keep the connection."""
        close = self.wants_close(req)
        path = req.path
        if path == "/echo" or path.startswith("/echo/"):
            n, sha = await drain_body(req, reader, writer)
            doc = dict(method=req.method, target=req.target, path=req.path,
                       query=req.query, version=req.version,
                       request_line=req.request_line,
                       headers=[[k, v] for k, v in req.headers],
                       framing=req.framing, body_len=n, body_sha256=sha,
                       chunk_exts=req.chunk_exts, trailers=req.trailers)
            await self.respond(req, writer, 200, json.dumps(doc), close=close,
                               ctype="application/json")
            return not close
        if path == "/sha256":
            n, sha = await drain_body(req, reader, writer)
            await self.respond(req, writer, 200, sha, [("X-Body-Len", str(n))],
                               close=close)
            return not close
        if path == "/ws":
            return await self.websocket(req, reader, writer)
        await drain_body(req, reader, writer)
        if path in ("/", "/name"):
            await self.respond(req, writer, 200, self.name, close=close)
        elif path in CONTROL:
            body = {"/conns": str(self.stats["conns"]),
                    "/reqs": str(self.stats["reqs"]),
                    "/stats": json.dumps(self.stats)}[path]
            await self.respond(req, writer, 200, body, close=close)
        elif path == "/bytes":
            return await self.send_bytes(req, writer, close)
        elif path == "/hold":
            ms = int(req.query.get("ms", "1000"))
            await asyncio.sleep(ms / 1000.0)
            await self.respond(req, writer, 200, "held %d %s" % (ms, self.name),
                               close=close)
        elif path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
            except ValueError:
                code = 0
            if not 200 <= code <= 599:
                await self.respond(req, writer, 400, "bad status code\n", close=True)
                return False
            await self.respond(req, writer, code, "status %d\n" % code, close=close)
        elif path == "/resp-headers":
            hs = list(req.query.items())
            if any(k.lower() == "connection" and "close" in v.lower() for k, v in hs):
                close = True
            await self.respond(req, writer, 200, "headers\n", hs, close=close)
        elif path == "/early-hints":
            writer.write(self.head(103, [("Link", "</style.css>; rel=preload")], False,
                                   "Early Hints"))
            await self.respond(req, writer, 200, "after-103", close=close)
        elif path.startswith("/bad/"):
            return await self.bad(path[len("/bad/"):], req, writer)
        else:
            await self.respond(req, writer, 404, "not found\n", close=close)
        return not close

    async def send_bytes(self, req, writer, close):
        n = int(req.query.get("n", "0"))
        seed = req.query.get("seed", "0")
        chunked = req.query.get("chunked", "0") == "1"
        if chunked:
            hs = [("Content-Type", "application/octet-stream"),
                  ("Transfer-Encoding", "chunked")]
        else:
            hs = [("Content-Type", "application/octet-stream"),
                  ("Content-Length", str(n))]
        writer.write(self.head(200, hs, close))
        if req.method != "HEAD":
            for blk in gen_blocks(n, seed):
                if chunked:
                    writer.write(b"%x\r\n" % len(blk) + blk + b"\r\n")
                else:
                    writer.write(blk)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not close

    # Broken responses, each written raw. Atrium must answer 502 for all but
    # close-early (where the head may already be on its way to the client).
    BAD = {
        "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                  b"Content-Length: 6\r\n\r\nhello!",
        "bad-cl": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
        "garbage": b"this is not http at all\r\n\r\n",
        "obs-fold": b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n"
                    b"Content-Length: 2\r\n\r\nok",
        "nul": b"HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 2\r\n\r\nok",
        "bad-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
        "partial-head": b"HTTP/1.1 200 OK\r\nContent-Len",
        "close-early": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        "no-response": b"",
        # a valid response followed by a second, unrequested one on the same
        # (kept-open) connection: a proxy that reuses it would serve POISON
        "extra-data": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON",
    }

    async def bad(self, kind, req, writer):
        data = self.BAD.get(kind)
        if data is None:
            await self.respond(req, writer, 404, "no such bad kind\n", close=True)
            return False
        if kind not in ("garbage", "partial-head", "no-response"):
            data = data.replace(b"\r\n", b"\r\nX-Origin: %s\r\n" % self.name.encode(), 1)
        writer.write(data)
        await writer.drain()
        return kind == "extra-data"

    # ------------------------------------------------------------ websocket
    async def websocket(self, req, reader, writer):
        await drain_body(req, reader, writer)
        key = req.get("sec-websocket-key")
        if ("websocket" not in req.tokens("upgrade") or "upgrade" not in req.tokens("connection")
                or not key or req.get("sec-websocket-version") != "13"):
            await self.respond(req, writer, 400, "not a websocket handshake\n", close=True)
            return False
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(self.head(101, [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                     ("Sec-WebSocket-Accept", accept)], False))
        await writer.drain()
        while True:
            fin, op, payload, masked = await ws_read_frame(reader)
            if not masked:
                writer.write(ws_frame(8, struct.pack(">H", 1002) + b"unmasked"))
                await writer.drain()
                return False
            if op == 8:
                writer.write(ws_frame(8, payload[:2] if len(payload) >= 2 else b""))
                await writer.drain()
                return False
            if op == 9:
                writer.write(ws_frame(10, payload))
            elif op in (0, 1, 2):
                writer.write(ws_frame(op, payload, fin))
            await writer.drain()


async def ws_read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    masked = bool(b1 & 0x80)
    mask = await reader.readexactly(4) if masked else None
    data = await reader.readexactly(n)
    if mask:
        data = ws_mask(data, mask)
    return bool(b0 & 0x80), b0 & 0x0F, data, masked


def ws_mask(data, mask):
    if not data:
        return data
    m = (mask * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(len(data), "big")


def ws_frame(op, payload, fin=True, mask=None):
    """Encode one frame; mask (4 bytes) for client frames."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack(">BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, mbit | 126, n)
    else:
        head = struct.pack(">BBQ", b0, mbit | 127, n)
    if mask:
        return head + mask + ws_mask(payload, mask)
    return head + payload


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="origin")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    origin = Origin(args.name)
    server = await asyncio.start_server(origin.handle, args.host, args.port,
                                        limit=1 << 20, reuse_address=True, backlog=512)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OSError as e:
        print("origin: %s" % e, file=sys.stderr)
        sys.exit(2)
