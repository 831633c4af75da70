"""test_submit.py - edgemail-submit against real Dovecot and a smarthost.

Proves DESIGN section 5 end to end with real processes on loopback:
Python smtplib (and raw sockets where a client must misbehave) as the
mail client, Dovecot for passwords and mailboxes, and
tests/scenario/fake_smarthost.py (aiosmtpd, STARTTLS + AUTH required) as
the outside world.  Covers: AUTH only after TLS, passwords shared with
IMAP, suspended users, sender ownership (envelope and From:), limits,
every SMTP smuggling end-of-data variant, viruses and encrypted archives,
DKIM signatures that dkimpy verifies, local delivery read back over IMAP,
queueing while the smarthost is down, bounces into the sender's INBOX,
and a crash after 250 that still delivers exactly once.
"""
import base64
import email
import glob
import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
from stack import Stack, free_ports, port_open, wait_for  # noqa: E402

import dkim  # noqa: E402  (python3-dkim)

HERE = os.path.dirname(os.path.abspath(__file__))
PW = "submit-pass-123"
BOB = "bob@example.test"
SUS = "sus@example.test"
GROUP = "team@example.test"
ALIAS = "sales@example.test"
FORWARD = "fwd@example.test"
MIXED = "mixed@example.test"   # a mailbox here and an address outside
ARCHIVE = "archive@example.test"
RELAY_USER = "relayuser"
RELAY_PASS = "relay-secret-9"
SELECTOR = "edgemail"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         b"$H+H*")

BASE_CONF = {
    "queue_retry_min": "1s",
    "queue_retry_max": "2s",
    "queue_run_interval": "1s",
    "max_message_size": "1M",
    "submit_max_recipients": "5",
    "submit_auth_max_failures": "4",
}


class Ctx:
    pass


# -- fixtures ------------------------------------------------------------

def start_smarthost(c):
    if c.smarthost is not None and c.smarthost.poll() is None:
        return
    log = open(c.st.path("log", "smarthost.log"), "ab")
    try:
        c.smarthost = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "fake_smarthost.py"),
             "--port", str(c.sh_port), "--cert", c.st.path("tls", "server.pem"),
             "--key", c.st.path("tls", "server.key"), "--dir", c.sh_dir,
             "--user", RELAY_USER, "--password", RELAY_PASS,
             "--reject", "^reject", "--tempfail", "^tempfail"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
    wait_for(lambda: port_open(c.sh_port), 15, what="fake smarthost")


def stop_smarthost(c):
    p, c.smarthost = c.smarthost, None
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def submit_conf(c, extra=None):
    conf = dict(BASE_CONF)
    conf.update({
        "relayhost": "[127.0.0.1]:%d" % c.sh_port,
        "relayhost_auth_file": c.st.path("relay.auth"),
        "relayhost_ca_file": c.st.ca,
    })
    conf.update(extra or {})
    return conf


def restart_submit(c, extra=None):
    c.st.stop_submit()
    c.st.start_submit(submit_conf(c, extra))


def make_dkim_key(st):
    """The domain's key as `edgemailctl dkim keygen` lays it out; made
    with openssl when edgemailctl cannot (yet)."""
    d = st.path("keys", "dkim", "example.test")
    key = os.path.join(d, SELECTOR + ".key")
    ctl = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bin",
                       "edgemailctl")
    if os.access(ctl, os.X_OK):
        subprocess.run([ctl, "-c", st.conf_path, "dkim", "keygen",
                        "example.test", "--selector", SELECTOR],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
    if not os.path.exists(key):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout",
                          "-outform", "DER"], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         timeout=30).stdout
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def setup():
    c = Ctx()
    c.smarthost = None
    c.st = st = Stack("submit")
    try:
        st.start_dovecot()
        st.add_user(BOB, PW)
        st.add_user(SUS, PW, extra="nologin")
        st.add_user(ARCHIVE, PW)
        with open(st.path("directory", "aliases"), "a") as f:
            f.write("%s demo@example.test\n" % ALIAS)
            f.write("%s outside@far.test\n" % FORWARD)
            f.write("%s %s, outside2@far.test\n" % (MIXED, BOB))
        with open(st.path("directory", "groups"), "a") as f:
            f.write("%s demo@example.test, %s\n" % (GROUP, BOB))
        # Archiving on for the domain (lib/directory.h: archive=MAILBOX).
        with open(st.path("directory", "domains")) as f:
            lines = f.read().splitlines()
        with open(st.path("directory", "domains"), "w") as f:
            for line in lines:
                if line.split() and line.split()[0] == "example.test":
                    line += " archive=%s" % ARCHIVE
                f.write(line + "\n")
        c.dkim_txt = make_dkim_key(st)
        c.sh_port = free_ports(1)[0]
        c.sh_dir = st.path("smarthost")
        with open(st.path("relay.auth"), "w") as f:
            f.write("# relayhost credentials\n[127.0.0.1]:%d %s:%s\n"
                    % (c.sh_port, RELAY_USER, RELAY_PASS))
        os.chmod(st.path("relay.auth"), 0o600)
        start_smarthost(c)
        st.start_submit(submit_conf(c))
    except BaseException:
        teardown(c)
        raise
    return c


