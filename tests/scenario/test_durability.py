"""test_durability.py - never lose, never duplicate (DESIGN sections 3-4).

Real Dovecot, real API processes, killed for real.  Proves: a 2xx means
the message is in a mailbox or in the spool; deferred recipients are
retried and delivered once; idempotent retries never deliver twice (also
across kill -9 at random instants and at targeted points); permanent
failures from the queue come back to a local sender as a DSN; fsync
failure, a full disk and spool_max_bytes answer 503, never 2xx.
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
import apiclient  # noqa: E402
from stack import Stack, wait_for  # noqa: E402

DEMO = "demo@example.test"
U1 = "u1@example.test"
PW = "durable-pass-1"
FAST = {"queue_retry_min": "1s", "queue_retry_max": "2s",
        "queue_run_interval": "1s"}


def post(s, body, **kw):
    return apiclient.post(s.ports["api"], s.ca, s.key_id, s.secret, body, **kw)


def body(tag):
    return (b"From: <a@sender.test>\r\nSubject: durable %s\r\n"
            b"Message-ID: <%s@sender.test>\r\n\r\npayload %s\r\n") % (
                tag.encode(), tag.encode(), tag.encode())


def copies(s, user, tag, password=None):
    pw = password or (s.demo_password if user == DEMO else PW)
    needle = b"Subject: durable " + tag.encode() + b"\r\n"
    return sum(1 for m in s.imap_messages(user, pw) if needle in m)


def spool_files(s):
    d = os.path.join(s.dir, "spool", "queue")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def restart_api(s, extra=None, env=None):
    s.stop_api()
    conf = dict(FAST)
    conf.update(extra or {})
    s.start_api(conf, env=env)


def setup():
    s = Stack("durability")
    s.start_dovecot()
    s.add_user(U1, PW)
    s.start_api(FAST)
    return s


def teardown(s):
    s.stop()


@test
def dovecot_down_gives_202_then_delivered_exactly_once(s):
    s.stop_dovecot()
    try:
        code, j, _ = post(s, body("q1"), rcpts=[DEMO])
        eq(code, 202, "status %r" % (j,))
        eq(j["status"], "queued", "status field")
        eq(j["recipients"][0]["status"], "deferred", "recipient status")
        check(j["id"] in spool_files(s), "message %s in the spool: %r" % (
            j["id"], spool_files(s)))
    finally:
        s.start_dovecot()
    wait_for(lambda: copies(s, DEMO, "q1") >= 1, 20, what="queued delivery")
    time.sleep(1.5)
    eq(copies(s, DEMO, "q1"), 1, "copies")
    wait_for(lambda: j["id"] not in spool_files(s), 10, what="spool cleaned")


@test
def queued_message_survives_an_api_restart(s):
    s.stop_dovecot()
    try:
        code, j, _ = post(s, body("q2"), rcpts=[DEMO])
        eq(code, 202, "status %r" % (j,))
        s.stop_prog("api", sig=signal.SIGKILL)
    finally:
        s.start_dovecot()
    s.start_api(FAST)
    wait_for(lambda: copies(s, DEMO, "q2") >= 1, 20, what="delivery after restart")
    eq(copies(s, DEMO, "q2"), 1, "copies")


@test
def idempotent_retry_gets_the_first_answer_and_one_copy(s):
    b = body("i1")
    c1, j1, _ = post(s, b, idem="key-i1")
    c2, j2, _ = post(s, b, idem="key-i1")
    eq(c1, 200, "first %r" % (j1,))
    eq((c2, j2), (c1, j1), "retry answer")
    eq(copies(s, DEMO, "i1"), 1, "copies")


@test
def same_idempotency_key_with_another_body_gives_409(s):
    c1, j1, _ = post(s, body("i2"), idem="key-i2")
    eq(c1, 200, "first %r" % (j1,))
    c2, j2, _ = post(s, body("i2-other"), idem="key-i2")
    eq(c2, 409, "conflict %r" % (j2,))
    eq(j2["status"], "conflict", "status field")
    eq(copies(s, DEMO, "i2-other"), 0, "the other body is not delivered")


@test
def same_key_and_body_with_another_envelope_gives_409(s):
    # The envelope is part of what a key names: a retry must repeat it,
    # or new recipients would be told "delivered" and never get it.
    b = body("i4")
    c1, j1, _ = post(s, b, idem="key-i4", rcpts=[DEMO, U1])
    eq(c1, 200, "first %r" % (j1,))
    c2, j2, _ = post(s, b, idem="key-i4", rcpts=[U1, DEMO])
    eq((c2, j2), (c1, j1), "the same recipients in another order")
    c3, j3, _ = post(s, b, idem="key-i4", rcpts=[DEMO])
    eq(c3, 409, "other recipients %r" % (j3,))
    c4, j4, _ = post(s, b, idem="key-i4", rcpts=[DEMO, U1],
                     mail_from="other@sender.test")
    eq(c4, 409, "other sender %r" % (j4,))
    eq(copies(s, U1, "i4"), 1, "copies")


@test
def two_clients_with_one_idempotency_key_do_not_share_it(s):
    kid, secret = "rest2", "rest2-secret-0123456789abcdef"
    with open(s.path("keys", "hmac.keys"), "a") as f:
        f.write("%s %s\n" % (kid, secret))
    restart_api(s)
    b = body("i5")
    c1, j1, _ = post(s, b, idem="key-i5")
    eq(c1, 200, "first client %r" % (j1,))
    c2, j2, _ = apiclient.post(s.ports["api"], s.ca, kid, secret, b,
                               idem="key-i5")
    eq(c2, 200, "second client %r" % (j2,))
    check(j2["id"] != j1["id"], "its own answer, not the first client's")
    eq(copies(s, DEMO, "i5"), 2, "one copy per client")


@test
def retry_through_the_edge_with_fresh_trace_fields_is_the_same_message(s):
    # The edge puts new Received/ARC/Authentication-Results fields on top
    # of every attempt; the content below them is what identifies it.
    def edge(attempt):
        return (b"Received: from mx.sender.test by mx.cloudflare.net; attempt %d\r\n"
                b"ARC-Seal: i=1; a=rsa-sha256; t=%d; cv=none\r\n"
                b"Authentication-Results: mx.cloudflare.net; spf=pass\r\n"
                % (attempt, attempt)) + body("e1")
    c1, j1, _ = post(s, edge(1), idem="key-e1")
    eq(c1, 200, "first %r" % (j1,))
    c2, j2, _ = post(s, edge(2), idem="key-e1")
    eq((c2, j2), (c1, j1), "retry with new trace fields")
    eq(copies(s, DEMO, "e1"), 1, "copies")


@test
def idempotent_retry_of_a_queued_request_never_delivers_twice(s):
    b = body("i3")
    s.stop_dovecot()
    try:
        c1, j1, _ = post(s, b, idem="key-i3")
        eq(c1, 202, "first %r" % (j1,))
        c2, j2, _ = post(s, b, idem="key-i3")
        eq(c2, 202, "retry %r" % (j2,))
        eq(j2["id"], j1["id"], "same first outcome")
    finally:
        s.start_dovecot()
    wait_for(lambda: copies(s, DEMO, "i3") >= 1, 20, what="delivery")
    post(s, b, idem="key-i3")
    time.sleep(1.5)
    eq(copies(s, DEMO, "i3"), 1, "copies")


@test
def permanent_failure_in_the_queue_bounces_to_a_local_sender(s):
    # A mailbox the directory knows but Dovecot refuses for good once it
    # is back: over quota (552 5.2.2).
    s.add_user("full@example.test", PW, quota="1")
    s.stop_dovecot()
    try:
        big = body("b1") + b"x" * 5000 + b"\r\n"   # over 1 KiB of quota
        code, j, _ = post(s, big, mail_from=DEMO,
                          rcpts=["full@example.test", U1])
        eq(code, 202, "status %r" % (j,))
    finally:
        s.start_dovecot()
    wait_for(lambda: copies(s, U1, "b1") == 1, 20, what="delivery to u1")

    def dsn():
        return [m for m in s.imap_messages(DEMO, s.demo_password)
                if b"Undelivered Mail Returned to Sender" in m]
    wait_for(lambda: dsn(), 20, what="DSN in the sender's INBOX")
    m = dsn()[0]
    check(b"multipart/report" in m and b"report-type=delivery-status" in m,
          "RFC 3464 report")
    check(b"Final-Recipient: rfc822; full@example.test" in m, "failed recipient named")
    check(b"Status: 5.2.2" in m, "status code: %r" % m[-1500:])
    check(b"Subject: durable b1" in m, "original headers included")
    check(b"u1@example.test" not in m.split(b"message/delivery-status")[1]
          .split(b"text/rfc822-headers")[0], "delivered recipient not reported")


def _crash_trial(s, tag, env, delay):
    """Post with an idempotency key while the API may die; then retry
    with the same key until a 2xx.  Returns the HTTP codes seen."""
    b = body(tag)
    key = "crash-" + tag
    seen = []
    result = {}

    def client():
        try:
            result["r"] = post(s, b, idem=key, timeout=10)
        except Exception as e:  # noqa: BLE001 - connection killed
            result["e"] = e
    t = threading.Thread(target=client)
    t.start()
    if delay is not None:
        time.sleep(delay)
        p = s.procs.get("api")
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
    t.join(15)
    if "r" in result:
        seen.append(result["r"][0])
    s.stop_prog("api")
    s.start_api(FAST, env=env)
    for attempt in range(1, 11):
        if seen and 200 <= seen[-1] < 300:
            break
        try:
            # A real client signs every retry afresh (the API refuses a
            # replayed signature): apiclient gives each a fresh timestamp.
            seen.append(post(s, b, idem=key)[0])
        except OSError:
            time.sleep(0.2)
            continue
        if seen[-1] == 503:
            time.sleep(0.5)
    return seen


@test
def kill_9_at_random_instants_never_loses_or_duplicates(s):
    rnd = random.Random(1234)
    tags = []
    for i in range(50):
        tag = "k%02d" % i
        tags.append(tag)
        seen = _crash_trial(s, tag, None, rnd.uniform(0.0, 0.04))
        check(seen and 200 <= seen[-1] < 300,
              "trial %s never got a 2xx: %r" % (tag, seen))
    time.sleep(2)
    msgs = s.imap_messages(DEMO, s.demo_password)
    for tag in tags:
        needle = b"Subject: durable " + tag.encode() + b"\r\n"
        n = sum(1 for m in msgs if needle in m)
        eq(n, 1, "copies of %s" % tag)


@test
def targeted_crash_points_never_lose_or_duplicate(s):
    for point in ("after_lmtp", "before_response"):
        tag = "t-" + point
        env = {"EDGEMAIL_CRASHPOINT": point}
        restart_api(s, env=env)
        seen = _crash_trial(s, tag, {}, None)
        check(seen and 200 <= seen[-1] < 300, "%s: %r" % (point, seen))
        eq(copies(s, DEMO, tag), 1, "copies after a crash at " + point)
    # after_spool: Dovecot down, so the message is queued, then the crash.
    tag = "t-after_spool"
    restart_api(s, env={"EDGEMAIL_CRASHPOINT": "after_spool"})
    s.stop_dovecot()
    try:
        try:
            post(s, body(tag), idem="crash-" + tag, timeout=10)
        except OSError:
            pass
        s.stop_prog("api")
        s.start_api(FAST)
        code, j, _ = post(s, body(tag), idem="crash-" + tag)
        check(code in (202, 503), "retry while Dovecot is down: %d %r" % (code, j))
    finally:
        s.start_dovecot()
    wait_for(lambda: copies(s, DEMO, tag) >= 1, 20, what="delivery")
    time.sleep(1.5)
    eq(copies(s, DEMO, tag), 1, "copies after a crash at after_spool")


@test
def fsync_failure_gives_503_never_2xx(s):
    env = {"LD_PRELOAD": "/usr/lib/fiu/fiu_run_preload.so "
                         "/usr/lib/fiu/fiu_posix_preload.so",
           "FIU_ENABLE": "enable name=posix/io/sync/fsync"}
    restart_api(s, env=env)
    s.stop_dovecot()
    try:
        code, j, h = post(s, body("f1"))
        eq(code, 503, "status %r" % (j,))
        check("spool" in j.get("reason", ""), "reason names the spool: %r" % j)
        check(int(h.get("Retry-After", "0")) > 0, "Retry-After")
        eq(spool_files(s), [], "nothing left in the spool")
    finally:
        s.start_dovecot()
        restart_api(s)


@test
def spool_max_bytes_gives_503(s):
    restart_api(s, {"spool_max_bytes": "100"})
    s.stop_dovecot()
    try:
        code, j, _ = post(s, body("m1"))
        eq(code, 503, "status %r" % (j,))
        check("spool full" in j.get("reason", ""), "reason %r" % j)
    finally:
        s.start_dovecot()
        restart_api(s)


@test
def full_disk_gives_503_and_recovers_when_space_returns(s):
    if os.geteuid() != 0:
        raise harness.CheckFailed("needs root to mount a small tmpfs")
    spool = os.path.join(s.dir, "smallspool")
    os.makedirs(spool, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", spool],
                   check=True)
    try:
        restart_api(s, {"spool_dir": spool})
        filler = os.path.join(spool, "filler")
        with open(filler, "wb") as f:
            try:
                f.write(b"x" * 200000)
            except OSError:
                pass
        s.stop_dovecot()
        big = body("d1") + b"z" * 30000 + b"\r\n"
        code, j, _ = post(s, big)
        eq(code, 503, "disk full %r" % (j,))
        os.unlink(filler)
        code, j, _ = post(s, big)
        eq(code, 202, "space back %r" % (j,))
        s.start_dovecot()
        wait_for(lambda: copies(s, DEMO, "d1") == 1, 20, what="delivery")
    finally:
        if not s.dovecot_running():
            s.start_dovecot()
        s.stop_api()
        subprocess.run(["umount", spool])
        s.start_api(FAST)


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
