"""test_lmtp.py - bin/lmtp-send (the C LMTP client) against a real Dovecot.

Proves: a message with LF line ends, dot-leading lines and an 8-bit body
arrives byte for byte (as CRLF) and is read back over IMAP; a large
message with a dot line on a 64 KiB read boundary survives; an unknown
user gets 550 5.1.1 (PERM, exit 1) while the known one in the same
transaction is delivered; 20 recipients spread over 5 mailboxes get 20
replies in one transaction; with Dovecot stopped every recipient is TEMP
(exit 75), never PERM.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
from stack import BIN, Stack  # noqa: E402

LMTP_SEND = os.path.join(BIN, "lmtp-send")
PASSWORD = "lmtp-test-pw"
ALICE = "alice@example.test"
MAILBOXES = ["box%d@example.test" % i for i in range(1, 6)]
EX_TEMPFAIL = 75


def lmtp_send(st, body, rcpts, mail_from="sender@example.test",
              timeout_ms=5000, extra=()):
    """Run bin/lmtp-send on body (bytes); returns (exit, {rcpt: fields})
    where fields is [class, code, enhanced, text]."""
    with tempfile.NamedTemporaryFile(prefix="lmtp-msg-", dir=st.dir,
                                     delete=False) as f:
        f.write(body)
        path = f.name
    try:
        cmd = [LMTP_SEND, "-s", "unix:" + st.lmtp_socket, "-f", mail_from,
               "-t", str(timeout_ms)] + list(extra) + [path] + list(rcpts)
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
    finally:
        os.unlink(path)
    out = {}
    lines = r.stdout.decode("utf-8", "replace").splitlines()
    for line in lines:
        parts = line.split(" ", 4)
        check(len(parts) >= 4, "short output line %r" % line)
        out.setdefault(parts[0], []).append(parts[1:])
    eq(len(lines), len(rcpts), "output lines (stderr: %s)" % r.stderr)
    return r.returncode, out


def setup():
    st = Stack("lmtp")
    try:
        # Users before Dovecot starts: no passwd-file reload wait.
        st.add_user(ALICE, PASSWORD)
        for box in MAILBOXES:
            st.add_user(box, PASSWORD)
        st.start_dovecot()
    except BaseException:
        st.stop()
        raise
    return st


def teardown(st):
    st.stop()


@test
def delivers_dot_lines_and_8bit_body_intact(st):
    # LF line ends on purpose: lmtp-send normalises them to CRLF.
    body = ("From: <sender@example.test>\n"
            "To: <alice@example.test>\n"
            "Subject: dots and umlauts\n"
            "Message-ID: <dots-1@example.test>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
            ".hidden line\n"
            "..two dots\n"
            ".\n"
            "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u00e9t\u00e9\n"
            "last line without newline").encode("utf-8")
    code, out = lmtp_send(st, body, [ALICE])
    eq(code, 0, "exit status (%r)" % out)
    cls, rc, enh = out[ALICE][0][:3]
    eq((cls, rc, enh), ("ok", "250", "2.0.0"), "reply")
    msgs = st.imap_messages(ALICE, PASSWORD)
    eq(len(msgs), 1, "messages in INBOX")
    want = body.replace(b"\n", b"\r\n") + b"\r\n"
    got = msgs[0]
    check(got.endswith(want), "stored message differs from what was sent:"
          " %r" % got[-300:])
    check(b"\r\n.hidden line\r\n..two dots\r\n.\r\n" in got,
          "dot lines not intact")
    check("Gr\u00fc\u00dfe aus K\u00f6ln".encode() in got, "8-bit body")


@test
def large_message_with_dot_on_64k_boundary(st):
    head = (b"From: <sender@example.test>\r\nTo: <alice@example.test>\r\n"
            b"Subject: large\r\nMessage-ID: <large-1@example.test>\r\n\r\n")
    body = bytearray(head)
    while len(body) < 65536 - 2:
        body += b"x"
    body += b"\r\n.at the boundary\r\n"
    line = b"0123456789" * 7 + b"\r\n"
    while len(body) < 300000:
        body += (b"." if len(body) % 3 == 0 else b"") + line
    body = bytes(body)
    code, out = lmtp_send(st, body, [ALICE])
    eq(code, 0, "exit status (%r)" % out)
    msgs = st.imap_messages(ALICE, PASSWORD)
    check(any(m.endswith(body) for m in msgs),
          "large message not stored intact (%d messages)" % len(msgs))


@test
def unknown_user_is_perm_550_511(st):
    body = b"Subject: to nobody\r\n\r\nhello\r\n"
    code, out = lmtp_send(st, body, ["nobody@example.test"])
    eq(code, 1, "exit status")
    eq(out["nobody@example.test"][0][:3], ["perm", "550", "5.1.1"], "reply")


@test
def unknown_and_known_in_one_transaction(st):
    before = st.maildir_count(ALICE)
    body = b"Subject: mixed\r\nMessage-ID: <mixed-1@example.test>\r\n\r\nx\r\n"
    code, out = lmtp_send(st, body, ["nobody@example.test", ALICE])
    eq(code, 1, "exit status")
    eq(out["nobody@example.test"][0][:3], ["perm", "550", "5.1.1"],
       "unknown")
    eq(out[ALICE][0][:3], ["ok", "250", "2.0.0"], "known")
    eq(st.maildir_count(ALICE), before + 1, "delivered to the known user")


@test
def twenty_recipients_five_mailboxes_one_transaction(st):
    # recipient_delimiter is "+": box1+t1 .. box1+t4 all land in box1.
    rcpts = []
    for box in MAILBOXES:
        local, domain = box.split("@")
        for t in range(1, 5):
            rcpts.append("%s+t%d@%s" % (local, t, domain))
    body = (b"Subject: twenty\r\nMessage-ID: <twenty@example.test>\r\n\r\n"
            b"one transaction, twenty replies\r\n")
    code, out = lmtp_send(st, body, rcpts, extra=["-v"])
    eq(code, 0, "exit status (%r)" % out)
    eq(len(out), 20, "distinct recipients answered")
    for r in rcpts:
        eq(out[r][0][:3], ["ok", "250", "2.0.0"], r)
    for box in MAILBOXES:
        eq(st.maildir_count(box), 4, "messages in %s" % box)


@test
def usage_errors_exit_2(st):
    r = subprocess.run([LMTP_SEND], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    eq(r.returncode, 2, "no arguments")
    r = subprocess.run([LMTP_SEND, "-s", "host-without-port", "/dev/null",
                        ALICE], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    eq(r.returncode, 2, "bad server")


@test
def dovecot_stopped_is_temp_exit_75(st):
    st.stop_dovecot()
    try:
        body = b"Subject: nobody home\r\n\r\nx\r\n"
        rcpts = [ALICE, "nobody@example.test"]
        code, out = lmtp_send(st, body, rcpts, timeout_ms=2000)
        eq(code, EX_TEMPFAIL, "exit status")
        for r in rcpts:
            eq(out[r][0][:3], ["temp", "451", "4.4.1"], r)
    finally:
        st.start_dovecot()


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
