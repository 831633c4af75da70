"""test_dovecot_stack.py - the dev stack's Dovecot, as the other scenario
tests rely on it: stack.sh init, start and stop by PID, IMAP/POP3 logins
over TLS, LMTP delivery, the Junk folder and the global spam script,
ManageSieve, quota replies, and the same set-up run as an ordinary user.
"""
import imaplib
import os
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
from stack import (BIN, STACK_SH, Stack, pid_alive,  # noqa: E402
                   port_listening, wait_for)

MSG = (b"From: <a@sender.test>\r\n"
       b"To: <demo@example.test>\r\n"
       b"Subject: %s\r\n"
       b"Message-ID: <%s@sender.test>\r\n"
       b"%s"
       b"\r\n"
       b"body of %s\r\n")


def msg(tag, extra=b""):
    t = tag.encode()
    return MSG % (t, t, extra, t)


def snapshot(st):
    """Files init must not change when run again: secrets and the users."""
    out = {}
    for rel in ("tls/ca.pem", "tls/ca.key", "tls/server.pem",
                "tls/server.key", "keys/hmac.keys", "demo.password",
                "directory/users"):
        with open(st.path(rel), "rb") as f:
            out[rel] = f.read()
    return out


@test
def init_creates_run_dir(st):
    for rel in ("tls/ca.pem", "tls/server.pem", "tls/server.key",
                "keys/hmac.keys", "directory/users", "demo.password",
                "edgemail.conf", "dovecot/dovecot.conf", "sieve/junk.svbin"):
        check(os.path.isfile(st.path(rel)), "missing %s" % rel)
    eq(os.stat(st.path("demo.password")).st_mode & 0o777, 0o600,
       "demo.password mode")
    eq(st.key_id, "dev1", "key id")
    eq(len(st.secret), 64, "secret length (32 bytes hex)")
    with open(st.path("directory/users")) as f:
        check(f.read().startswith("demo@example.test:{SHA512-CRYPT}$6$"),
              "demo user line")
    conf = {}
    with open(st.conf_path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                conf[k.strip()] = v.strip()
    eq(conf.get("state_dir"), st.dir, "state_dir")
    eq(conf.get("api_listen"), "127.0.0.1:%d" % st.ports["api"], "api_listen")
    eq(conf.get("lmtp_server"), "unix:" + st.lmtp_socket, "lmtp_server")
    eq(conf.get("hostname"), "mx.example.test", "hostname")
    with open(st.path("dovecot/dovecot.conf")) as f:
        dc = f.read()
    check("@" + "RUN@" not in dc and "listen = 127.0.0.1" in dc,
          "dovecot.conf not filled in")


@test
def server_cert_verifies_for_ip_and_localhost(st):
    r = subprocess.run(["openssl", "verify", "-CAfile", st.ca,
                        st.path("tls/server.pem")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    eq(r.returncode, 0, "openssl verify: %s" % r.stdout.decode().strip())
    r = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName",
                        "-in", st.path("tls/server.pem")],
                       stdout=subprocess.PIPE, timeout=10)
    san = r.stdout.decode()
    check("IP Address:127.0.0.1" in san and "DNS:localhost" in san,
          "SANs: %r" % san)


@test
def init_is_idempotent(st):
    before = snapshot(st)
    st.init()
    eq(snapshot(st), before, "files changed by a second init")


@test
def dovecot_starts_and_stops_by_pid(st):
    pid = st.start_dovecot()
    check(pid_alive(pid), "master not running")
    with open(st.path("pids/dovecot.pid")) as f:
        eq(int(f.read()), pid, "pids/dovecot.pid")
    st.stop_dovecot()
    check(not pid_alive(pid), "master still running")
    check(not port_listening(st.ports["imaps"]), "IMAPS still listening")
    check(not os.path.exists(st.path("pids/dovecot.pid")), "pid file left")
    st.start_dovecot()          # for the tests below


@test
def only_the_api_and_the_relay_can_deliver(st):
    # Dovecot's own LMTP listener (base_dir/lmtp, 0666 by default) would
    # let anyone on the machine deliver past the API's checks.
    own = st.path("dovecot", "base", "lmtp")
    if os.path.exists(own):
        eq(os.stat(own).st_mode & 0o777, 0, "mode of %s" % own)
    lmtp = st.path("dovecot", "lmtp")
    eq(os.stat(lmtp).st_mode & 0o007, 0, "%s: nothing for others" % lmtp)


@test
def imap_login_over_tls(st):
    m = st.imap(st.demo_user, st.demo_password)
    try:
        typ, _ = m.select("INBOX")
        eq(typ, "OK", "SELECT INBOX")
    finally:
        m.logout()


@test
def imap_starttls_login_any_case(st):
    m = imaplib.IMAP4("127.0.0.1", st.ports["imap"], timeout=10)
    try:
        m.starttls(ssl_context=st.ssl_context())
        typ, _ = m.login("Demo@Example.TEST", st.demo_password)
        eq(typ, "OK", "LOGIN")
    finally:
        m.logout()


@test
def imap_wrong_password_fails(st):
    try:
        m = st.imap(st.demo_user, "not-the-password")
    except imaplib.IMAP4.error as e:
        check(b"AUTHENTICATIONFAILED" in str(e).encode() or
              "Authentication failed" in str(e), "reply: %s" % e)
        return
    m.logout()
    raise AssertionError("login with a wrong password succeeded")


@test
def lmtp_delivers_then_imap_and_pop3_read_it(st):
    body = msg("lmtp-one")
    refused = st.lmtp_deliver(body, [st.demo_user])
    eq(refused, {}, "refused recipients")
    eq(st.maildir_count(st.demo_user), 1, "messages in the Maildir")
    got = st.imap_messages(st.demo_user, st.demo_password)
    eq(len(got), 1, "IMAP messages")
    check(got[0].endswith(body), "IMAP copy differs: %r" % got[0][-200:])
    check(b"Delivered-To: demo@example.test" in got[0], "Delivered-To")
    pop = st.pop3_messages(st.demo_user, st.demo_password)
    eq(len(pop), 1, "POP3 messages")
    check(b"Subject: lmtp-one" in pop[0], "POP3 copy")


@test
def lmtp_unknown_user_is_550(st):
    try:
        refused = st.lmtp_deliver(msg("nobody"), ["nobody@example.test"])
    except Exception as e:  # smtplib raises when every rcpt is refused
        refused = getattr(e, "recipients", {})
    code = refused.get("nobody@example.test", (0, b""))[0]
    eq(code, 550, "reply for an unknown user")


@test
def special_folders_exist(st):
    folders = st.imap_folders(st.demo_user, st.demo_password)
    for name, flag in (("Junk", "\\Junk"), ("Sent", "\\Sent"),
                       ("Drafts", "\\Drafts"), ("Trash", "\\Trash")):
        check(name in folders, "no %s folder: %r" % (name, folders))
        check(flag in folders[name], "%s lacks %s" % (name, flag))


@test
def spam_flag_goes_to_junk(st):
    inbox = st.maildir_count(st.demo_user)
    eq(st.lmtp_deliver(msg("spam-one", b"X-Spam-Flag: YES\r\n"),
                       [st.demo_user]), {}, "refused")
    eq(st.lmtp_deliver(msg("spam-two", b"X-Edgemail-Junk: yes\r\n"),
                       [st.demo_user]), {}, "refused")
    eq(st.lmtp_deliver(msg("ham", b"X-Spam-Flag: NO\r\n"),
                       [st.demo_user]), {}, "refused")
    junk = st.imap_messages(st.demo_user, st.demo_password, "Junk")
    eq(sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in junk),
       [b"spam-one", b"spam-two"], "Junk subjects")
    eq(st.maildir_count(st.demo_user), inbox + 1, "INBOX count")


