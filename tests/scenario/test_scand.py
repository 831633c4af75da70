"""test_scand.py - one virus scanner for the API and the relay:
edgemail-scand with the dev stack's signature database on a unix socket,
edgemail-api and edgemail-submit started with scan_socket (as `make run`
does), a real Dovecot.
Proves: /readyz reports the daemon's scanner; EICAR is refused and a
clean message delivered through the API, also when the body is large
enough to be spooled to a file (the descriptor is passed, not copied);
the relay refuses EICAR with 554 and delivers clean mail through the
same daemon; with the daemon killed the API answers 503 with Retry-After
and /readyz 503, the relay 451, and nothing is delivered unscanned; once
the daemon is back both scan again without being restarted; a spill
file whose scan failed (the scanner may still hold it) is never written
again for the next message.  Neither
the API nor the relay maps libclamav then, and the API (no rspamd) has
no libcurl either: they are loaded only where used (lib/dynload.h).
"""
import os
import signal
import smtplib
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
from stack import Stack, wait_for  # noqa: E402

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         b"$H+H*")
DEMO = "demo@example.test"


class Ctx:
    pass


def start_scand(c):
    if os.path.exists(c.sock):     # left by a daemon that was killed
        os.unlink(c.sock)
    p = c.st.start_prog("scand", "edgemail-scand", {"scan_socket": c.sock})

    def up():
        if p.poll() is not None:
            raise RuntimeError("edgemail-scand exited:\n" + c.st.log("scand"))
        return os.path.exists(c.sock)
    wait_for(up, 30, what="edgemail-scand socket")


def setup():
    c = Ctx()
    c.st = st = Stack("scand")
    c.sock = st.path("scand.sock")
    try:
        st.start_dovecot()
        start_scand(c)
        st.start_api({"scan_socket": c.sock})
        st.start_submit({"scan_socket": c.sock})
    except BaseException:
        st.stop()
        raise
    return c


def teardown(c):
    c.st.stop()


def msg(tag, body=b"hello\r\n", frm=b"a@sender.test"):
    return (b"From: <" + frm + b">\r\nTo: <demo@example.test>\r\n"
            b"Subject: " + tag.encode() + b"\r\n"
            b"Message-ID: <" + tag.encode() + b"@sender.test>\r\n\r\n" + body)


def uniq(tag):
    return "%s-%d" % (tag, time.time_ns())


def stored(c, tag):
    return [m for m in c.st.imap_messages(DEMO, c.st.demo_password)
            if (b"Subject: " + tag.encode() + b"\r\n") in m]


def submit(c, data):
    ctx = ssl.create_default_context(cafile=c.st.ca)
    s = smtplib.SMTP("127.0.0.1", c.st.ports["submit"], timeout=30)
    try:
        s.starttls(context=ctx)
        s.login(c.st.demo_user, c.st.demo_password)
        s.sendmail(DEMO, [DEMO], data.replace(b"From: <a@sender.test>",
                                              b"From: <" + DEMO.encode() + b">"))
    finally:
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            s.close()


def readyz(c):
    st, body, _ = c.st.get("/readyz")
    return st, body.decode("utf-8", "replace")


@test
def readyz_reports_the_daemons_scanner(c):
    st, body = readyz(c)
    eq(st, 200, "status (%s)" % body)
    check('"scanner": "ok' in body or '"scanner":"ok' in body,
          "scanner ok in %s" % body)


def mapped(c, name):
    """The shared objects in the address space of process `name`."""
    with open("/proc/%d/maps" % c.st.procs[name].pid) as f:
        return {ln.split()[-1].rsplit("/", 1)[-1] for ln in f
                if ".so" in ln}


@test
def libclamav_only_in_the_daemon_libcurl_only_in_the_relay(c):
    api, submit, scand = (mapped(c, n) for n in ("api", "submit", "scand"))
    has = lambda libs, stem: any(x.startswith(stem) for x in libs)  # noqa
    check(has(scand, "libclamav.so"), "scand maps libclamav: %s" % scand)
    check(not has(api, "libclamav.so"), "API maps libclamav: %s" % api)
    check(not has(submit, "libclamav.so"), "relay maps libclamav")
    check(not has(api, "libcurl.so"), "API without rspamd maps libcurl")
    check(has(submit, "libcurl.so"), "relay maps libcurl: %s" % submit)


@test
def api_refuses_eicar_and_delivers_clean_mail_through_the_daemon(c):
    bad = uniq("api-eicar")
    code, j, _ = c.st.post(msg(bad, EICAR + b"\r\n"), [DEMO])
    eq(code, 422, "EICAR status (%s)" % (j,))
    check("virus found" in j.get("reason", ""), "reason: %r" % (j,))
    good = uniq("api-clean")
    code, j, _ = c.st.post(msg(good), [DEMO])
    eq(code, 200, "clean status (%s)" % (j,))
    eq(len(stored(c, good)), 1, "clean copies")
    eq(len(stored(c, bad)), 0, "EICAR copies")


@test
def a_spooled_body_is_scanned_by_descriptor(c):
    # Over 64 KiB the API keeps the body in a file, and scand reads it
    # through the descriptor passed with the request.
    filler = (b"x" * 76 + b"\r\n") * 3000
    bad = uniq("big-eicar")
    code, j, _ = c.st.post(msg(bad, filler + EICAR + b"\r\n"), [DEMO])
    eq(code, 422, "status (%s)" % (j,))
    good = uniq("big-clean")
    code, j, _ = c.st.post(msg(good, filler), [DEMO])
    eq(code, 200, "status (%s)" % (j,))
    eq(len(stored(c, good)), 1, "copies")


