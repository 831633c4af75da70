"""test_api.py - edgemail-api against a real Dovecot (DESIGN section 4).

Proves the HTTP contract v1 end to end: a signed POST is delivered and
read back over IMAP with our headers; per-recipient outcomes; every
refusal class (400/401/413/415/422/503) with nothing left in any mailbox;
framing attacks that libmicrohttpd lets through are refused; the
per-request deadline cuts slow clients.
"""
import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
import apiclient  # noqa: E402
from stack import Stack  # noqa: E402

PW = "bench-pass-123"
USERS = ["u%02d@example.test" % i for i in range(20)]

MSG = (b"From: Sender <a@sender.test>\r\n"
       b"To: <demo@example.test>\r\n"
       b"Subject: hello\r\n"
       b"Message-ID: <%d@sender.test>\r\n"
       b"\r\n"
       b"hello world\r\n")


def msg(tag=None):
    return MSG % (tag if tag is not None else time.time_ns())


def post(s, body, key_id=None, secret=None, **kw):
    return apiclient.post(s.ports["api"], s.ca, key_id or s.key_id,
                          secret or s.secret, body, **kw)


def total_mail(s):
    return sum(s.maildir_count(u) for u in ["demo@example.test"] + USERS)


def setup():
    s = Stack("api")
    s.start_dovecot()
    for u in USERS:
        s.add_user(u, PW)
    s.start_api({"request_timeout": "3s", "max_message_size": "1M"})
    return s


def teardown(s):
    s.stop()


def refused(s, status, body=None, **kw):
    """POST that must be refused with `status` and store nothing."""
    before = total_mail(s)
    code, j, _ = post(s, body if body is not None else msg(), **kw)
    eq(code, status, "HTTP status (%s)" % j)
    check(isinstance(j, dict) and j.get("id") and j.get("status"),
          "JSON body with status and id: %r" % (j,))
    check(j.get("reason"), "a reason is given: %r" % (j,))
    eq(total_mail(s), before, "messages stored")
    return j