@test
def same_delivery_id_is_stored_once(st):
    inbox = st.maildir_count(st.demo_user)
    dup = msg("dup", b"X-Edgemail-Delivery-Id: test-dup-1\r\n")
    for _ in range(2):
        eq(st.lmtp_deliver(dup, [st.demo_user]), {}, "refused")
    eq(st.lmtp_deliver(msg("dup2", b"X-Edgemail-Delivery-Id: test-dup-2\r\n"),
                       [st.demo_user]), {}, "refused")
    eq(st.maildir_count(st.demo_user), inbox + 2, "INBOX count")
    check("is over the maximum" not in st.log("dovecot"),
          "duplicate period capped")


@test
def added_user_can_log_in_and_receive(st):
    st.add_user("Second@Example.test", "s3cret-pass")
    eq(st.lmtp_deliver(msg("to-second"), ["second@example.test"]), {},
       "refused")
    got = st.imap_messages("second@example.test", "s3cret-pass")
    eq(len(got), 1, "messages of the new user")


@test
def over_quota_is_552_at_rcpt(st):
    # 2k with the default 10 % grace: the first message brings the
    # mailbox just over its quota, the next is refused at RCPT.
    st.add_user("small@example.test", "small-pass", quota="2k")
    big = msg("big", b"X-Pad: " + b"x" * 1800 + b"\r\n")
    eq(st.lmtp_deliver(big, ["small@example.test"]), {}, "first message")
    try:
        refused = st.lmtp_deliver(msg("more"), ["small@example.test"])
    except Exception as e:  # noqa: BLE001
        refused = getattr(e, "recipients", {})
    code, text = refused.get("small@example.test", (0, b""))
    eq(code, 552, "over quota reply (%r)" % text)
    check(text.startswith(b"5.2.2"), "enhanced code: %r" % text)