@test
def relay_refuses_eicar_and_delivers_clean_mail_through_the_daemon(c):
    bad = uniq("relay-eicar")
    try:
        submit(c, msg(bad, EICAR + b"\r\n"))
        check(False, "EICAR accepted by the relay")
    except smtplib.SMTPDataError as e:
        eq(e.smtp_code, 554, "code (%r)" % (e.smtp_error,))
        check(b"virus" in e.smtp_error.lower(), "text: %r" % e.smtp_error)
    good = uniq("relay-clean")
    submit(c, msg(good))
    wait_for(lambda: len(stored(c, good)) == 1, 20, what="relayed copy")
    eq(len(stored(c, bad)), 0, "EICAR copies")


@test
def daemon_down_is_temporary_and_nothing_goes_unscanned(c):
    c.st.stop_prog("scand", sig=signal.SIGKILL)
    try:
        tag = uniq("down")
        code, j, h = c.st.post(msg(tag), [DEMO])
        eq(code, 503, "API status (%s)" % (j,))
        check(int(h.get("retry-after", "0")) > 0, "Retry-After: %r" % (h,))
        st, body = readyz(c)
        eq(st, 503, "readyz (%s)" % body)
        check("edgemail-scand" in body, "why in readyz: %s" % body)
        try:
            submit(c, msg(tag))
            check(False, "relay accepted a message it could not scan")
        except smtplib.SMTPDataError as e:
            eq(e.smtp_code, 451, "relay code (%r)" % (e.smtp_error,))
        eq(len(stored(c, tag)), 0, "copies while the scanner was down")
    finally:
        start_scand(c)
    # Back: the API and the relay find it again (no restart of theirs).
    tag = uniq("back")
    code, j, _ = c.st.post(msg(tag), [DEMO])
    eq(code, 200, "API after restart (%s)" % (j,))
    submit(c, msg(uniq("back-relay")))
    st, body = readyz(c)
    eq(st, 200, "readyz after restart (%s)" % body)


@test
def sighup_reloads_while_scans_go_on(c):
    """SIGHUP compiles the signatures again on a thread of its own: the
    daemon keeps taking clients meanwhile, and the new engine comes."""
    before = c.st.log("scand").count("event=scanner_loaded")
    c.st.procs["scand"].send_signal(signal.SIGHUP)
    tag = uniq("hup")
    code, j, _ = c.st.post(msg(tag), [DEMO])
    eq(code, 200, "scanned during the reload (%s)" % (j,))
    wait_for(lambda: c.st.log("scand").count("event=scanner_loaded") >
             before, 20, what="the reloaded engine")
    code, j, _ = c.st.post(msg(uniq("hup-eicar"), EICAR + b"\r\n"), [DEMO])
    eq(code, 422, "the new engine finds EICAR (%s)" % (j,))


class FakeScand:
    """A scanner socket that speaks edgemail-scand's protocol
    (lib/scan_remote.c) and, while `drop` is set, takes a scan's request
    and its descriptor and hangs up without an answer: a daemon that
    died half way, as far as the client can tell, still holding the
    file.  Otherwise it answers clean."""
    REQ = struct.Struct("=IIQQQQII")
    RESP = struct.Struct("=IIII128s")
    MAGIC = 0x31435345

    def __init__(self, path):
        self.path = path
        self.drop = False
        self.held = []              # (fd, off, len) of dropped scans
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _read(self, conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self, conn):
        try:
            while True:
                fds = []
                msg, anc, _, _ = conn.recvmsg(
                    self.REQ.size, socket.CMSG_SPACE(4))
                if not msg:
                    return
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and \
                       kind == socket.SCM_RIGHTS:
                        fds += list(struct.unpack("=%di" % (len(data) // 4),
                                                  data[:len(data) // 4 * 4]))
                msg += self._read(conn, self.REQ.size - len(msg))
                magic, op, plen, mlen, off, ln, has_fd, _ = \
                    self.REQ.unpack(msg)
                self._read(conn, plen + (0 if has_fd else mlen))
                if op == 1 and self.drop and fds:
                    self.held.append((fds[0], off, ln))
                    return          # hang up, keep the descriptor
                for fd in fds:
                    os.close(fd)
                conn.sendall(self.RESP.pack(self.MAGIC, 0, 1, 0, b"clean"))
        except (OSError, EOFError):
            return
        finally:
            conn.close()

    def close(self):
        self.sock.close()
        for fd, _, _ in self.held:
            os.close(fd)


@test
def a_file_a_failed_scan_may_still_read_is_not_used_again(c):
    # The API keeps spill files for the next request; one whose scan
    # failed may still be read by the scanner, which must never see the
    # next message's bytes in it.
    fake = FakeScand(c.st.path("fake-scand.sock"))
    c.st.stop_api()
    try:
        c.st.start_api({"scan_socket": fake.path})
        line = b"y" * 76 + b"\r\n"
        first = uniq("held-first")
        fake.drop = True
        code, j, _ = c.st.post(msg(first, line * 2000), [DEMO])
        eq(code, 503, "a scanner that hangs up (%s)" % (j,))
        check(fake.held, "the scan came with a descriptor")
        fd, off, ln = fake.held[0]
        before = os.pread(fd, ln, off)
        check(first.encode() not in before and before.startswith(line),
              "the held file has the first body: %r" % before[:80])
        fake.drop = False
        second = uniq("held-second")
        code, j, _ = c.st.post(msg(second, (b"z" * 76 + b"\r\n") * 2000),
                               [DEMO])
        eq(code, 200, "the next message (%s)" % (j,))
        after = os.pread(fd, ln, off)
        check(after == before, "the held file afterwards: %d bytes, "
              "starting %r" % (len(after), after[:20]))
    finally:
        c.st.stop_api()
        fake.close()
        c.st.start_api({"scan_socket": c.sock})


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
