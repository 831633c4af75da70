"""apiclient.py - a deliberately low-level client for edgemail-api tests.

Builds each HTTP/1.1 request by hand over TLS (or plain TCP), signed as in
DESIGN section 4, so tests can also send what a normal client never would:
duplicate headers, Content-Length with Transfer-Encoding, a body that does
not match its signature, headers without a body.
"""
import hashlib
import hmac
import json
import socket
import ssl
import time
import urllib.parse


def sign(secret, ts, method, target, idem, body):
    canon = "v1\n%s\n%s\n%s\n%s\n%s" % (ts, method, target, idem or "",
                                        hashlib.sha256(body).hexdigest())
    return "v1=" + hmac.new(secret.encode(), canon.encode(),
                            hashlib.sha256).hexdigest()


_last_ts = 0


def fresh_ts():
    """A timestamp never used before by this process (strictly increasing,
    at most a little ahead of the clock): two requests with the same body
    then never carry the same signature, which the API would refuse as a
    replay, even when they fall in the same second."""
    global _last_ts
    now = int(time.time())
    _last_ts = max(now, _last_ts + 1)
    if _last_ts > now + 200:        # far ahead: a burst; start again
        _last_ts = now
    return _last_ts


def target_for(mail_from, rcpts):
    parts = []
    if mail_from is not None:
        parts.append("mail_from=" + urllib.parse.quote(mail_from, safe=""))
    for r in rcpts:
        parts.append("rcpt=" + urllib.parse.quote(r, safe=""))
    return "/v1/messages?" + "&".join(parts)


def read_response(sock):
    """Read one response; returns (status, headers dict, body bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or len(lines[0].split(" ")) < 2:
        return 0, {}, b""
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().title()] = v.strip()
    n = int(headers.get("Content-Length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def post(port, ca, key_id, secret, body, tls=True, timeout=30, **kw):
    """Signed POST /v1/messages on a connection of its own; returns
    (status, json or None, headers).  The keywords are request_bytes'."""
    req = request_bytes(key_id, secret, body, **kw)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if tls:
            ctx = ssl.create_default_context(cafile=ca)
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        return exchange(sock, req)
    finally:
        sock.close()


class KeptConnection:
    """One TLS connection for several requests (HTTP/1.1 keep-alive), as
    the Worker's and the benchmark's clients keep theirs."""

    def __init__(self, port, ca, timeout=30):
        ctx = ssl.create_default_context(cafile=ca)
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")

    def post(self, key_id, secret, body, **kw):
        return exchange(self.sock, request_bytes(key_id, secret, body, **kw))

    def close(self):
        self.sock.close()


def exchange(sock, req):
    try:
        sock.sendall(req)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass  # the server may answer early and close; read the answer
    status, rh, rb = read_response(sock)
    try:
        j = json.loads(rb) if rb else None
    except ValueError:
        j = None
    return status, j, rh


def request_bytes(key_id, secret, body, rcpts=("demo@example.test",),
                  mail_from="a@sender.test", idem=None, headers=None,
                  ts=None, target=None, content_type="message/rfc822",
                  raw_override=None, content_length=None, send_body=True,
                  chunked=False, extra_raw_headers=(), declare=None):
    """The bytes of a signed POST /v1/messages.

    headers: extra headers; a value of None removes a default header.
    raw_override: bytes sent instead of `body` (the signature covers body).
    extra_raw_headers: (name, value) appended as-is; value None repeats
    the Content-Length.
    declare: True sends Edgemail-Content-SHA256 with the signed body's
    hash (as the Worker does), a string sends that value.
    """
    ts = str(fresh_ts() if ts is None else ts)
    target = target or target_for(mail_from, list(rcpts))
    h = {
        "Host": "127.0.0.1",
        "Content-Type": content_type,
        "Edgemail-Key-Id": key_id,
        "Edgemail-Timestamp": ts,
        "Edgemail-Signature": sign(secret, ts, "POST", target, idem, body),
    }
    if idem is not None:
        h["Idempotency-Key"] = idem
    if declare is not None:
        h["Edgemail-Content-SHA256"] = (hashlib.sha256(body).hexdigest()
                                        if declare is True else declare)
    for k, v in (headers or {}).items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    sent = body if raw_override is None else raw_override
    cl = str(len(sent) if content_length is None else content_length)
    lines = ["POST %s HTTP/1.1" % target]
    lines += ["%s: %s" % kv for kv in h.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append("Content-Length: " + cl)
    for k, v in extra_raw_headers:
        lines.append("%s: %s" % (k, cl if v is None else v))
    req = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if send_body:
        if chunked:
            for i in range(0, len(sent), 65536):
                piece = sent[i:i + 65536]
                req += b"%x\r\n" % len(piece) + piece + b"\r\n"
            req += b"0\r\n\r\n"
        else:
            req += sent
    return req