@test
def managesieve_answers(st):
    with socket.create_connection(("127.0.0.1", st.ports["sieve"]),
                                  timeout=10) as s:
        s.settimeout(10)
        greeting = b""
        while b"\r\nOK" not in greeting and b"OK \"" not in greeting:
            got = s.recv(4096)
            if not got:
                break
            greeting += got
    check(b"\"IMPLEMENTATION\"" in greeting and b"STARTTLS" in greeting,
          "greeting: %r" % greeting[:200])


@test
def pop3_starttls_port_answers(st):
    with socket.create_connection(("127.0.0.1", st.ports["pop3"]),
                                  timeout=10) as s:
        s.settimeout(10)
        check(s.recv(512).startswith(b"+OK"), "POP3 greeting")


@test
def tls_uses_our_ca(st):
    ctx = ssl.create_default_context()          # system CAs only
    try:
        with socket.create_connection(("127.0.0.1", st.ports["imaps"]),
                                      timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1"):
                pass
    except ssl.SSLCertVerificationError:
        return
    raise AssertionError("IMAPS certificate verified without our CA")


@test
def fixture_talks_to_the_api(st):
    # The fixture itself: a signed POST is delivered and read back, a
    # retry of identical bytes is signed anew, a broken signature and a
    # raw request get the API's 401.  (The API's own behaviour is tested
    # in test_api.py.)
    if not os.path.exists(os.path.join(BIN, "edgemail-api")):
        print("note: no bin/edgemail-api, fixture API checks skipped")
        return
    st.start_api()
    try:
        body = msg("via-api")
        for _ in range(2):
            status, js, hdrs = st.post(body, [st.demo_user])
            eq(status, 200, "POST status (%r)" % js)
            eq(js.get("status"), "delivered", "JSON status")
            eq(hdrs.get("content-type"), "application/json", "content type")
        got = [m for m in st.imap_messages(st.demo_user, st.demo_password)
               if b"Subject: via-api" in m]
        eq(len(got), 2, "copies read over IMAP")
        status, js, _ = st.post(body, [st.demo_user],
                                raw_override={"Edgemail-Signature": "v1=" +
                                              "0" * 64})
        eq(status, 401, "forged signature")
        raw = st.raw_request(b"POST /v1/messages?rcpt=demo%40example.test "
                             b"HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"message/rfc822\r\nContent-Length: 5\r\n"
                             b"\r\nhello")
        check(raw.startswith(b"HTTP/1.1 401"), "raw reply: %r" % raw[:80])
    finally:
        eq(st.stop_api(), 0, "API exit status after TERM")


@test
def stack_sh_stop_stops_recorded_pids(st):
    # stack.sh stop must stop what pids/ names, Dovecot included.
    pid = st.dovecot.pid
    r = subprocess.run([STACK_SH, "stop", st.dir], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    eq(r.returncode, 0, "stack.sh stop: %s" % r.stdout.decode())
    st.dovecot.wait(10)
    check(not pid_alive(pid), "Dovecot still running")
    st.dovecot = None


@test
def runs_as_an_ordinary_user(st):
    # The same init and Dovecot as `nobody`: no root-only settings.
    if os.geteuid() != 0:
        return          # already running as an ordinary user
    other = Stack("dovecot-nobody", init=False)
    try:
        os.chown(other.dir, 65534, 65534)
        env = dict(other.env, HOME=other.dir)
        pre = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        r = subprocess.run(pre + [STACK_SH, "init", other.dir], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        eq(r.returncode, 0, "init as nobody: %s" % r.stdout.decode())
        other.load()
        other.dovecot = subprocess.Popen(
            pre + ["dovecot", "-F", "-c", other.path("dovecot/dovecot.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: os.path.exists(other.lmtp_socket) and
                 port_listening(other.ports["imaps"]), 15,
                 what="Dovecot as nobody")
        eq(other.lmtp_deliver(msg("as-nobody"), [other.demo_user]), {},
           "refused")
        got = other.imap_messages(other.demo_user, other.demo_password)
        eq(len(got), 1, "messages")
        owner = os.stat(other.maildir(other.demo_user)).st_uid
        eq(owner, 65534, "Maildir owner")
    finally:
        other.stop()


def setup():
    return Stack("dovecot_stack")


def teardown(st):
    st.stop()


if __name__ == "__main__":
    harness.main(setup, teardown)
