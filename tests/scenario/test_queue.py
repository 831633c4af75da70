"""test_queue.py - queue management (edgemailctl queue) on a live API.

Held messages stay put until released; retry and flush bring a deferred
message forward; delete removes it without a bounce; a message that
outlives max_queue_lifetime is bounced to its sender with a DSN (by LMTP
to a local sender, through the relay's outbound spool to an outside one);
/metrics counts the queue.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
import apiclient  # noqa: E402
from stack import BIN, Stack, wait_for  # noqa: E402

DEMO = "demo@example.test"
U1 = "u1@example.test"
PW = "queue-pass-1"
SLOW = {"queue_retry_min": "60s", "queue_retry_max": "60s",
        "queue_run_interval": "1s"}


def ctl(s, *args):
    p = subprocess.run([os.path.join(BIN, "edgemailctl"), "-c", s.conf_path,
                        *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def post(s, body, **kw):
    return apiclient.post(s.ports["api"], s.ca, s.key_id, s.secret, body, **kw)


def body(tag):
    return (b"From: <demo@example.test>\r\nSubject: queue %s\r\n\r\nhi\r\n"
            % tag.encode())


def copies(s, user, tag):
    pw = s.demo_password if user == DEMO else PW
    needle = b"Subject: queue " + tag.encode() + b"\r\n"
    return sum(1 for m in s.imap_messages(user, pw) if needle in m)


def queued(s, tag):
    """Queue a message for U1 while Dovecot is down; returns its id."""
    s.stop_dovecot()
    try:
        code, j, _ = post(s, body(tag), rcpts=[U1], mail_from=DEMO)
        eq(code, 202, "queued %r" % (j,))
        return j["id"]
    finally:
        s.start_dovecot()


def listed(s):
    rc, out, err = ctl(s, "queue", "list", "--json")
    eq(rc, 0, "queue list: %s" % err)
    return {m["id"]: m for m in json.loads(out)}


def setup():
    s = Stack("queue")
    s.start_dovecot()
    s.add_user(U1, PW)
    s.start_api(SLOW)
    return s


def teardown(s):
    s.stop()


@test
def held_message_waits_until_released(s):
    mid = queued(s, "h1")
    rc, out, err = ctl(s, "queue", "hold", mid)
    eq(rc, 0, "hold: %s" % err)
    check(listed(s)[mid]["held"], "listed as held")
    ctl(s, "queue", "retry", mid)
    time.sleep(2.5)
    eq(copies(s, U1, "h1"), 0, "copies while held")
    rc, out, err = ctl(s, "queue", "release", mid)
    eq(rc, 0, "release: %s" % err)
    ctl(s, "queue", "retry", mid)
    wait_for(lambda: copies(s, U1, "h1") == 1, 15, what="delivery after release")
    wait_for(lambda: mid not in listed(s), 10, what="queue emptied")


@test
def retry_delivers_a_deferred_message_now(s):
    mid = queued(s, "r1")
    time.sleep(2)
    eq(copies(s, U1, "r1"), 0, "not retried before its time (60 s)")
    m = listed(s)[mid]
    eq(m["recipients"][0]["state"], "pending", "state")
    rc, out, err = ctl(s, "queue", "retry", mid)
    eq(rc, 0, "retry: %s" % err)
    wait_for(lambda: copies(s, U1, "r1") == 1, 15, what="delivery after retry")


@test
def flush_delivers_every_deferred_message(s):
    a, b = queued(s, "f1"), queued(s, "f2")
    rc, out, err = ctl(s, "queue", "flush")
    eq(rc, 0, "flush: %s" % err)
    wait_for(lambda: copies(s, U1, "f1") == 1 and copies(s, U1, "f2") == 1,
             15, what="delivery after flush")
    wait_for(lambda: a not in listed(s) and b not in listed(s), 10,
             what="queue emptied")


@test
def an_early_envelope_whose_connection_breaks_is_queued_not_lost(s):
    # MAIL and RCPT go to Dovecot with the headers (the signature is
    # checked then: Edgemail-Content-SHA256); Dovecot goes away before
    # the body comes.  The begun transaction breaks: TEMP, spooled, 202,
    # and delivered once Dovecot is back.
    eq(post(s, body("e0"), rcpts=[U1], mail_from=DEMO)[0], 200,
       "a delivery first, so an LMTP connection is idle")
    req = apiclient.request_bytes(s.key_id, s.secret, body("e1"),
                                  rcpts=[U1], mail_from=DEMO, declare=True)
    head, _, rest = req.partition(b"\r\n\r\n")
    k = apiclient.KeptConnection(s.ports["api"], s.ca)
    try:
        k.sock.sendall(head + b"\r\n\r\n")
        time.sleep(0.5)
        s.stop_dovecot()
        try:
            k.sock.sendall(rest)
            code, _, rb = apiclient.read_response(k.sock)
            j = json.loads(rb)
            eq(code, 202, "status %r" % (j,))
        finally:
            s.start_dovecot()
    finally:
        k.close()
    check(re.search(r"id=%s event=done .* early=1" % j["id"], s.log("api")),
          "the envelope did not go ahead")
    rc, out, err = ctl(s, "queue", "flush")
    eq(rc, 0, "flush: %s" % err)
    wait_for(lambda: copies(s, U1, "e1") == 1, 15, what="delivery after flush")


@test
def queued_message_to_an_alias_is_expanded_on_retry(s):
    s.stop_dovecot()
    try:
        code, j, _ = post(s, body("a1"), rcpts=["postmaster@example.test"])
        eq(code, 202, "queued %r" % (j,))
    finally:
        s.start_dovecot()
    ctl(s, "queue", "retry", j["id"])
    wait_for(lambda: copies(s, DEMO, "a1") == 1, 15,
             what="delivery to the alias's mailbox")


@test
def delete_removes_without_a_bounce(s):
    mid = queued(s, "d1")
    rc, out, err = ctl(s, "queue", "delete", mid)
    eq(rc, 0, "delete: %s" % err)
    check(mid not in listed(s), "gone from the list")
    time.sleep(2)
    eq(copies(s, U1, "d1"), 0, "not delivered")
    rc, out, err = ctl(s, "queue", "show", mid)
    eq(rc, 1, "show of a deleted message")


@test
def queue_show_and_metrics_count_a_deferred_message(s):
    mid = queued(s, "m1")
    rc, out, err = ctl(s, "queue", "show", mid, "--json")
    eq(rc, 0, "show: %s" % err)
    j = json.loads(out)
    eq(j["from"], DEMO, "envelope sender")
    check("Subject: queue m1" in j["header"], "header shown")
    st, data, hdrs = s.get("/metrics")
    check(b'edgemail_queue_messages{queue="inbound"}' in data, "gauge present")
    ctl(s, "queue", "delete", mid)


def expire_one(s, tag, mail_from):
    """Queue a message for U1 on an API whose queue gives up after 3 s,
    with Dovecot down until it has expired; returns its id."""
    s.stop_api()
    s.start_api({"queue_retry_min": "1s", "queue_retry_max": "1s",
                 "queue_run_interval": "1s", "max_queue_lifetime": "3s"})
    s.stop_dovecot()
    try:
        code, j, _ = post(s, body(tag), rcpts=[U1], mail_from=mail_from)
        eq(code, 202, "queued %r" % (j,))
        time.sleep(6)   # retries fail (Dovecot down) until it expires
    finally:
        s.start_dovecot()
    return j["id"]


@test
def expired_message_bounces_to_the_local_sender(s):
    expire_one(s, "x1", DEMO)

    def dsn():
        return [m for m in s.imap_messages(DEMO, s.demo_password)
                if b"Undelivered Mail Returned to Sender" in m
                and b"Subject: queue x1" in m]
    wait_for(lambda: dsn(), 20, what="DSN for the expired message")
    check(b"delivery time expired" in dsn()[0], "reason: expired")
    eq(copies(s, U1, "x1"), 0, "the expired message is not delivered")
    s.stop_api()
    s.start_api(SLOW)


def outbound_files(s):
    d = s.path("outbound", "queue")
    out = {}
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


@test
def expired_message_from_outside_bounces_through_the_relay(s):
    """Most inbound mail comes from outside: its DSN cannot go to a
    mailbox here, so it is committed to the relay's outbound spool
    (null sender), and the message leaves the queue only then."""
    far = "sender@far.test"
    mid = expire_one(s, "x2", far)

    def dsn():
        return [(n, d) for n, d in outbound_files(s).items()
                if n.startswith(mid) and b"Subject: queue x2" in d]
    got = wait_for(dsn, 20, what="the DSN in the outbound spool")
    name, data = got[0]
    eq(name, mid + "-dsn0", "one DSN id per message and bounce")
    check(b"\nfrom: \n" in data, "null envelope sender")
    check(("\nrcpt: %s\n" % far).encode() in data, "to the outside sender")
    check(b"delivery time expired" in data, "reason: expired")
    wait_for(lambda: mid not in listed(s), 10,
             what="the message out of the inbound queue")
    os.unlink(os.path.join(s.path("outbound", "queue"), name))
    s.stop_api()
    s.start_api(SLOW)


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
