"""test_worker_e2e.py - the Email Worker against a real edgemail stack.

Starts Dovecot and edgemail-api (stack.py), then the Worker itself under
`wrangler dev` in local mode (workerd on 127.0.0.1, no Cloudflare account,
no network), pointed at the API's HTTPS listener.  The dev stack's CA is
made trusted with NODE_EXTRA_CA_CERTS, which miniflare passes to workerd's
outbound TLS; the API's certificate names IP 127.0.0.1.  The signing
secret reaches the Worker through an --env-file (as .dev.vars would).

Mail goes in the way Email Routing hands it over locally:
POST /cdn-cgi/handler/email?from=A&to=B with the raw message (it needs a
Message-ID; wrangler 4.86 takes at most 1 MiB).  wrangler answers 200 when
the handler returned, 400 "Worker rejected email ..." after setReject, and
500 when the handler threw (a temporary failure at the edge).

The API first runs with queueing = no, so that a stopped Dovecot is a 503
and the Worker must fail temporarily; the last test restarts it with
queueing on, where the same outage is a 202 (queued) that the API's queue
delivers once Dovecot is back.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness                                          # noqa: E402
from harness import test, check, eq                     # noqa: E402
import stack                                            # noqa: E402

WORKER = os.path.join(stack.TOP, "worker")
WRANGLER = os.path.join(WORKER, "node_modules", ".bin", "wrangler")
NO_QUEUE = {"queueing": "no"}
QUEUE = {"queueing": "yes", "queue_retry_min": "1s",
         "queue_run_interval": "1s"}


class Ctx:
    st = None
    proc = None
    port = None
    log = None
    n = 0


def npm_ci():
    """Install the Worker's pinned toolchain when it is missing."""
    if os.path.exists(WRANGLER):
        return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WORKER,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("npm ci in worker/ failed:\n" +
                           r.stdout.decode("utf-8", "replace")[-3000:])


def start_wrangler(ctx):
    st = ctx.st
    port, inspector = stack.free_ports(2)
    env_file = st.path("worker.env")
    with open(env_file, "w") as f:
        f.write("HMAC_SECRET=%s\n" % st.secret)
    os.chmod(env_file, 0o600)
    cfg = st.path("wrangler-config")
    os.makedirs(cfg, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "WRANGLER_SEND_METRICS": "false",
        "WRANGLER_SEND_ERROR_REPORTS": "false",
        "CLOUDFLARE_CF_FETCH_ENABLED": "false",
        "XDG_CONFIG_HOME": cfg,
        "NODE_EXTRA_CA_CERTS": st.ca,
        "NO_COLOR": "1",
        "CI": "true",
    })
    ctx.log = st.path("log", "wrangler.log")
    os.makedirs(os.path.dirname(ctx.log), exist_ok=True)
    log = open(ctx.log, "ab")
    cmd = [WRANGLER, "dev", "--local", "--ip", "127.0.0.1",
           "--port", str(port), "--inspector-port", str(inspector),
           "--show-interactive-dev-session=false",
           "--persist-to", st.path("wrangler-state"),
           "--env-file", env_file,
           "--var", "API_URL:https://127.0.0.1:%d" % st.ports["api"],
           "--var", "KEY_ID:%s" % st.key_id,
           "--var", "TIMEOUT_MS:10000"]
    try:
        ctx.proc = subprocess.Popen(cmd, cwd=WORKER, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True)
    finally:
        log.close()
    ctx.port = port

    def ready():
        if ctx.proc.poll() is not None:
            raise RuntimeError("wrangler dev exited %d:\n%s" % (
                ctx.proc.returncode, wrangler_log(ctx)[-3000:]))
        return "Ready on http" in wrangler_log(ctx) and stack.port_open(port)
    stack.wait_for(ready, 120, interval=0.2, what="wrangler dev")