def teardown(c):
    try:
        stop_smarthost(c)
    finally:
        c.st.stop()


# -- clients ---------------------------------------------------------------

def client(c, user=None, password=None, tls=True, implicit=False,
           source=None):
    """An smtplib connection, STARTTLS'd and logged in as asked; source:
    another loopback address to come from (another client)."""
    ctx = ssl.create_default_context(cafile=c.st.ca)
    src = (source, 0) if source else None
    if implicit:
        s = smtplib.SMTP_SSL("127.0.0.1", c.st.ports["submits"], timeout=30,
                             context=ctx, source_address=src)
    else:
        s = smtplib.SMTP("127.0.0.1", c.st.ports["submit"], timeout=30,
                         source_address=src)
        s.ehlo("client.test")
        if tls:
            s.starttls(context=ctx)
    s.ehlo("client.test")
    if user is not None:
        s.login(user, password)
    return s


def demo(c, **kw):
    return client(c, c.st.demo_user, c.st.demo_password, **kw)


def quit_(s):
    try:
        s.quit()
    except (OSError, smtplib.SMTPException):
        s.close()


def msg(frm, to, subject, body="hello\r\n", extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s"
            % (frm, to, subject, extra, body)).encode()


def uniq(tag):
    return "%s-%d" % (tag, time.time_ns())


def smarthost_msgs(c):
    """[(meta, raw message)] recorded by the fake smarthost, in order."""
    out = []
    for j in sorted(glob.glob(os.path.join(c.sh_dir, "*.json"))):
        with open(j) as f:
            meta = json.load(f)
        with open(j[:-5] + ".eml", "rb") as f:
            out.append((meta, f.read()))
    return out


def smarthost_with(c, subject):
    return [(m, d) for m, d in smarthost_msgs(c)
            if ("Subject: " + subject).encode() in d]


def mailbox_with(c, user, password, subject):
    return [m for m in c.st.imap_messages(user, password)
            if ("Subject: " + subject).encode() in m]


def auth_plain(s, user, password):
    """One AUTH PLAIN (smtplib's login() would try every mechanism)."""
    s.user, s.password = user, password
    return s.auth("PLAIN", s.auth_plain)


def header_of(m):
    return m.split(b"\r\n\r\n", 1)[0]


def expect_code(fn, code, enhanced=None):
    """Run fn (an smtplib call) and check the SMTP error it raises."""
    try:
        fn()
    except smtplib.SMTPResponseException as e:
        eq(e.smtp_code, code, "reply code (%r)" % (e.smtp_error,))
        if enhanced:
            check(e.smtp_error.startswith(enhanced.encode()),
                  "enhanced code %s in %r" % (enhanced, e.smtp_error))
        return e
    except smtplib.SMTPRecipientsRefused as e:
        got = list(e.recipients.values())[0]
        eq(got[0], code, "reply code (%r)" % (got,))
        if enhanced:
            check(got[1].startswith(enhanced.encode()),
                  "enhanced code %s in %r" % (enhanced, got))
        return e
    raise harness.CheckFailed("no error, want %d" % code)