def raw(s, data, timeout=5):
    """Send raw bytes over TLS; return the raw response (b'' if closed)."""
    ctx = ssl.create_default_context(cafile=s.ca)
    with socket.create_connection(("127.0.0.1", s.ports["api"]), timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as t:
            t.sendall(data)
            out = b""
            try:
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if b"\r\n\r\n" in out and b"}" in out:
                        break
            except (socket.timeout, ssl.SSLError, ConnectionResetError):
                pass
            return out


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


@test
def signed_post_is_delivered_and_read_back_over_imap(s):
    body = (b"From: <a@sender.test>\r\nTo: <demo@example.test>\r\n"
            b"Subject: read back\r\nMessage-ID: <rb@sender.test>\r\n"
            b"Authentication-Results: mx.example.test; dkim=pass header.d=forged\r\n"
            b"Authentication-Results: (comment) mx.example.test; dkim=pass "
            b"header.d=forged2\r\n"
            b"Authentication-Results: \"MX.example.test\"; dmarc=pass "
            b"header.from=forged3\r\n"
            b"\r\nline one\r\n..starts with a dot\r\n\xc3\xa9t\xc3\xa9 8-bit\r\n")
    code, j, _ = post(s, body, rcpts=["demo@example.test"])
    eq(code, 200, "status %r" % (j,))
    eq(j["status"], "delivered", "status field")
    eq(j["recipients"][0]["status"], "delivered", "recipient status")
    eq(j["recipients"][0]["code"], 250, "recipient code")
    msgs = [m for m in s.imap_messages("demo@example.test", s.demo_password)
            if b"Subject: read back" in m]
    eq(len(msgs), 1, "copies in INBOX")
    m = msgs[0]
    check(b"(edgemail-api) with HTTPS id " + j["id"].encode() in m,
          "Received names the API and the request id")
    check(b"Authentication-Results: mx.example.test;" in m,
          "our Authentication-Results is present")
    check(b"forged" not in m, "forged A-R with our authserv-id removed "
          "(also after a comment, quoted, in another case)")
    check(b"\r\n..starts with a dot\r\n" in m, "dot-stuffed line intact")
    check(b"\xc3\xa9t\xc3\xa9 8-bit" in m, "8-bit body intact")


@test
def a_line_that_is_no_field_ends_the_header_section(s):
    # Dovecot would show the From: after the broken line to the user,
    # while DMARC and the removal of forged A-R fields did not see it.
    body = (b"Subject: broken header\r\nX-Junk\r\n"
            b"From: CEO <ceo@bank.example>\r\n"
            b"Authentication-Results: mx.example.test; dmarc=pass "
            b"header.from=bank.example\r\n\r\nhi\r\n")
    code, j, _ = post(s, body)
    eq(code, 200, "status %r" % (j,))
    m = [m for m in s.imap_messages("demo@example.test", s.demo_password)
         if b"Subject: broken header" in m][0]
    head, _, rest = m.partition(b"\r\n\r\n")
    check(b"ceo@bank.example" not in head, "no From: in the header: %r" % head)
    check(b"dmarc=pass" not in head, "no forged A-R in the header")
    check(rest.startswith(b"X-Junk\r\nFrom: CEO"), "the rest is body: %r"
          % rest[:60])


@test
def bare_lf_message_is_stored_with_crlf(s):
    body = b"From: <a@sender.test>\nSubject: bare lf\n\nline\nline2\n"
    code, j, _ = post(s, body)
    eq(code, 200, "status %r" % (j,))
    m = [m for m in s.imap_messages("demo@example.test", s.demo_password)
         if b"Subject: bare lf" in m][0]
    check(b"Subject: bare lf\r\n\r\nline\r\nline2\r\n" in m, "CRLF line ends: %r" % m[-60:])


@test
def twenty_recipients_in_one_request(s):
    before = [s.maildir_count(u) for u in USERS]
    code, j, _ = post(s, msg(), rcpts=USERS)
    eq(code, 200, "status %r" % (j,))
    eq(len(j["recipients"]), 20, "recipients listed")
    check(all(r["status"] == "delivered" for r in j["recipients"]), "all delivered")
    after = [s.maildir_count(u) for u in USERS]
    eq([a - b for a, b in zip(after, before)], [1] * 20, "one copy each")


@test
def unknown_recipient_is_rejected_per_recipient(s):
    code, j, _ = post(s, msg(), rcpts=["demo@example.test", "ghost@example.test"])
    eq(code, 200, "status %r" % (j,))
    r = {x["rcpt"]: x for x in j["recipients"]}
    eq(r["demo@example.test"]["status"], "delivered", "known recipient")
    eq(r["ghost@example.test"]["status"], "rejected", "unknown recipient")
    eq(r["ghost@example.test"]["code"], 550, "code")
    eq(r["ghost@example.test"]["enhanced"], "5.1.1", "enhanced code")


@test
def all_recipients_unknown_gives_422(s):
    j = refused(s, 422, rcpts=["ghost@example.test", "phantom@example.test"])
    eq(j["status"], "rejected", "status")
    eq(j["code"], 550, "code")
    eq(j["enhanced"], "5.1.1", "enhanced")


def early_flag(s, req_id):
    """The early= field of the request's event=done line."""
    m = re.search(r"id=%s event=done .* early=(\d)" % re.escape(req_id),
                  s.log("api"))
    check(m, "no done line for %s" % req_id)
    return int(m.group(1))


def kept(s):
    return apiclient.KeptConnection(s.ports["api"], s.ca)


@test
def kept_connection_sends_the_envelope_ahead_of_the_body(s):
    # The first request on a connection proves the key; from the second
    # on, MAIL and RCPT go to Dovecot while the body arrives.
    k = kept(s)
    try:
        before = s.maildir_count("demo@example.test"), s.maildir_count(USERS[0])
        c1, j1, _ = k.post(s.key_id, s.secret, msg())
        c2, j2, _ = k.post(s.key_id, s.secret, msg(), rcpts=[
            "demo@example.test", USERS[0], "ghost@example.test"])
    finally:
        k.close()
    eq((c1, c2), (200, 200), "statuses %r %r" % (j1, j2))
    eq(early_flag(s, j1["id"]), 0, "first request on the connection")
    eq(early_flag(s, j2["id"]), 1, "second request")
    r = {x["rcpt"]: x for x in j2["recipients"]}
    eq(r["ghost@example.test"]["enhanced"], "5.1.1", "unknown recipient")
    eq(r[USERS[0]]["status"], "delivered", "known recipient")
    eq((s.maildir_count("demo@example.test"), s.maildir_count(USERS[0])),
       (before[0] + 2, before[1] + 1), "copies")


@test
def an_envelope_sent_ahead_for_a_refused_request_delivers_nothing(s):
    k = kept(s)
    try:
        c, j, _ = k.post(s.key_id, s.secret, msg())
        eq(c, 200, "first %r" % (j,))
        before = total_mail(s)
        # Signed for one body, another sent: 401 after the envelope
        # went ahead.
        c, j, _ = k.post(s.key_id, s.secret, msg(1), raw_override=msg(2))
        eq(c, 401, "altered body %r" % (j,))
        # An idempotent retry answered from its record.
        body = msg()
        c, j, _ = k.post(s.key_id, s.secret, body, idem="early-1")
        eq(c, 200, "first with the key %r" % (j,))
        c, j, _ = k.post(s.key_id, s.secret, body, idem="early-1")
        eq(c, 200, "retry %r" % (j,))
        eq(total_mail(s), before + 1, "messages stored")
        # The LMTP connection those left is still good.
        c, j, _ = k.post(s.key_id, s.secret, msg())
        eq(c, 200, "after them %r" % (j,))
        eq(early_flag(s, j["id"]), 1, "early envelope after the refusals")
        eq(total_mail(s), before + 2, "messages stored")
    finally:
        k.close()


@test
def a_connection_without_a_good_signature_sends_nothing_ahead(s):
    k = kept(s)
    try:
        c, j, _ = k.post(s.key_id, "not-the-secret", msg())
        eq(c, 401, "wrong secret %r" % (j,))
        c, j, _ = k.post(s.key_id, s.secret, msg())
        eq(c, 200, "then signed %r" % (j,))
        eq(early_flag(s, j["id"]), 0, "after a 401 only")
    finally:
        k.close()


@test
def declared_body_hash_lets_a_first_request_send_its_envelope_ahead(s):
    # One delivery first, so that an LMTP connection is idle.
    eq(post(s, msg())[0], 200, "warm-up")
    before = total_mail(s)
    code, j, _ = post(s, msg(), declare=True)
    eq(code, 200, "status %r" % (j,))
    eq(early_flag(s, j["id"]), 1, "first request on its connection")
    eq(total_mail(s), before + 1, "messages stored")


@test
def declared_body_hash_with_a_wrong_signature_is_refused_before_the_body(s):
    # Only the headers are sent: the answer comes without the body.
    code, j, _ = post(s, msg(), secret="not-the-secret", declare=True,
                      send_body=False, timeout=5)
    eq(code, 401, "status %r" % (j,))
    eq(j["reason"], "bad signature", "reason")


@test
def body_that_differs_from_its_declared_hash_gives_401(s):
    j = refused(s, 401, body=msg(1), raw_override=msg(2), declare=True)
    check("does not match" in j["reason"], "reason: %r" % (j,))


@test
def malformed_declared_body_hash_gives_400(s):
    refused(s, 400, declare="ABC")


@test
def null_sender_is_accepted(s):
    code, j, _ = post(s, msg(), mail_from="")
    eq(code, 200, "status %r" % (j,))


@test
def unsigned_request_gives_401(s):
    refused(s, 401, headers={"Edgemail-Signature": None})


@test
def wrong_signature_gives_401(s):
    refused(s, 401, secret="x" * 32)


@test
def unknown_key_id_gives_401(s):
    refused(s, 401, key_id="nosuchkey")


@test
def stale_timestamp_gives_401(s):
    refused(s, 401, ts=int(time.time()) - 301)


@test
def future_timestamp_gives_401(s):
    refused(s, 401, ts=int(time.time()) + 310)  # margin: the clock moves toward the window


@test
def body_altered_after_signing_gives_401(s):
    refused(s, 401, raw_override=msg(1) + b"tampered\r\n", body=msg(1))


@test
def replayed_signature_gives_401(s):
    ts = int(time.time())
    body = msg(42)
    code, j, _ = post(s, body, ts=ts)
    eq(code, 200, "first request %r" % (j,))
    j = refused(s, 401, body=body, ts=ts)
    check("replay" in j["reason"], "reason names the replay: %r" % j["reason"])


@test
def replay_whose_body_ends_after_the_window_gives_401(s):
    # The window is checked when the headers arrive; a replay that sends
    # them in time and ends its body late must still meet the entry.
    s.stop_api()
    s.start_api({"request_timeout": "10s", "signature_max_skew": "2s",
                 "max_message_size": "1M"})
    try:
        ts = int(time.time())
        body = msg(43)
        code, j, _ = post(s, body, ts=ts)
        eq(code, 200, "first request %r" % (j,))
        target = apiclient.target_for("a@sender.test", ["demo@example.test"])
        head = ("POST %s HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: message/rfc822\r\nContent-Length: %d\r\n"
                "Edgemail-Key-Id: %s\r\nEdgemail-Timestamp: %d\r\n"
                "Edgemail-Signature: %s\r\nConnection: close\r\n\r\n"
                % (target, len(body), s.key_id, ts,
                   apiclient.sign(s.secret, ts, "POST", target, "", body)))
        ctx = ssl.create_default_context(cafile=s.ca)
        with socket.create_connection(("127.0.0.1", s.ports["api"]),
                                      timeout=15) as sock:
            with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as t:
                t.sendall(head.encode() + body[:5])
                time.sleep(4)   # past ts + max_skew + 1
                t.sendall(body[5:])
                code, _, data = apiclient.read_response(t)
        eq(code, 401, "late replay: %r" % data)
        check(b"replay" in data, "reason names the replay: %r" % data)
    finally:
        s.stop_api()
        s.start_api({"request_timeout": "3s", "max_message_size": "1M"})


@test
def oversize_content_length_gives_413_before_body(s):
    # Headers only: the server must answer without waiting for the body.
    code, j, _ = post(s, b"x" * 10, content_length=1024 * 1024 + 1, send_body=False)
    eq(code, 413, "status %r" % (j,))
    eq(j["status"], "too_large", "status field")
    eq(j["limit"], 1024 * 1024, "limit")


@test
def oversize_chunked_body_gives_413(s):
    big = b"Subject: big\r\n\r\n" + b"y" * (1024 * 1024 + 100)
    refused(s, 413, body=big, chunked=True)


@test
def duplicate_content_length_gives_400(s):
    refused(s, 400, extra_raw_headers=[("Content-Length", None)])


@test
def content_length_with_transfer_encoding_gives_400(s):
    refused(s, 400, extra_raw_headers=[("Transfer-Encoding", "chunked")])


@test
def transfer_encoding_other_than_chunked_gives_400(s):
    # libmicrohttpd would read such a body until the connection closes.
    refused(s, 400, headers={"Content-Length": None}, timeout=10,
            extra_raw_headers=[("Transfer-Encoding", "gzip")])
    refused(s, 400, chunked=True,
            extra_raw_headers=[("Transfer-Encoding", "chunked")])


@test
def control_character_in_header_value_gives_400(s):
    refused(s, 400, headers={"X-Junk": "a\x01b"})


@test
def target_near_its_16_kib_limit_is_served_and_one_over_gives_414(s):
    # 100 recipients of 150 characters: a 15.6 KiB request target, which
    # with the header fields must fit libmicrohttpd's 32 KiB per
    # connection (api/http.c POOL_SIZE), body and all.
    dom = ".".join(["d" * 39] * 2) + ".test"
    rc = ["%s%03d@%s" % ("x" * 60, i, dom) for i in range(100)]
    code, j, _ = post(s, msg() + b"filler line\r\n" * 5000, rcpts=rc)
    eq(code, 422, "status (unknown domain for all) %r" % (j,))
    check("5.1.2" in j.get("reason", ""), "reason: %r" % (j,))
    code, j, _ = post(s, msg(), rcpts=rc + ["y" * 60 + "@" + dom] * 5)
    eq(code, 414, "status %r" % (j,))


@test
def over_long_header_gives_431(s):
    before = total_mail(s)
    r = raw(s, b"POST /v1/messages?mail_from=&rcpt=demo%40example.test HTTP/1.1\r\n"
               b"Host: x\r\nX-Long: " + b"a" * 70000 +
               b"\r\nContent-Length: 0\r\n\r\n")
    eq(status_of(r), 431, "status")
    eq(total_mail(s), before, "messages stored")


@test
def wrong_content_type_gives_415(s):
    refused(s, 415, content_type="application/json")


@test
def missing_rcpt_gives_400(s):
    refused(s, 400, rcpts=[])


@test
def malformed_rcpt_gives_400(s):
    refused(s, 400, rcpts=["not-an-address"])


@test
def missing_mail_from_gives_400(s):
    refused(s, 400, mail_from=None)


@test
def malformed_mail_from_gives_400(s):
    refused(s, 400, mail_from="a@@b")


@test
def bad_percent_escape_gives_400(s):
    refused(s, 400, target="/v1/messages?mail_from=a%4&rcpt=demo%40example.test")


@test
def unknown_query_parameter_gives_400(s):
    refused(s, 400, target="/v1/messages?mail_from=&rcpt=demo%40example.test&x=1")


@test
def bad_idempotency_key_gives_400(s):
    refused(s, 400, idem="has space")


@test
def get_on_messages_gives_405_and_unknown_path_404(s):
    r = raw(s, b"GET /v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    eq(status_of(r), 405, "GET /v1/messages")
    r = raw(s, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    eq(status_of(r), 404, "GET /nope")


def trickle(t, req):
    """Send req a byte every 0.5 s (then filler) until the server closes
    the connection or 15 s pass; True when it closed."""
    t.settimeout(1)
    for i in range(30):
        try:
            t.sendall(req[i:i + 1] if i < len(req) else b"X")
            time.sleep(0.5)
        except (OSError, ssl.SSLError):
            return True
        try:
            if t.recv(1) == b"":
                return True
        except socket.timeout:
            pass
        except (OSError, ssl.SSLError):
            return True
    return False


@test
def slow_client_is_cut_at_the_request_deadline(s):
    # request_timeout = 3s: a client trickling its headers loses the connection.
    ctx = ssl.create_default_context(cafile=s.ca)
    start = time.time()
    with socket.create_connection(("127.0.0.1", s.ports["api"]), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as t:
            closed = trickle(t, b"POST /v1/messages?mail_from=&rcpt="
                             b"demo%40example.test HTTP/1.1\r\nHost: x\r\n")
    elapsed = time.time() - start
    check(closed, "connection still open after %.1fs" % elapsed)
    check(elapsed < 8, "cut after %.1fs (deadline 3s)" % elapsed)


@test
def slow_second_request_on_a_kept_connection_is_cut(s):
    # After one complete request, the next request line has the same
    # deadline: a byte at a time must not hold the connection for ever.
    ctx = ssl.create_default_context(cafile=s.ca)
    with socket.create_connection(("127.0.0.1", s.ports["api"]), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as t:
            # Unauthenticated, and answered on a kept connection.
            t.sendall(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\n"
                      b"Host: x\r\nContent-Type: text/xml\r\n"
                      b"Content-Length: 4\r\n\r\n<x/>")
            first = b""
            while b"}" not in first:    # the whole JSON answer
                d = t.recv(4096)
                check(d, "closed after the first answer: %r" % first)
                first += d
            eq(status_of(first), 400, "the first request")
            check(b"Connection: close" not in first, "kept: %r" % first)
            start = time.time()
            closed = trickle(t, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    elapsed = time.time() - start
    check(closed, "connection still open after %.1fs" % elapsed)
    check(elapsed < 8, "cut after %.1fs (deadline 3s)" % elapsed)


@test
def metrics_and_health_endpoints(s):
    r = raw(s, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    eq(status_of(r), 200, "metrics")
    check(b'edgemail_api_requests_total{code="200"}' in r, "request counter")
    check(b'edgemail_api_deliveries_total{class="delivered"}' in r, "delivery counter")
    check(b"edgemail_api_request_duration_seconds_bucket" in r, "histogram")
    r = raw(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    eq(status_of(r), 200, "healthz")
    r = raw(s, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    eq(status_of(r), 200, "readyz")


@test
def dovecot_stopped_gives_503_with_retry_after_when_queueing_is_off(s):
    s.stop_api()
    s.start_api({"request_timeout": "3s", "max_message_size": "1M",
                 "queueing": "no"})
    s.stop_dovecot()
    try:
        code, j, h = post(s, msg())
        eq(code, 503, "status %r" % (j,))
        eq(j["status"], "unavailable", "status field")
        check(int(h.get("Retry-After", "0")) > 0, "Retry-After header: %r" % h)
        r = raw(s, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        eq(status_of(r), 503, "readyz while Dovecot is down")
    finally:
        s.start_dovecot()
    code, j, _ = post(s, msg())
    eq(code, 200, "after Dovecot is back %r" % (j,))
    s.stop_api()
    s.start_api({"request_timeout": "3s", "max_message_size": "1M"})


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