def stop_wrangler(ctx):
    """Stop wrangler, then whatever is left of its process group (workerd),
    by the leader's PID.  wrangler first, so that it shuts workerd down and
    reaps it itself."""
    p, ctx.proc = ctx.proc, None
    if p is None:
        return
    kids = stack.descendants(p.pid)
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if p.poll() is not None and stack.wait_gone(kids, 3):
            break
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass


def wrangler_log(ctx):
    try:
        with open(ctx.log, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def worker_lines(ctx, want=None, timeout=5.0):
    """The Worker's JSON log lines (one per message).  With want (a
    predicate), wait until one matches: wrangler prints a handler's
    console output a little after its answer."""
    end = time.monotonic() + timeout
    while True:
        lines = _worker_lines(ctx)
        if want is None or any(want(x) for x in lines) or \
                time.monotonic() >= end:
            return lines if want is None else [x for x in lines if want(x)]
        time.sleep(0.1)


def _worker_lines(ctx):
    out = []
    for line in wrangler_log(ctx).splitlines():
        line = line.strip()
        if line.startswith("{") and '"event":"email"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def message(ctx, subject, to="demo@example.test"):
    """A fresh message with its own Message-ID; returns (id, bytes)."""
    ctx.n += 1
    mid = "<e2e-%d-%d-%d@sender.test>" % (os.getpid(), int(time.time()),
                                          ctx.n)
    raw = ("From: =?UTF-8?Q?Zo=C3=AB_=C3=85ngstr=C3=B6m?= <a@sender.test>\r\n"
           "To: <%s>\r\n"
           "Subject: %s\r\n"
           "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
           "Message-ID: %s\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n"
           "\r\n"
           "hello through the Worker: gr\u00fc\u00dfe\r\n" % (to, subject, mid))
    return mid, raw.encode("utf-8")


def handler(ctx, raw, mail_from, rcpt, timeout=60):
    """POST to wrangler's local email handler; (status, text)."""
    target = "/cdn-cgi/handler/email?from=%s&to=%s" % (
        urllib.parse.quote(mail_from, safe=""),
        urllib.parse.quote(rcpt, safe=""))
    c = http.client.HTTPConnection("127.0.0.1", ctx.port, timeout=timeout)
    try:
        c.request("POST", target, body=raw,
                  headers={"Content-Type": "message/rfc822"})
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def stored(ctx, mid):
    """The stored copies of the message with this Message-ID."""
    st = ctx.st
    want = ("Message-ID: %s" % mid).encode().lower()
    return [m for m in st.imap_messages(st.demo_user, st.demo_password)
            if want in m.lower()]


def header_block(msg):
    return msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


def setup():
    if not os.path.exists(os.path.join(stack.BIN, "edgemail-api")):
        raise RuntimeError("bin/edgemail-api is missing (make first)")
    npm_ci()
    ctx = Ctx()
    ctx.st = stack.Stack("worker_e2e")
    try:
        ctx.st.start_dovecot()
        ctx.st.start_api(extra_conf=NO_QUEUE)
        start_wrangler(ctx)
    except BaseException:
        teardown(ctx)
        raise
    return ctx


def teardown(ctx):
    try:
        stop_wrangler(ctx)
    finally:
        if ctx.st is not None:
            if os.environ.get("KEEP") == "1":
                print("wrangler log: %s" % ctx.log)
            ctx.st.stop()


@test
def delivered_with_api_headers(ctx):
    mid, raw = message(ctx, "first")
    status, text = handler(ctx, raw, "a@sender.test", "demo@example.test")
    eq(status, 200, "handler status (%s)" % text.strip())
    copies = stored(ctx, mid)
    eq(len(copies), 1, "copies in INBOX")
    head = header_block(copies[0])
    m = re.search(r"Received: from api-client \(key ([^)]*)\)\s+by (\S+) "
                  r"\(edgemail-api\) with HTTPS id (\S+)", head)
    check(m, "no Received header of edgemail-api:\n" + head)
    eq(m.group(1), ctx.st.key_id, "key id in Received")
    check(re.search(r"^Authentication-Results: [^;\s]+;", head, re.M),
          "no Authentication-Results header:\n" + head)
    check(copies[0].endswith(raw.split(b"\r\n\r\n", 1)[1]),
          "body changed on the way")
    line = worker_lines(ctx, lambda x: x.get("id") == m.group(3))
    check(line, "no Worker log line with the API's request id %s"
          % m.group(3))
    eq(line[0].get("outcome"), "delivered", "logged outcome")
    eq(line[0].get("rcpt"), "demo@example.test", "logged rcpt")
    eq(line[0].get("size"), len(raw), "logged size")


@test
def a_second_delivery_sends_its_envelope_ahead_of_the_body(ctx):
    # The API starts the LMTP transaction while the body arrives once the
    # client has shown its key: on a kept connection, or on a new one by
    # the Edgemail-Content-SHA256 the Worker sends (worker/test covers
    # the header; test_api.py what the API does with it).  The first
    # delivery leaves an LMTP connection idle for the second.
    ids = []
    for subject in ("ahead 1", "ahead 2"):
        mid, raw = message(ctx, subject)
        status, text = handler(ctx, raw, "a@sender.test", "demo@example.test")
        eq(status, 200, "handler status (%s)" % text.strip())
        m = re.search(r"with HTTPS id (\S+)", header_block(stored(ctx, mid)[0]))
        check(m, "no Received header of edgemail-api")
        ids.append(m.group(1))
    m = re.search(r"id=%s event=done .* early=(\d)" % re.escape(ids[1]),
                  ctx.st.log("api"))
    check(m, "no done line for %s" % ids[1])
    eq(m.group(1), "1", "early envelope of the second delivery")


@test
def same_message_twice_is_stored_once(ctx):
    mid, raw = message(ctx, "twice")
    for i in (1, 2):
        if i == 2:
            # A real retry comes minutes later.  Within the same second
            # the request would carry the very same signature, which the
            # API refuses as a replay (401, a temporary failure too).
            time.sleep(1.05 - (time.time() % 1.0))
        status, text = handler(ctx, raw, "a@sender.test",
                               "demo@example.test")
        eq(status, 200, "handler status of send %d (%s)" % (i, text.strip()))
    eq(len(stored(ctx, mid)), 1,
       "copies in INBOX after the same message was handed over twice "
       "(Idempotency-Key)")


@test
def a_list_copy_with_the_same_message_id_is_delivered_once_more(ctx):
    # The direct message, then a mailing list's copy: the same
    # Message-ID, another body.  The API answers the list copy's first
    # post 409; the Worker posts it again under the key of its content.
    # The list's retry of it, with a new trace field on top, is then
    # recognised: 2 copies in all, not 3.
    mid, raw = message(ctx, "list-copy")
    status, text = handler(ctx, raw, "a@sender.test", "demo@example.test")
    eq(status, 200, "the direct message (%s)" % text.strip())
    copy = raw.replace(b"\r\n\r\n", b"\r\nList-Id: <l.sender.test>\r\n"
                       b"\r\n", 1) + b"-- \r\nthe list's footer\r\n"
    for i, r in enumerate((copy, b"Received: from list.sender.test by "
                           b"mx.cloudflare.net; Thu, 03 Dec 2026 10:05:00 "
                           b"+0000\r\n" + copy)):
        time.sleep(1.05 - (time.time() % 1.0))
        status, text = handler(ctx, r, "list-bounces@sender.test",
                               "demo@example.test")
        eq(status, 200, "the list's copy, send %d (%s)" % (i + 1,
                                                           text.strip()))
    got = stored(ctx, mid)
    eq(len(got), 2, "copies with this Message-ID")
    eq(sum(1 for m in got if b"the list's footer" in m), 1,
       "the list's copy once")
    conflicts = worker_lines(ctx, lambda x: x.get("outcome") == "conflict")
    check(len(conflicts) >= 2, "the Worker logged the 409s: %r" % conflicts)


@test
def unknown_recipient_is_rejected(ctx):
    mid, raw = message(ctx, "nobody", to="ghost@example.test")
    status, text = handler(ctx, raw, "a@sender.test", "ghost@example.test")
    eq(status, 400, "handler status (%s)" % text.strip())
    m = re.search(r"Worker rejected email with the following reason: (.*)",
                  text)
    check(m, "not a setReject: %r" % text)
    check(re.match(r"550 5\.1\.1 ", m.group(1)),
          "reason is not '550 5.1.1 ...': %r" % m.group(1))
    line = worker_lines(ctx, lambda x: x.get("rcpt") ==
                        "ghost@example.test")
    check(line and line[-1].get("outcome") == "reject",
          "no reject log line: %r" % line)


@test
def no_secret_in_worker_log(ctx):
    log = wrangler_log(ctx)
    check(ctx.st.secret not in log, "the HMAC secret is in wrangler's log")
    check(worker_lines(ctx), "no Worker log lines at all")


@test
def dovecot_down_is_a_temporary_failure(ctx):
    st = ctx.st
    mid, raw = message(ctx, "outage")
    st.stop_dovecot()
    try:
        status, text = handler(ctx, raw, "a@sender.test",
                               "demo@example.test")
        eq(status, 500, "handler status with Dovecot stopped (%s)"
           % text.strip()[:300])
        check("rejected" not in text, "setReject during an outage: %r"
              % text[:300])
        check("try again later" in text, "not the Worker's temporary "
              "failure: %r" % text[:300])
        line = worker_lines(ctx, lambda x: x.get("outcome") == "retry")
        check(line and line[-1].get("status") == 503,
              "no retry log line with status 503: %r" % line[-1:])
    finally:
        st.start_dovecot()
    ctx.outage = (mid, raw)


@test
def retry_after_outage_delivers_once(ctx):
    mid, raw = getattr(ctx, "outage", (None, None))
    check(mid, "the outage test did not run")
    status, text = (0, "")
    # The API's LMTP connections to the old Dovecot may need a moment.
    for _ in range(20):
        status, text = handler(ctx, raw, "a@sender.test",
                               "demo@example.test")
        if status == 200:
            break
        time.sleep(0.5)
    eq(status, 200, "handler status of the retry (%s)" % text.strip()[:300])
    eq(len(stored(ctx, mid)), 1, "copies in INBOX after the retry")


def handler_retrying(ctx, raw, rcpt, tries=3):
    """Hand a message over like a sender that retries temporary failures
    (the first request after an API restart may find a stale pooled
    connection)."""
    status, text = 0, ""
    for _ in range(tries):
        status, text = handler(ctx, raw, "a@sender.test", rcpt)
        if status != 500:
            break
        time.sleep(1.05)
    return status, text


@test
def dovecot_down_with_queueing_is_queued_then_delivered(ctx):
    st = ctx.st
    st.stop_api()
    st.start_api(extra_conf=QUEUE)
    mid, raw = message(ctx, "queued")
    st.stop_dovecot()
    try:
        status, text = handler_retrying(ctx, raw, "demo@example.test")
        eq(status, 200, "handler status with Dovecot stopped and queueing "
           "on (%s)" % text.strip()[:300])
        line = worker_lines(ctx, lambda x: x.get("outcome") == "queued")
        check(line and line[-1].get("status") == 202,
              "no queued log line with status 202: %r" % line[-1:])
    finally:
        st.start_dovecot()
    stack.wait_for(lambda: stored(ctx, mid), 60, interval=0.5,
                   what="the queued message in INBOX")
    time.sleep(1.5)
    eq(len(stored(ctx, mid)), 1, "copies in INBOX after the queue ran")


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
