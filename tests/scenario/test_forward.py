"""test_forward.py - aliases to outside addresses (DESIGN section 7).

Inbound mail for an alias with an outside target is committed to the
relay's outbound spool with an SRS sender, and edgemail-submit sends it
through the smarthost (a fake one here: the outside world).  Proves: the
forward arrives with an SRS0 sender in our domain, local and outside
targets of one alias both get their copy, a queued retry never forwards
twice, a bounce to the SRS address goes back to the original sender, and
a forged SRS address is refused.
"""
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
import apiclient  # noqa: E402
from stack import Stack, free_ports, port_open, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = "demo@example.test"
USER, PASS = "relayuser", "relay-pass-1"


class Ctx:
    pass


def post(c, body, **kw):
    s = c.st
    return apiclient.post(s.ports["api"], s.ca, s.key_id, s.secret, body, **kw)


def body(tag):
    return (b"From: <a@sender.test>\r\nSubject: fwd %s\r\n"
            b"Message-ID: <%s@sender.test>\r\n\r\nhello\r\n") % (
                tag.encode(), tag.encode())


def arrived(c, tag):
    """Messages the smarthost got for this tag: [(meta, eml)]."""
    out = []
    for meta in sorted(glob.glob(os.path.join(c.sh_dir, "*.json"))):
        with open(meta[:-5] + ".eml", "rb") as f:
            eml = f.read()
        if b"Subject: fwd " + tag.encode() + b"\r\n" in eml:
            with open(meta) as f:
                out.append((json.load(f), eml))
    return out


def copies(c, tag):
    needle = b"Subject: fwd " + tag.encode() + b"\r\n"
    return sum(1 for m in c.st.imap_messages(DEMO, c.st.demo_password)
               if needle in m)


def setup():
    c = Ctx()
    c.smarthost = None
    c.st = st = Stack("forward")
    try:
        st.start_dovecot()
        with open(st.path("directory", "aliases"), "a") as f:
            f.write("fwd@example.test outside@far.test\n")
            f.write("mix@example.test demo@example.test, other@far.test\n")
        c.sh_port = free_ports(1)[0]
        c.sh_dir = st.path("smarthost")
        with open(st.path("relay.auth"), "w") as f:
            f.write("[127.0.0.1]:%d %s:%s\n" % (c.sh_port, USER, PASS))
        os.chmod(st.path("relay.auth"), 0o600)
        log = open(st.path("smarthost.log"), "ab")
        c.smarthost = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "fake_smarthost.py"),
             "--port", str(c.sh_port), "--cert", st.path("tls", "server.pem"),
             "--key", st.path("tls", "server.key"), "--dir", c.sh_dir,
             "--user", USER, "--password", PASS],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(lambda: port_open(c.sh_port), 15, what="fake smarthost")
        st.start_submit({"relayhost": "[127.0.0.1]:%d" % c.sh_port,
                         "relayhost_auth_file": st.path("relay.auth"),
                         "relayhost_ca_file": st.ca,
                         "queue_run_interval": "1s"})
        st.start_api({"queue_retry_min": "1s", "queue_retry_max": "2s"})
    except BaseException:
        teardown(c)
        raise
    return c


def teardown(c):
    try:
        if c.smarthost is not None and c.smarthost.poll() is None:
            c.smarthost.terminate()
            c.smarthost.wait(10)
    finally:
        c.st.stop()


@test
def inbound_forward_reaches_the_smarthost_with_an_srs_sender(c):
    code, j, _ = post(c, body("f1"), rcpts=["fwd@example.test"])
    eq(code, 200, "status %r" % (j,))
    eq(j["recipients"][0]["status"], "delivered", "recipient status")
    check("forwarded" in j["recipients"][0]["message"], "message %r" % j)
    wait_for(lambda: arrived(c, "f1"), 20, what="forward at the smarthost")
    meta, eml = arrived(c, "f1")[0]
    eq(meta["rcpt_tos"], ["outside@far.test"], "forward target")
    check(meta["mail_from"].startswith("SRS0=") and
          meta["mail_from"].endswith("=sender.test=a@example.test"),
          "SRS sender: %r" % meta["mail_from"])
    check(b"(edgemail-api) with HTTPS id" in eml, "our Received: kept")


@test
def alias_with_local_and_outside_targets_gives_both_copies(c):
    code, j, _ = post(c, body("m1"), rcpts=["mix@example.test"])
    eq(code, 200, "status %r" % (j,))
    eq(copies(c, "m1"), 1, "local copy")
    wait_for(lambda: arrived(c, "m1"), 20, what="forward at the smarthost")
    eq(arrived(c, "m1")[0][0]["rcpt_tos"], ["other@far.test"], "target")


@test
def queued_retry_never_forwards_twice(c):
    c.st.stop_dovecot()
    try:
        code, j, _ = post(c, body("q1"), rcpts=["mix@example.test"])
        eq(code, 202, "queued %r" % (j,))
    finally:
        c.st.start_dovecot()
    wait_for(lambda: copies(c, "q1") == 1, 20, what="local copy after retry")
    wait_for(lambda: arrived(c, "q1"), 20, what="forward")
    time.sleep(3)
    eq(len(arrived(c, "q1")), 1, "forwards at the smarthost")


@test
def bounce_to_the_srs_address_goes_back_to_the_original_sender(c):
    post(c, body("b1"), rcpts=["fwd@example.test"])
    wait_for(lambda: arrived(c, "b1"), 20, what="forward")
    srs = arrived(c, "b1")[0][0]["mail_from"]
    dsn = (b"From: MAILER-DAEMON@far.test\r\nSubject: fwd b1-bounce\r\n"
           b"\r\nUndeliverable\r\n")
    code, j, _ = post(c, dsn, rcpts=[srs], mail_from="")
    eq(code, 200, "status %r" % (j,))
    wait_for(lambda: arrived(c, "b1-bounce"), 20, what="bounce forwarded")
    meta = arrived(c, "b1-bounce")[0][0]
    eq(meta["rcpt_tos"], ["a@sender.test"], "back to the original sender")
    check(meta["mail_from"] in ("", "<>"), "null sender kept: %r" % meta["mail_from"])


@test
def forged_srs_address_is_refused(c):
    code, j, _ = post(c, body("x1"),
                      rcpts=["SRS0=abcd=aa=victim.test=v@example.test"])
    eq(code, 422, "status %r" % (j,))
    eq(j["recipients"][0]["code"], 550, "code")


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