class Raw:
    """A raw SMTP client for what smtplib will not do (pipelining,
    smuggling, wrong order): send bytes, read whole replies."""

    def __init__(self, c, implicit=False, login=True):
        self.c = c
        self.ctx = ssl.create_default_context(cafile=c.st.ca)
        port = c.st.ports["submits" if implicit else "submit"]
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        if implicit:
            self.s = self.ctx.wrap_socket(self.s, server_hostname="127.0.0.1")
        self.buf = b""
        self.reply()                      # greeting
        if not implicit:
            self.cmd(b"EHLO raw.test")
            eq(self.cmd(b"STARTTLS")[0], 220, "STARTTLS")
            self.s = self.ctx.wrap_socket(self.s,
                                          server_hostname="127.0.0.1")
        self.cmd(b"EHLO raw.test")
        if login:
            tok = base64.b64encode(b"\0" + c.st.demo_user.encode() + b"\0" +
                                   c.st.demo_password.encode())
            eq(self.cmd(b"AUTH PLAIN " + tok)[0], 235, "AUTH")

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """(code, text of the last line) of the next whole reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed; got %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), line[4:].decode("latin-1")

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# -- AUTH and TLS ----------------------------------------------------------

@test
def auth_not_offered_and_refused_before_starttls_on_587(c):
    s = smtplib.SMTP("127.0.0.1", c.st.ports["submit"], timeout=20)
    try:
        code, _ = s.ehlo("client.test")
        eq(code, 250, "EHLO")
        check(s.has_extn("starttls"), "STARTTLS offered")
        check(not s.has_extn("auth"), "AUTH not offered before TLS")
        tok = base64.b64encode(b"\0demo@example.test\0x").decode()
        code, text = s.docmd("AUTH", "PLAIN " + tok)
        eq(code, 538, "AUTH before STARTTLS (%r)" % text)
        check(text.startswith(b"5.7.11"), "enhanced 5.7.11: %r" % text)
        code, text = s.docmd("MAIL", "FROM:<demo@example.test>")
        eq(code, 530, "MAIL before STARTTLS (%r)" % text)
    finally:
        quit_(s)


@test
def starttls_then_auth_plain_and_login_with_the_imap_password(c):
    s = demo(c)
    check(s.has_extn("auth"), "AUTH offered after TLS")
    check("PLAIN" in s.esmtp_features["auth"] and
          "LOGIN" in s.esmtp_features["auth"], "PLAIN and LOGIN")
    quit_(s)
    s = client(c)
    try:
        s.user, s.password = BOB, PW
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        eq(code, 235, "AUTH LOGIN")
    finally:
        quit_(s)


@test
def implicit_tls_on_465_offers_auth_and_refuses_starttls(c):
    s = client(c, implicit=True)
    try:
        check(s.has_extn("auth"), "AUTH offered on 465")
        check(not s.has_extn("starttls"), "no STARTTLS inside TLS")
        code, _ = s.docmd("STARTTLS")
        eq(code, 503, "STARTTLS inside TLS")
    finally:
        quit_(s)


@test
def wrong_password_gives_535_5_7_8(c):
    s = client(c)
    try:
        expect_code(lambda: auth_plain(s, BOB, "not-the-password"), 535,
                    "5.7.8")
    finally:
        quit_(s)


@test
def suspended_user_is_refused(c):
    s = client(c)
    try:
        e = expect_code(lambda: auth_plain(s, SUS, PW), 535, "5.7.8")
        check(b"suspended" in e.smtp_error, "says suspended: %r" % e.smtp_error)
    finally:
        quit_(s)


# -- sending -----------------------------------------------------------------

@test
def send_to_local_user_arrives_over_imap(c):
    subj = uniq("local")
    s = demo(c)
    try:
        s.sendmail(c.st.demo_user, [BOB],
                   msg("Demo <demo@example.test>", BOB, subj))
    finally:
        quit_(s)
    got = wait_for(lambda: mailbox_with(c, BOB, PW, subj), 15,
                   what="the message in bob's INBOX")
    eq(len(got), 1, "copies")
    m = got[0]
    check(b"(edgemail-submit) with ESMTPSA" in m, "our Received field")
    check(b"DKIM-Signature:" in m, "DKIM-signed")
    check(b"\nMessage-ID: <" in m and b"\nDate: " in m,
          "Message-ID and Date added")


@test
def send_to_external_arrives_at_smarthost_with_a_dkim_signature_that_verifies(c):
    subj = uniq("external")
    s = demo(c)
    try:
        s.sendmail(c.st.demo_user, ["someone@far.test"],
                   msg("Demo <demo@example.test>", "someone@far.test", subj,
                       body="Hello far away.\r\n\r\n-- \r\nDemo\r\n"))
    finally:
        quit_(s)
    got = wait_for(lambda: smarthost_with(c, subj), 15,
                   what="the message at the smarthost")
    eq(len(got), 1, "copies")
    meta, data = got[0]
    eq(meta["rcpt_tos"], ["someone@far.test"], "envelope recipients")
    eq(meta["mail_from"], "demo@example.test", "envelope sender")
    check(meta["tls"], "STARTTLS was used")
    eq(meta["auth"], RELAY_USER, "authenticated to the smarthost")
    check(b"X-Edgemail-Delivery-Id" not in data, "no internal field outside")

    def dns(name, timeout=5):
        if name == ("%s._domainkey.example.test." % SELECTOR).encode():
            return c.dkim_txt
        return None
    check(dkim.verify(data, dnsfunc=dns), "dkimpy verifies the signature")
    tampered = data.replace(b"Hello far away.", b"Hello near by.")
    check(not dkim.verify(tampered, dnsfunc=dns),
          "a changed body does not verify")


@test
def alias_of_the_user_may_be_the_sender(c):
    subj = uniq("alias")
    s = demo(c)
    try:
        s.sendmail(ALIAS, [BOB], msg("Sales <%s>" % ALIAS, BOB, subj))
    finally:
        quit_(s)
    wait_for(lambda: mailbox_with(c, BOB, PW, subj), 15, what="delivery")


@test
def sent_mail_is_copied_to_the_domains_archive_mailbox(c):
    subj = uniq("archived")
    s = demo(c)
    try:
        s.sendmail(c.st.demo_user, ["far1@far.test"],
                   msg("demo@example.test", "far1@far.test", subj))
    finally:
        quit_(s)
    wait_for(lambda: smarthost_with(c, subj), 15, what="the outside copy")
    got = wait_for(lambda: mailbox_with(c, ARCHIVE, PW, subj), 15,
                   what="the archive copy")
    eq(len(got), 1, "archive copies")
    for meta, _ in smarthost_with(c, subj):
        check(ARCHIVE not in meta["rcpt_tos"], "the archive stays inside")


@test
def local_alias_forwarding_outside_goes_through_the_smarthost(c):
    subj = uniq("forward")
    s = demo(c)
    try:
        s.sendmail(c.st.demo_user, [FORWARD],
                   msg("demo@example.test", FORWARD, subj))
    finally:
        quit_(s)
    got = wait_for(lambda: smarthost_with(c, subj), 15,
                   what="the forwarded copy at the smarthost")
    eq(got[0][0]["rcpt_tos"], ["outside@far.test"], "forward target")


@test
def forward_is_sent_once_while_the_local_copy_is_retried(c):
    """An alias with a mailbox here and an address outside: while Dovecot
    is down the local copy is retried, the outside copy is queued once."""
    subj = uniq("mixed")
    s = demo(c)
    try:
        c.st.stop_dovecot()
        try:
            s.sendmail(c.st.demo_user, [MIXED],
                       msg("demo@example.test", MIXED, subj))
            got = wait_for(lambda: smarthost_with(c, subj), 15,
                           what="the outside copy")
            time.sleep(5)   # retries of the local copy, 1-2 s apart
        finally:
            c.st.start_dovecot()
    finally:
        quit_(s)
    wait_for(lambda: mailbox_with(c, BOB, PW, subj), 20,
             what="the local copy after Dovecot is back")
    got = smarthost_with(c, subj)
    eq(len(got), 1, "outside copies")
    eq(got[0][0]["rcpt_tos"], ["outside2@far.test"], "forward target")


@test
def own_address_with_detail_may_be_the_sender(c):
    s = demo(c)
    try:
        for frm in ("demo+lists@example.test", "Demo@Example.TEST"):
            code, text = s.docmd("MAIL", "FROM:<%s>" % frm)
            eq(code, 250, "MAIL FROM:<%s> (%r)" % (frm, text))
            s.rset()
    finally:
        quit_(s)


@test
def foreign_envelope_sender_gives_553(c):
    s = demo(c)
    try:
        # A group (distribution list) demo is a member of is not demo's.
        for frm in (BOB, "someone@far.test", "demo@far.test", GROUP):
            code, text = s.docmd("MAIL", "FROM:<%s>" % frm)
            eq(code, 553, "MAIL FROM:<%s> (%r)" % (frm, text))
            check(text.startswith(b"5.7.1"), "5.7.1: %r" % text)
        code, text = s.docmd("MAIL", "FROM:<>")
        eq(code, 553, "null sender (%r)" % text)
    finally:
        quit_(s)


@test
def foreign_from_header_gives_553_and_nothing_is_sent(c):
    subj = uniq("forged")
    s = demo(c)
    try:
        e = expect_code(lambda: s.sendmail(
            c.st.demo_user, [BOB], msg("Bob <%s>" % BOB, BOB, subj)),
            553, "5.7.1")
        check(b"From:" in e.smtp_error, "names the From: field: %r"
              % e.smtp_error)
        expect_code(lambda: s.sendmail(
            c.st.demo_user, [BOB],
            msg("demo@example.test, Boss <boss@far.test>", BOB, subj)),
            553, "5.7.1")
        expect_code(lambda: s.sendmail(
            c.st.demo_user, [BOB], msg("Team <%s>" % GROUP, BOB, subj)),
            553, "5.7.1")
        expect_code(lambda: s.sendmail(
            c.st.demo_user, [BOB],
            ("To: %s\r\nSubject: %s\r\n\r\nno from\r\n" % (BOB, subj))
            .encode()), 553, "5.7.1")
    finally:
        quit_(s)
    time.sleep(1.5)
    eq(mailbox_with(c, BOB, PW, subj), [], "nothing delivered")


@test
def oversize_is_refused_with_552_5_3_4(c):
    s = demo(c)
    try:
        code, text = s.docmd("MAIL", "FROM:<demo@example.test> SIZE=2000000")
        eq(code, 552, "SIZE over the limit (%r)" % text)
        check(text.startswith(b"5.3.4"), "5.3.4: %r" % text)
        big = msg("demo@example.test", BOB, uniq("big"),
                  body="x" * 998 + "\r\n") * 1
        big += (b"y" * 998 + b"\r\n") * 1100
        expect_code(lambda: s.sendmail(c.st.demo_user, [BOB], big), 552,
                    "5.3.4")
        code, _ = s.noop()
        eq(code, 250, "the session goes on after 552")
    finally:
        quit_(s)


@test
def unknown_local_recipient_gives_550_5_1_1(c):
    s = demo(c)
    try:
        s.mail(c.st.demo_user)
        code, text = s.rcpt("nobody-here@example.test")
        eq(code, 550, "RCPT (%r)" % text)
        check(text.startswith(b"5.1.1"), "5.1.1: %r" % text)
    finally:
        quit_(s)


@test
def too_many_recipients_gives_452_4_5_3(c):
    s = demo(c)
    try:
        s.mail(c.st.demo_user)
        for i in range(5):
            eq(s.rcpt("r%d@far.test" % i)[0], 250, "RCPT %d" % i)
        code, text = s.rcpt("r5@far.test")
        eq(code, 452, "sixth RCPT (%r)" % text)
        check(text.startswith(b"4.5.3"), "4.5.3: %r" % text)
        s.rset()
    finally:
        quit_(s)


# -- protocol order --------------------------------------------------------

@test
def every_wrong_order_gets_its_reply(c):
    r = Raw(c, login=False)
    try:
        eq(r.cmd(b"MAIL FROM:<demo@example.test>")[0], 530, "MAIL before AUTH")
        eq(r.cmd(b"RCPT TO:<bob@example.test>")[0], 530, "RCPT before AUTH")
        eq(r.cmd(b"DATA")[0], 530, "DATA before AUTH")
        tok = base64.b64encode(b"\0" + c.st.demo_user.encode() + b"\0" +
                               c.st.demo_password.encode())
        eq(r.cmd(b"AUTH PLAIN " + tok)[0], 235, "AUTH")
        eq(r.cmd(b"AUTH PLAIN " + tok)[0], 503, "AUTH twice")
        eq(r.cmd(b"RCPT TO:<bob@example.test>")[0], 503, "RCPT before MAIL")
        eq(r.cmd(b"DATA")[0], 503, "DATA before MAIL")
        eq(r.cmd(b"MAIL FROM:<demo@example.test>")[0], 250, "MAIL")
        eq(r.cmd(b"MAIL FROM:<demo@example.test>")[0], 503, "MAIL twice")
        eq(r.cmd(b"DATA")[0], 503, "DATA before RCPT")
        eq(r.cmd(b"RCPT TO:<nobody-here@example.test>")[0], 550, "bad RCPT")
        eq(r.cmd(b"DATA")[0], 554, "DATA with no valid recipient")
        eq(r.cmd(b"RSET")[0], 250, "RSET")
        eq(r.cmd(b"VRFY demo@example.test")[0], 502, "VRFY")
        eq(r.cmd(b"EXPN staff")[0], 502, "EXPN")
        eq(r.cmd(b"HELP")[0], 214, "HELP")
        eq(r.cmd(b"NOOP")[0], 250, "NOOP")
        eq(r.cmd(b"FOO bar")[0], 500, "unknown command")
        eq(r.cmd(b"MAIL FROM:<demo@example.test> BODY=BINARYMIME")[0], 555,
           "unknown BODY")
        eq(r.cmd(b"MAIL FROM:<demo@example.test> FOO=1")[0], 555,
           "unknown parameter")
        eq(r.cmd(b"MAIL FROM:demo@example.test")[0], 501, "no brackets")
        eq(r.cmd(b"STARTTLS")[0], 503, "STARTTLS twice")
        eq(r.cmd(b"QUIT")[0], 221, "QUIT")
    finally:
        r.close()


@test
def too_many_errors_close_the_session_with_421(c):
    r = Raw(c)
    try:
        codes = [r.cmd(b"BOGUS %d" % i)[0] for i in range(19)]
        eq(set(codes), {500}, "unknown commands")
        code, text = r.cmd(b"BOGUS last")
        eq(code, 500, "the 20th error")
        code, text = r.reply()
        eq(code, 421, "then 421 (%s)" % text)
    finally:
        r.close()


@test
def commands_before_ehlo_get_503(c):
    s = socket.create_connection(("127.0.0.1", c.st.ports["submits"]),
                                 timeout=10)
    ctx = ssl.create_default_context(cafile=c.st.ca)
    s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    try:
        f = s.makefile("rb")
        check(f.readline().startswith(b"220 "), "greeting")
        s.sendall(b"AUTH PLAIN AGEAYg==\r\n")
        check(f.readline().startswith(b"503 5.5.1"), "AUTH before EHLO")
        s.sendall(b"MAIL FROM:<demo@example.test>\r\n")
        line = f.readline()
        check(line.startswith(b"503 5.5.1"), "MAIL before EHLO: %r" % line)
    finally:
        s.close()


@test
def pipelined_transaction_gets_all_replies_in_order(c):
    subj = uniq("pipelined")
    r = Raw(c)
    try:
        r.send(b"MAIL FROM:<demo@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"RCPT TO:<nobody-here@example.test>\r\n"
               b"DATA\r\n")
        eq(r.reply()[0], 250, "MAIL")
        eq(r.reply()[0], 250, "RCPT bob")
        eq(r.reply()[0], 550, "RCPT unknown")
        eq(r.reply()[0], 354, "DATA")
        r.send(msg("demo@example.test", BOB, subj) + b".\r\nQUIT\r\n")
        eq(r.reply()[0], 250, "end of data")
        eq(r.reply()[0], 221, "QUIT")
    finally:
        r.close()
    wait_for(lambda: mailbox_with(c, BOB, PW, subj), 15, what="delivery")


# -- SMTP smuggling ----------------------------------------------------------

SMUGGLE = [
    b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\n", b"\r.\r\n", b"\r\n.\n",
    b"\r\n.\r", b"\n.\r", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\n\n.\n\n",
]


@test
def smuggling_end_of_data_variants_never_give_two_messages(c):
    tag = uniq("smuggle")
    for i, v in enumerate(SMUGGLE):
        r = Raw(c)
        try:
            eq(r.cmd(b"MAIL FROM:<demo@example.test>")[0], 250, "MAIL")
            eq(r.cmd(b"RCPT TO:<bob@example.test>")[0], 250, "RCPT")
            eq(r.cmd(b"DATA")[0], 354, "DATA")
            r.send(b"From: demo@example.test\r\nTo: bob@example.test\r\n"
                   b"Subject: carrier " + tag.encode() + b" %d\r\n\r\nbefore" % i
                   + v +
                   b"MAIL FROM:<demo@example.test>\r\n"
                   b"RCPT TO:<bob@example.test>\r\nDATA\r\n"
                   b"From: demo@example.test\r\n"
                   b"Subject: smuggled " + tag.encode() + b"\r\n\r\nevil\r\n"
                   b"\r\n.\r\nQUIT\r\n")
            code, text = r.reply()
            check(code in (250, 554), "variant %r: end of data %d %s"
                  % (v, code, text))
            if code == 554:
                check(text.startswith("5.6.0"), "variant %r: 5.6.0 %s"
                      % (v, text))
            code2, text2 = r.reply()
            eq(code2, 221, "variant %r: next reply is QUIT's (%s)" % (v, text2))
        finally:
            r.close()
    time.sleep(2)
    got = c.st.imap_messages(BOB, PW)
    smuggled = [m for m in got
                if b"Subject: smuggled " + tag.encode() in header_of(m)]
    eq(smuggled, [], "a smuggled message was delivered")
    carriers = [m for m in got if b"Subject: carrier " + tag.encode() in m]
    check(len(carriers) <= len(SMUGGLE), "at most one message per variant")
    for m in carriers:
        check(b"smuggled" in m, "an accepted carrier keeps the rest as data")


@test
def bare_lf_message_is_refused_with_554_5_6_0(c):
    r = Raw(c)
    try:
        r.cmd(b"MAIL FROM:<demo@example.test>")
        r.cmd(b"RCPT TO:<bob@example.test>")
        eq(r.cmd(b"DATA")[0], 354, "DATA")
        r.send(b"From: demo@example.test\nSubject: lf\n\nbody\n\r\n.\r\n")
        code, text = r.reply()
        eq(code, 554, "bare LF (%s)" % text)
        check(text.startswith("5.6.0"), "5.6.0: %s" % text)
        eq(r.cmd(b"NOOP")[0], 250, "session goes on")
    finally:
        r.close()


# -- content checks -----------------------------------------------------------

def attachment_msg(subject, name, data, ctype="application/octet-stream"):
    b = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"From: demo@example.test\r\nTo: bob@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            b"--b1\r\nContent-Type: " + ctype.encode() + b"; name=\"" +
            name.encode() + b"\"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() +
            b"\"\r\n\r\n" + b + b"--b1--\r\n")


@test
def eicar_attachment_is_refused(c):
    subj = uniq("eicar")
    s = demo(c)
    try:
        e = expect_code(lambda: s.sendmail(
            c.st.demo_user, [BOB], attachment_msg(subj, "eicar.com", EICAR)),
            554, "5.7.1")
        check(b"virus" in e.smtp_error.lower() or b"eicar" in
              e.smtp_error.lower(), "says why: %r" % e.smtp_error)
    finally:
        quit_(s)
    time.sleep(1)
    eq(mailbox_with(c, BOB, PW, subj), [], "nothing delivered")


@test
def password_protected_zip_is_refused(c):
    subj = uniq("zip")
    d = tempfile.mkdtemp(prefix="em-zip-")
    try:
        with open(os.path.join(d, "a.txt"), "w") as f:
            f.write("secret content\n" * 20)
        subprocess.run(["zip", "-q", "-P", "pw123", "s.zip", "a.txt"],
                       cwd=d, check=True, timeout=30)
        with open(os.path.join(d, "s.zip"), "rb") as f:
            z = f.read()
    finally:
        subprocess.run(["rm", "-rf", d])
    s = demo(c)
    try:
        e = expect_code(lambda: s.sendmail(
            c.st.demo_user, [BOB],
            attachment_msg(subj, "s.zip", z, "application/zip")), 554, "5.7.1")
        check(b"encrypt" in e.smtp_error.lower(), "says why: %r" % e.smtp_error)
    finally:
        quit_(s)


# -- the queue -------------------------------------------------------------------

@test
def smarthost_down_mail_is_queued_and_delivered_when_it_returns(c):
    subj = uniq("queued")
    stop_smarthost(c)
    try:
        s = demo(c)
        try:
            s.sendmail(c.st.demo_user, ["later@far.test"],
                       msg("demo@example.test", "later@far.test", subj))
        finally:
            quit_(s)
        time.sleep(3)
        eq(smarthost_with(c, subj), [], "nothing while it is down")
        queued = os.listdir(c.st.path("outbound", "queue"))
        check(len(queued) >= 1, "the message waits in the outbound spool")
    finally:
        start_smarthost(c)
    got = wait_for(lambda: smarthost_with(c, subj), 20,
                   what="delivery after the smarthost returned")
    eq(len(got), 1, "copies")


@test
def smarthost_5xx_gives_a_bounce_in_the_senders_inbox(c):
    subj = uniq("bounce")
    s = demo(c)
    try:
        s.sendmail(c.st.demo_user, ["reject-me@far.test", "ok@far.test"],
                   msg("demo@example.test", "reject-me@far.test", subj))
    finally:
        quit_(s)

    def dsn():
        return [m for m in c.st.imap_messages(c.st.demo_user,
                                              c.st.demo_password)
                if b"multipart/report" in m and subj.encode() in m]
    got = wait_for(dsn, 20, what="the DSN in demo's INBOX")
    eq(len(got), 1, "one DSN")
    m = got[0]
    check(b"reject-me@far.test" in m, "names the refused recipient")
    check(b"Status: 5.1.1" in m, "carries the remote status")
    check(b"Action: failed" in m, "Action: failed")
    check(b"ok@far.test" not in m.split(b"text/rfc822-headers")[0],
          "the delivered recipient is not reported")
    wait_for(lambda: smarthost_with(c, subj), 15, what="ok@far.test copy")


@test
def temporary_failures_past_max_queue_lifetime_bounce(c):
    subj = uniq("expire")
    restart_submit(c, {"max_queue_lifetime": "4s"})
    try:
        s = demo(c)
        try:
            s.sendmail(c.st.demo_user, ["tempfail-1@far.test"],
                       msg("demo@example.test", "tempfail-1@far.test", subj))
        finally:
            quit_(s)

        def dsn():
            return [m for m in c.st.imap_messages(c.st.demo_user,
                                                  c.st.demo_password)
                    if b"multipart/report" in m and subj.encode() in m]
        got = wait_for(dsn, 25, what="the expiry DSN")
        m = got[0]
        check(b"Status: 5.4.7" in m, "expired status 5.4.7")
        check(b"4.3.0" in m, "the last temporary error is reported")
        check(b"Arrival-Date:" in m, "arrival date")
        wait_for(lambda: os.listdir(c.st.path("outbound", "queue")) == [],
                 10, what="the message leaving the queue")
    finally:
        restart_submit(c)


@test
def killed_after_250_the_message_is_delivered_once_after_restart(c):
    subj = uniq("crash")
    stop_smarthost(c)
    try:
        s = demo(c)
        try:
            s.sendmail(c.st.demo_user, ["crash@far.test"],
                       msg("demo@example.test", "crash@far.test", subj))
        finally:
            quit_(s)
        c.st.stop_prog("submit", sig=signal.SIGKILL)
    finally:
        start_smarthost(c)
    time.sleep(1)
    eq(smarthost_with(c, subj), [], "not delivered while the relay is dead")
    c.st.start_submit(submit_conf(c))
    wait_for(lambda: smarthost_with(c, subj), 20, what="delivery after restart")
    time.sleep(3)
    eq(len(smarthost_with(c, subj)), 1, "delivered exactly once")


# -- limits (restart the relay with other settings) -------------------------------

@test
def hourly_message_limit_gives_452(c):
    restart_submit(c, {"submit_max_messages_per_hour": "2"})
    try:
        s = demo(c)
        try:
            for i in range(2):
                s.sendmail(c.st.demo_user, [BOB],
                           msg("demo@example.test", BOB, uniq("hour")))
            code, text = s.docmd("MAIL", "FROM:<demo@example.test>")
            eq(code, 452, "third message (%r)" % text)
            check(b"per hour" in text, "clear text: %r" % text)
        finally:
            quit_(s)
    finally:
        restart_submit(c)


@test
def hourly_recipient_limit_holds_across_parallel_sessions(c):
    # Counted when RCPT is accepted: two sessions at once cannot both
    # use the same places.
    restart_submit(c, {"submit_max_recipients_per_hour": "3"})
    a, b = demo(c), demo(c)
    try:
        for s in (a, b):
            code, text = s.docmd("MAIL", "FROM:<demo@example.test>")
            eq(code, 250, "MAIL (%r)" % text)
        got = [a.docmd("RCPT", "TO:<%s>" % BOB)[0],
               b.docmd("RCPT", "TO:<%s>" % BOB)[0],
               a.docmd("RCPT", "TO:<far1@far.test>")[0],
               b.docmd("RCPT", "TO:<far1@far.test>")[0]]
        eq(got, [250, 250, 250, 452], "RCPT replies in both sessions")
    finally:
        quit_(a)
        quit_(b)
        restart_submit(c)


@test
def idle_client_gets_421_and_is_closed(c):
    restart_submit(c, {"submit_idle_timeout": "2s"})
    try:
        s = socket.create_connection(("127.0.0.1", c.st.ports["submit"]),
                                     timeout=10)
        try:
            f = s.makefile("rb")
            check(f.readline().startswith(b"220 "), "greeting")
            t0 = time.monotonic()
            line = f.readline()
            check(line.startswith(b"421 4.4.2"), "421 on idle: %r" % line)
            check(time.monotonic() - t0 < 6, "within the idle timeout")
            eq(f.readline(), b"", "then closed")
        finally:
            s.close()
    finally:
        restart_submit(c)


@test
def connections_over_the_limit_get_421(c):
    restart_submit(c, {"submit_max_connections": "2"})
    socks = []
    # The start-up probes' sessions (port checks) must end first.
    time.sleep(0.5)
    try:
        for i in range(2):
            s = socket.create_connection(("127.0.0.1", c.st.ports["submit"]),
                                         timeout=10)
            socks.append(s)
            check(s.recv(512).startswith(b"220 "), "greeting %d" % i)
        s = socket.create_connection(("127.0.0.1", c.st.ports["submit"]),
                                     timeout=10)
        socks.append(s)
        data = s.recv(512)
        check(data.startswith(b"421 4.7.0"), "third connection: %r" % data)
    finally:
        for s in socks:
            s.close()
        restart_submit(c)


@test
def connections_from_one_client_over_its_limit_get_421(c):
    restart_submit(c, {"submit_max_connections_per_ip": "2"})
    socks = []
    time.sleep(0.5)     # the start-up probes' sessions end first

    def connect(source):
        s = socket.create_connection(("127.0.0.1", c.st.ports["submit"]),
                                     timeout=10, source_address=(source, 0))
        socks.append(s)
        return s.recv(512)
    try:
        for i in range(2):
            check(connect("127.0.0.2").startswith(b"220 "), "greeting %d" % i)
        data = connect("127.0.0.2")
        check(data.startswith(b"421 4.7.0"), "third from one client: %r"
              % data)
        check(connect("127.0.0.3").startswith(b"220 "), "another client")
    finally:
        for s in socks:
            s.close()
        restart_submit(c)


@test
def failed_logins_are_rate_limited_per_user_and_ip(c):
    restart_submit(c)
    try:
        for i in range(4):
            s = client(c)
            try:
                expect_code(lambda: auth_plain(s, BOB, "wrong-%d" % i), 535)
            finally:
                quit_(s)
        s = client(c)
        try:
            e = expect_code(lambda: auth_plain(s, BOB, PW), 454, "4.7.0")
            check(b"Too many" in e.smtp_error, "clear text: %r" % e.smtp_error)
        finally:
            quit_(s)
    finally:
        restart_submit(c)
    s = client(c, BOB, PW)
    quit_(s)


@test
def failures_from_one_client_do_not_lock_the_user_out_elsewhere(c):
    def login(source, password, code):
        s = client(c, source=source)
        try:
            if code == 235:
                auth_plain(s, BOB, password)
            else:
                expect_code(lambda: auth_plain(s, BOB, password), code)
        finally:
            quit_(s)
    restart_submit(c)
    try:
        for i in range(4):
            login("127.0.0.2", "wrong-%d" % i, 535)
        login("127.0.0.2", PW, 454)     # that client is blocked
        login("127.0.0.3", PW, 235)     # the user, elsewhere, is not
        login("127.0.0.3", "wrong", 535)
        login("127.0.0.3", PW, 454)     # a client that failed for the user
    finally:
        restart_submit(c)


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
