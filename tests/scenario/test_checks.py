"""test_checks.py - the inbound checks of edgemail-api against a real
Dovecot, a loopback DNS server (dnsserver.py), Debian's rspamd on
loopback and libclamav with a signature database built here.

Proves: DKIM rsa-sha256 and ed25519-sha256 signatures pass and a body
altered after signing fails; a forged Authentication-Results with our
authserv-id is removed; DMARC policies are found at the author domain
and at its organizational domain, relaxed and strict alignment decide,
p=reject refuses (422 550 5.7.1, configurable), p=quarantine goes to
Junk; SPF and ARC are taken only from the topmost edge block of a
Worker-key request; DNS trouble is 503, never a refusal; EICAR, every
clamav test file, an encrypted ZIP and ZIP bombs are refused with their
reason and nothing is stored; a missing or broken signature database
makes /readyz fail and messages 503 until a database appears; rspamd's
reject / add header / down map to 422 / Junk / 503.
"""
import base64
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import zipfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
from dnsserver import DNSServer  # noqa: E402
from stack import Stack, descendants, free_ports, pid_alive, wait_for, wait_gone  # noqa: E402

import dkim  # noqa: E402  (python3-dkim)
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

DEMO = "demo@example.test"
TESTFILES = "/usr/share/clamav-testfiles"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-"
         b"FILE!$H+H*")
GTUBE = b"JS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EDGE_ID = "mx.cloudflare.net"


# ---- keys and messages --------------------------------------------------

def rsa_key():
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(serialization.Encoding.PEM,
                          serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    pub = base64.b64encode(k.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return pem, "v=DKIM1; k=rsa; p=" + pub


def ed_key():
    k = ed25519.Ed25519PrivateKey.generate()
    raw = k.private_bytes(serialization.Encoding.Raw,
                          serialization.PrivateFormat.Raw,
                          serialization.NoEncryption())
    pub = base64.b64encode(k.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    return base64.b64encode(raw), "v=DKIM1; k=ed25519; p=" + pub


def message(tag, frm="a@none.test", body=b"hello world\r\n", extra=b""):
    return (extra +
            b"From: Sender <" + frm.encode() + b">\r\n"
            b"To: <demo@example.test>\r\n"
            b"Subject: " + tag.encode() + b"\r\n"
            b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + tag.encode() + b"@sender.test>\r\n"
            b"\r\n" + body)


def attach(tag, data, filename, ctype=b"application/octet-stream"):
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    body = (b"--BND\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            b"--BND\r\nContent-Type: " + ctype + b"; name=\"" +
            filename.encode() + b"\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"" +
            filename.encode() + b"\"\r\n\r\n" + b64 + b"--BND--\r\n")
    return message(tag, body=body,
                   extra=b"MIME-Version: 1.0\r\n"
                   b"Content-Type: multipart/mixed; boundary=BND\r\n")


def sign(msg, selector, domain, key, alg=b"rsa-sha256", length=False):
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    signature_algorithm=alg,
                    include_headers=[b"from", b"to", b"subject", b"date",
                                     b"message-id"], length=length)
    return sig + msg


def edge_block(spf="pass", mailfrom="a@spf.test", arc="none",
               ip="192.0.2.10"):
    """The fields Cloudflare Email Routing writes on top.  As in real
    ones, the HELO check comes first (spf=none ... smtp.helo), then the
    MAIL FROM check that DMARC uses."""
    helo_spf = (b"\tspf=none (mx.cloudflare.net: no SPF records found for "
                b"postmaster@mail.spf.test) smtp.helo=mail.spf.test;\r\n")
    return (
        b"Received: from mail.spf.test (mail.spf.test [" + ip.encode() +
        b"]) by mx.cloudflare.net (Postfix) with ESMTPS id 4Qx\r\n"
        b"\tfor <demo@example.test>; Thu, 03 Dec 2026 10:00:00 +0000\r\n"
        b"ARC-Seal: i=1; a=rsa-sha256; s=cf2024-1; d=cloudflare.net; "
        b"cv=none; b=AAAA\r\n"
        b"ARC-Authentication-Results: i=1; mx.cloudflare.net; dkim=none;\r\n"
        + helo_spf +
        b"\tspf=" + spf.encode() + b" smtp.mailfrom=" + mailfrom.encode() +
        b"; arc=" + arc.encode() + b" smtp.remote-ip=" + ip.encode() + b"\r\n"
        b"Received-SPF: " + spf.encode() + b" (mx.cloudflare.net: domain of " +
        mailfrom.encode() + b") receiver=mx.cloudflare.net; client-ip=" +
        ip.encode() + b"; envelope-from=\"" + mailfrom.encode() +
        b"\"; helo=mail.spf.test;\r\n"
        b"Authentication-Results: mx.cloudflare.net;\r\n"
        b"\tdkim=none; dmarc=none header.from=spf.test;\r\n"
        + helo_spf +
        b"\tspf=" + spf.encode() + b" (mx.cloudflare.net: domain of " +
        mailfrom.encode() + b") smtp.mailfrom=" + mailfrom.encode() + b";\r\n"
        b"\tarc=" + arc.encode() + b" smtp.remote-ip=" + ip.encode() + b"\r\n")


def our_ar(m):
    """Our Authentication-Results field (unfolded) from a stored message."""
    head = m.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields, cur = [], None
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and cur is not None:
            cur += " " + line.strip()
            continue
        if cur is not None:
            fields.append(cur)
        cur = line
    if cur is not None:
        fields.append(cur)
    ours = [f for f in fields if f.lower().startswith(
        "authentication-results: mx.example.test;")]
    return ours


# ---- signature database ---------------------------------------------------

def build_clamav_db(d):
    """EICAR (whole file and anywhere in a file) and every clamav test
    file, as .hdb/.ndb lines: made here, never committed."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "test.hdb"), "w") as f:
        f.write("%s:%d:Eicar-Test-Signature\n" % (
            hashlib.md5(EICAR).hexdigest(), len(EICAR)))
        for n in sorted(os.listdir(TESTFILES)):
            data = open(os.path.join(TESTFILES, n), "rb").read()
            f.write("%s:%d:Edgemail-Test.%s\n" % (
                hashlib.md5(data).hexdigest(), len(data),
                n.replace("_", "-")))
    with open(os.path.join(d, "test.ndb"), "w") as f:
        f.write("Eicar-Test-Signature.Body:0:*:%s\n" % EICAR.hex())


def zip_bytes(files, password=None, tmp=None):
    if password is None:
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in files:
                z.writestr(name, data)
        return b.getvalue()
    # Python cannot write encrypted ZIPs: zip(1) can.
    wd = os.path.join(tmp, "zipwork")
    os.makedirs(wd, exist_ok=True)
    for name, data in files:
        with open(os.path.join(wd, name), "wb") as f:
            f.write(data)
    out = os.path.join(tmp, "enc.zip")
    if os.path.exists(out):
        os.unlink(out)
    subprocess.run(["zip", "-q", "-P", password, out] +
                   [n for n, _ in files], cwd=wd, check=True)
    with open(out, "rb") as f:
        return f.read()


# ---- rspamd ---------------------------------------------------------------

class Rspamd:
    """Debian's rspamd with a config of its own, on 127.0.0.1."""

    def __init__(self, base, dns_addr):
        self.dir = os.path.join(base, "rspamd")
        self.port = free_ports(1)[0]
        self.proc = None
        for sub in ("db", "run", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        with open(os.path.join(self.dir, "tld.dat"), "w") as f:
            f.write("com\nnet\norg\ntest\n")
        with open(os.path.join(self.dir, "rspamd.conf"), "w") as f:
            f.write("""
options {
  pidfile = "%(d)s/run/rspamd.pid";
  dbdir = "%(d)s/db";
  enable_test_patterns = true;
  url_tld = "%(d)s/tld.dat";
  dns { nameserver = ["%(dns)s"]; timeout = 1s; retransmits = 1; }
}
logging { type = "file"; filename = "%(d)s/log/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "127.0.0.1:%(port)d"; count = 1; }
actions { reject = 15; add_header = 6; greylist = 4; }
""" % {"d": self.dir, "dns": dns_addr, "port": self.port})

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        cmd = ["rspamd", "-f", "-c", os.path.join(self.dir, "rspamd.conf")]
        if os.getuid() == 0:
            cmd += ["-i", "-u", "root", "-g", "root"]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("rspamd exited %d" % self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                    return b"pong" in s.recv(4096)
            except OSError:
                return False
        wait_for(up, 60, 0.2, "rspamd")

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        kids = descendants(p.pid)
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if not wait_gone(kids, 10):
            for k in kids:
                if pid_alive(k):
                    try:
                        os.kill(k, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


class FakeRspamd:
    """A tiny /checkv2 server for the failure cases; records requests."""

    def __init__(self):
        self.mode = "no action"     # an action, "slow", "500", "garbage"
        self.requests = []
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                fake.requests.append((dict(self.headers.items()),
                                      self.headers.get_all("Rcpt") or [],
                                      body))
                if fake.mode == "slow":
                    time.sleep(3)
                if fake.mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                out = (b"{not json" if fake.mode == "garbage" else
                       json.dumps({"action": fake.mode, "score": 5.5,
                                   "required_score": 15.0,
                                   "symbols": {"FAKE": {"score": 5.5}}}
                                  ).encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.srv.server_address[1]

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


# ---- fixture ----------------------------------------------------------------

class Ctx:
    pass


def setup():
    c = Ctx()
    c.st = Stack("checks")
    c.rsp = c.fake = None
    c.dns = DNSServer().start()
    try:
        c.rsa_pem, rsa_txt = rsa_key()
        c.ed_raw, ed_txt = ed_key()
        c.sub_pem, sub_txt = rsa_key()
        for name, txt in {
            "rsa._domainkey.sender.test": rsa_txt,
            "ed._domainkey.sender.test": ed_txt,
            "rsa._domainkey.mail.sender.test": sub_txt,
            "rsa._domainkey.mail.strict.test": sub_txt,
            "rsa._domainkey.other.test": rsa_txt,
            "rsa._domainkey.none.test": rsa_txt,
            "rsa._domainkey.xn--bcher-kva.test": rsa_txt,
            "_dmarc.xn--bcher-kva.test": "v=DMARC1; p=reject",
            "_dmarc.sender.test": "v=DMARC1; p=reject; rua=mailto:d@sender.test",
            "_dmarc.none.test": "v=DMARC1; p=none",
            "_dmarc.strict.test": "v=DMARC1; p=reject; adkim=s; aspf=s",
            "_dmarc.quar.test": "v=DMARC1; p=quarantine",
            "_dmarc.spf.test": "v=DMARC1; p=reject",
            "_dmarc.lax.test": "v=DMARC1; p=reject; pct=0",
        }.items():
            c.dns.set(name, txt)
        c.st.start_dovecot()
        # A second key for "REST clients": the first one is the Worker's.
        c.edge_key = c.st.key_id
        c.rest_key, c.rest_secret = "rest1", "rest-secret-0123456789abcdef"
        with open(c.st.path("keys", "hmac.keys"), "a") as f:
            f.write("%s %s\n" % (c.rest_key, c.rest_secret))
        c.db = c.st.path("clamav-test")
        build_clamav_db(c.db)
        c.base_conf = {
            "dns_server": c.dns.addr,
            "dns_timeout": "1s",
            "edge_key_ids": c.edge_key,
            "clamav_db_dir": c.db,
            "scan_max_filesize": "5M",
            "scan_max_scansize": "20M",
            "scan_reload_interval": "1s",
        }
        c.conf = dict(c.base_conf)
        c.st.start_api(c.conf)
    except BaseException:
        teardown(c)
        raise
    return c


def teardown(c):
    try:
        if c.rsp:
            c.rsp.stop()
        if c.fake:
            c.fake.stop()
        c.st.stop()
    finally:
        c.dns.stop()


def restart(c, **over):
    """Restart the API with the base configuration plus over."""
    c.st.stop_api()
    c.conf = dict(c.base_conf)
    c.conf.update(over)
    c.st.start_api(c.conf)


def post(c, body, rest=False, **kw):
    if rest:
        kw.setdefault("key_id", c.rest_key)
        kw.setdefault("secret", c.rest_secret)
    return c.st.post(body, [DEMO], **kw)


def stored(c, tag, folder="INBOX"):
    try:
        msgs = c.st.imap_messages(DEMO, c.st.demo_password, folder)
    except RuntimeError:
        return []           # the folder does not exist (yet)
    return [m for m in msgs if (b"Subject: " + tag.encode() + b"\r\n") in m]


def total(c):
    return c.st.maildir_count(DEMO) + c.st.maildir_count(DEMO, "Junk")


def delivered(c, tag, body, folder="INBOX", **kw):
    code, j, _ = post(c, body, **kw)
    eq(code, 200, "status (%s)" % (j,))
    ms = stored(c, tag, folder)
    eq(len(ms), 1, "copies of %s in %s" % (tag, folder))
    return ms[0]


def refused(c, body, status, code=None, enhanced=None, reason=None, **kw):
    before = total(c)
    st, j, h = post(c, body, **kw)
    eq(st, status, "HTTP status (%s)" % (j,))
    check(isinstance(j, dict) and j.get("reason"), "a reason: %r" % (j,))
    if code is not None:
        eq(j.get("code"), code, "code")
    if enhanced is not None:
        eq(j.get("enhanced"), enhanced, "enhanced")
    if reason is not None:
        check(reason in j["reason"], "reason %r has %r" % (j["reason"], reason))
    if status == 503:
        check(int(h.get("retry-after", "0")) > 0, "Retry-After: %r" % (h,))
    eq(total(c), before, "messages stored")
    return j


# ---- DKIM ---------------------------------------------------------------------

@test
def dkim_rsa_and_ed25519_signatures_pass(c):
    m = message("dkim-both", frm="a@sender.test")
    m = sign(m, "rsa", "sender.test", c.rsa_pem)
    m = sign(m, "ed", "sender.test", c.ed_raw, b"ed25519-sha256")
    s = delivered(c, "dkim-both", m, rest=True)
    ar = our_ar(s)
    eq(len(ar), 1, "one Authentication-Results of ours: %r" % ar)
    a = ar[0]
    check("dkim=pass header.d=sender.test header.s=rsa header.a=rsa-sha256" in a,
          "rsa pass: %s" % a)
    check("dkim=pass header.d=sender.test header.s=ed header.a=ed25519-sha256"
          in a, "ed25519 pass: %s" % a)
    check("dmarc=pass" in a and "header.from=sender.test" in a, "dmarc: %s" % a)
    check("spf=none" in a, "REST request: spf=none: %s" % a)


@test
def dkim_body_altered_after_signing_fails(c):
    m = sign(message("dkim-altered", frm="a@none.test"), "rsa", "none.test",
             c.rsa_pem)
    m = m.replace(b"hello world", b"hello World")
    a = our_ar(delivered(c, "dkim-altered", m, rest=True))[0]
    check("dkim=fail (body hash mismatch) header.d=none.test" in a, a)
    check("dmarc=fail (p=none dis=none)" in a, a)


@test
def dkim_l_tag_with_content_after_it_is_policy_not_pass(c):
    m = sign(message("dkim-l", frm="a@none.test"), "rsa", "none.test",
             c.rsa_pem, length=True)
    a = our_ar(delivered(c, "dkim-l", m, rest=True))[0]
    check("dkim=pass header.d=none.test" in a, "l= of the whole body: %s" % a)
    m = sign(message("dkim-l2", frm="a@none.test"), "rsa", "none.test",
             c.rsa_pem, length=True) + b"appended after signing\r\n"
    a = our_ar(delivered(c, "dkim-l2", m, rest=True))[0]
    check("dkim=policy (l= signs" in a and "header.d=none.test" in a, a)
    check("dmarc=fail" in a, "not aligned by a partial signature: %s" % a)


@test
def dkim_header_altered_fails_and_unknown_key_is_permerror(c):
    m = sign(message("dkim-hdr", frm="a@none.test"), "rsa", "none.test",
             c.rsa_pem)
    m = sign(m, "nokey", "none.test", c.rsa_pem)
    m = m.replace(b"Subject: dkim-hdr", b"Subject: dkim-hdr2")
    a = our_ar(delivered(c, "dkim-hdr2", m, rest=True))[0]
    check("dkim=fail (signature mismatch) header.d=none.test header.s=rsa" in a,
          a)
    check("dkim=permerror (no key) header.d=none.test header.s=nokey" in a, a)


@test
def unsigned_message_is_dkim_none(c):
    a = our_ar(delivered(c, "unsigned", message("unsigned", "a@none.test"),
                         rest=True))[0]
    check("dkim=none" in a and "dmarc=fail" in a, a)


@test
def forged_authentication_results_with_our_id_removed(c):
    m = message("forged-ar", frm="a@sender.test", extra=b"Authentication-Results: mx.example.test;"
                b" dkim=pass header.d=forged.test\r\n"
                b"Authentication-Results: other.example; dkim=pass "
                b"header.d=kept.test\r\nX-Edgemail-Junk: no\r\n")
    m = sign(m, "rsa", "sender.test", c.rsa_pem)
    s = delivered(c, "forged-ar", m, rest=True)
    check(b"forged.test" not in s, "forged A-R removed")
    check(b"header.d=kept.test" in s, "other authserv-ids are kept")
    check(b"X-Edgemail-Junk: no" not in s, "incoming X-Edgemail-Junk dropped")
    eq(len(our_ar(s)), 1, "exactly one A-R of ours")


# ---- DMARC --------------------------------------------------------------------

@test
def dmarc_reject_policy_failing_alignment_is_422(c):
    # signed, but by another domain: no alignment
    m = sign(message("dmarc-rej", frm="a@sender.test"), "rsa", "other.test",
             c.rsa_pem)
    j = refused(c, m, 422, 550, "5.7.1", "DMARC", rest=True)
    check("sender.test" in j["reason"], j["reason"])


@test
def dmarc_policy_found_at_organizational_domain(c):
    # no _dmarc.news.sender.test: the org domain's p=reject applies
    refused(c, message("dmarc-org", frm="a@news.sender.test"), 422, 550,
            "5.7.1", rest=True)


@test
def dmarc_relaxed_alignment_passes_subdomain_signature(c):
    m = sign(message("dmarc-relaxed", frm="a@sender.test"), "rsa",
             "mail.sender.test", c.sub_pem)
    a = our_ar(delivered(c, "dmarc-relaxed", m, rest=True))[0]
    check("dmarc=pass" in a, a)


@test
def dmarc_aligns_an_internationalised_author_domain(c):
    # From in UTF-8, d= in A-labels, as DKIM writes it: the same domain.
    m = sign(message("dmarc-idn", frm="a@bücher.test"), "rsa",
             "xn--bcher-kva.test", c.rsa_pem)
    a = our_ar(delivered(c, "dmarc-idn", m, rest=True))[0]
    check("dmarc=pass" in a, a)


@test
def dmarc_strict_alignment_refuses_subdomain_signature(c):
    m = sign(message("dmarc-strict", frm="a@strict.test"), "rsa",
             "mail.strict.test", c.sub_pem)
    refused(c, m, 422, 550, "5.7.1", rest=True)


@test
def dmarc_quarantine_policy_goes_to_junk(c):
    s = delivered(c, "dmarc-quar", message("dmarc-quar", frm="a@quar.test"),
                  folder="Junk", rest=True)
    check(b"X-Edgemail-Junk: yes" in s, "junk marker")
    check("dmarc=fail (p=quarantine dis=quarantine)" in our_ar(s)[0],
          our_ar(s)[0])
    eq(len(stored(c, "dmarc-quar")), 0, "not in INBOX")


@test
def dmarc_pct_zero_downgrades_reject_to_junk(c):
    delivered(c, "dmarc-pct", message("dmarc-pct", frm="a@lax.test"),
              folder="Junk", rest=True)


@test
def dmarc_reject_quarantine_setting_files_into_junk(c):
    restart(c, dmarc_reject="quarantine")
    try:
        s = delivered(c, "dmarc-rej-q", message("dmarc-rej-q", frm="a@sender.test"), folder="Junk",
                      rest=True)
        check("dmarc=fail (p=reject dis=reject)" in our_ar(s)[0], our_ar(s)[0])
    finally:
        restart(c)


@test
def dmarc_reject_no_setting_delivers(c):
    restart(c, dmarc_reject="no")
    try:
        delivered(c, "dmarc-rej-no", message("dmarc-rej-no", frm="a@sender.test"), rest=True)
    finally:
        restart(c)


@test
def every_author_domain_is_heard(c):
    # Two From fields, or two authors in one, each domain's policy is
    # looked up: one that says reject cannot hide behind the other.
    m = message("two-from", extra=b"From: <b@other.test>\r\n")
    a = our_ar(delivered(c, "two-from", m, rest=True))[0]
    check("dmarc=fail (p=none dis=none) header.from=none.test" in a,
          "p=none and no policy: delivered: %s" % a)
    refused(c, message("two-from-rej", extra=b"From: <ceo@spf.test>\r\n"),
            422, 550, "5.7.1", rest=True)
    refused(c, message("two-authors", frm="a@none.test>, <ceo@spf.test"),
            422, 550, "5.7.1", rest=True)


@test
def a_from_that_hides_its_domain_is_still_read(c):
    # A NUL before the address (Dovecot shows what follows it), and a
    # label too long for DNS under a domain that says reject.
    refused(c, message("from-nul", frm="ceo@spf.test").replace(
            b"From: Sender <", b"From: Sender\0 <"), 422, 550, "5.7.1",
            rest=True)
    refused(c, message("from-long", frm="ceo@" + "a" * 130 + ".spf.test"),
            422, 550, "5.7.1", rest=True)


# ---- the edge: SPF and ARC --------------------------------------------------

@test
def edge_spf_pass_counts_only_for_the_worker_key(c):
    m = edge_block() + message("edge-spf", frm="a@spf.test")
    s = delivered(c, "edge-spf", m)             # signed with the edge key
    a = our_ar(s)[0]
    check("spf=pass" in a and "smtp.mailfrom=a@spf.test" in a, a)
    check("dmarc=pass" in a, "SPF-aligned DMARC pass: %s" % a)
    check("arc=none (1 set, checked by mx.cloudflare.net) "
          "smtp.remote-ip=192.0.2.10" in a, a)
    # the same bytes from a REST client: no SPF, so DMARC fails
    m2 = edge_block() + message("edge-spf-rest", frm="a@spf.test")
    j = refused(c, m2, 422, 550, "5.7.1", rest=True)
    check("spf.test" in j["reason"], j["reason"])


@test
def edge_arc_result_is_recorded(c):
    m = edge_block(arc="pass") + message("edge-arc", frm="a@spf.test")
    a = our_ar(delivered(c, "edge-arc", m))[0]
    check("arc=pass" in a, a)


@test
def deeper_forged_edge_results_are_ignored(c):
    # the edge says fail; a copy below a second Received says pass
    forged = (b"Received: from attacker.test by relay.attacker.test;"
              b" Thu, 03 Dec 2026 09:00:00 +0000\r\n"
              b"Authentication-Results: mx.cloudflare.net; spf=pass "
              b"smtp.mailfrom=a@spf.test; arc=pass\r\n"
              b"Received-SPF: pass client-ip=198.51.100.1; "
              b"envelope-from=\"a@spf.test\"\r\n")
    m = edge_block(spf="fail") + forged + message("edge-deep", frm="a@spf.test")
    refused(c, m, 422, 550, "5.7.1")
    # no edge block on top at all: the deeper copies are not used either
    m = (b"Received: from x by mx.cloudflare.net; Thu, 03 Dec 2026 10:00:00 "
         b"+0000\r\n" + forged + message("edge-none", frm="a@none.test"))
    a = our_ar(delivered(c, "edge-none", m))[0]
    check("spf=none (no SPF result from the edge)" in a, a)
    check("arc=pass" not in a, a)


@test
def forged_results_below_an_unreadable_edge_field_are_ignored(c):
    # The edge's own fields do not parse (an envelope sender longer than
    # a result value may be); the sender's copies right below them, in
    # the same block, must not be taken instead.
    forged = (b"Authentication-Results: mx.cloudflare.net; spf=pass "
              b"smtp.mailfrom=a@spf.test\r\n"
              b"Received-SPF: pass client-ip=198.51.100.1; "
              b"envelope-from=\"a@spf.test\"\r\n")
    m = (edge_block(spf="pass", mailfrom="x" * 300 + "@far.test") + forged +
         message("edge-unreadable", frm="a@spf.test"))
    refused(c, m, 422, 550, "5.7.1")


# ---- DNS ------------------------------------------------------------------------

@test
def dns_down_is_503_never_a_refusal(c):
    m = sign(message("dns-down", frm="a@sender.test"), "rsa", "sender.test", c.rsa_pem)
    for mode in ("drop", "servfail"):
        c.dns.mode = mode
        try:
            j = refused(c, m, 503, rest=True)
            check(j.get("code", 451) // 100 == 4, "a 4xx reply: %r" % (j,))
        finally:
            c.dns.mode = "ok"
    # and once DNS is back, the same message is delivered
    delivered(c, "dns-down", m, rest=True)


@test
def dkim_key_lookup_failure_with_aligned_signature_is_503(c):
    m = sign(message("dkim-temp", frm="a@sender.test"), "ed", "sender.test", c.ed_raw,
             b"ed25519-sha256")
    real = c.dns.answer

    def answer(wire, tcp):
        if b"_domainkey" in wire:
            return None         # key lookups time out, policies answer
        return real(wire, tcp)
    c.dns.answer = answer
    try:
        refused(c, m, 503, rest=True)
    finally:
        c.dns.answer = real
    delivered(c, "dkim-temp", m, rest=True)


# ---- virus scanning ------------------------------------------------------------

@test
def eicar_attachment_is_refused(c):
    refused(c, attach("eicar", EICAR, "eicar.com"), 422, 554, "5.7.1",
            "virus found: Eicar-Test-Signature", rest=True)


@test
def eicar_in_a_text_body_is_refused(c):
    refused(c, message("eicar-body", body=EICAR + b"\r\n"), 422, 554, "5.7.1",
            "virus found: Eicar-Test-Signature", rest=True)


@test
def every_clamav_testfile_is_refused(c):
    bad = []
    before = total(c)
    for n in sorted(os.listdir(TESTFILES)):
        with open(os.path.join(TESTFILES, n), "rb") as f:
            data = f.read()
        st, j, _ = post(c, attach("tf-" + n, data, n), rest=True)
        if st != 422 or "virus found: Edgemail-Test." not in j.get("reason", ""):
            bad.append("%s: %s %s" % (n, st, j))
    check(not bad, "; ".join(bad))
    eq(total(c), before, "messages stored")
    for n in sorted(os.listdir(TESTFILES))[:3]:
        eq(len(stored(c, "tf-" + n)), 0, "nothing stored for %s" % n)


@test
def encrypted_zip_attachment_is_refused(c):
    z = zip_bytes([("secret.txt", b"secret\n" * 50)], password="pw",
                  tmp=c.st.dir)
    refused(c, attach("enc-zip", z, "secret.zip", b"application/zip"), 422,
            554, "5.7.1", "encrypted archive refused", rest=True)


@test
def nested_zip_bomb_is_refused(c):
    data = b"innermost"
    for i in range(25):
        data = zip_bytes([("l%d.zip" % i if i else "x.txt", data)])
    refused(c, attach("bomb-nested", data, "bomb.zip", b"application/zip"),
            422, 554, "5.7.1", "exceeds the scan limits", rest=True)


@test
def wide_zip_bomb_is_refused(c):
    z = zip_bytes([("f%d.bin" % i, b"\0" * (8 << 20)) for i in range(6)])
    check(len(z) < 200000, "small on the wire: %d" % len(z))
    refused(c, attach("bomb-wide", z, "bomb.zip", b"application/zip"), 422,
            554, "5.7.1", "exceeds the scan limits", rest=True)


@test
def virus_past_the_file_size_limit_in_a_zip_member_is_not_clean(c):
    # scan_max_filesize is 5M here: libclamav would cut this member there
    # without a word, and the EICAR after the zeros would pass as clean.
    z = zip_bytes([("big.bin", b"\0" * (6 << 20) + EICAR)])
    st, j, _ = post(c, attach("zip-late-virus", z, "big.zip",
                              b"application/zip"), rest=True)
    eq(st, 422, "refused, never clean: %r" % (j,))
    eq(stored(c, "zip-late-virus"), [], "nothing stored")


@test
def a_spill_file_used_again_shows_nothing_of_the_message_before(c):
    # Bodies past 64 KiB go to a spill file, and the API keeps those
    # files for the next request.  A long message with a virus at its
    # end, then a shorter clean one in the same file: the scanner and
    # LMTP must read only the second message's bytes.
    line = b"x" * 76 + b"\r\n"
    long_body = line * 4000 + EICAR + b"\r\n"
    refused(c, message("spill-long", body=long_body), 422, 554, "5.7.1",
            "virus found: Eicar-Test-Signature", rest=True)
    short_body = line * 2000 + b"the end\r\n"
    m = delivered(c, "spill-short", message("spill-short", body=short_body),
                  rest=True)
    check(m.endswith(b"\r\n\r\n" + short_body),
          "stored body is the short message, %d bytes, ends %r" %
          (len(m), m[-40:]))


@test
def clean_attachment_is_delivered(c):
    z = zip_bytes([("report.txt", b"quarterly numbers\n" * 100)])
    delivered(c, "clean-zip", attach("clean-zip", z, "report.zip"), rest=True)


@test
def missing_database_fails_readyz_and_defers_until_it_appears(c):
    empty = c.st.path("clamav-empty")
    shutil.rmtree(empty, ignore_errors=True)
    os.makedirs(empty)
    restart(c, clamav_db_dir=empty)
    try:
        st, body, _ = c.st.get("/readyz")
        eq(st, 503, "readyz status")
        j = json.loads(body)
        check(j.get("scanner") not in (None, "ok"), "scanner state: %r" % j)
        refused(c, message("no-db"), 503, rest=True)
        # freshclam's job, done by hand: the reload thread picks it up
        for f in os.listdir(c.db):
            shutil.copy(os.path.join(c.db, f), empty)
        wait_for(lambda: c.st.get("/readyz")[0] == 200, 15, 0.2,
                 "readyz after the database appears")
        delivered(c, "no-db", message("no-db"), rest=True)
    finally:
        restart(c)


@test
def broken_database_fails_readyz(c):
    broken = c.st.path("clamav-broken")
    os.makedirs(broken, exist_ok=True)
    with open(os.path.join(broken, "bad.ndb"), "w") as f:
        f.write("this is not a signature\n")
    restart(c, clamav_db_dir=broken)
    try:
        eq(c.st.get("/readyz")[0], 503, "readyz status")
        refused(c, attach("broken-db", EICAR, "eicar.com"), 503, rest=True)
    finally:
        restart(c)


@test
def scan_no_turns_scanning_off(c):
    restart(c, scan="no", clamav_db_dir="/nonexistent")
    try:
        st, body, _ = c.st.get("/readyz")
        eq(json.loads(body).get("scanner"), "off", "scanner state")
        delivered(c, "scan-off", attach("scan-off", EICAR, "eicar.com"),
                  rest=True)
    finally:
        restart(c)


# ---- rspamd ---------------------------------------------------------------------

@test
def rspamd_reject_add_header_and_down(c):
    c.rsp = Rspamd(c.st.dir, c.dns.addr)
    c.rsp.start()
    restart(c, rspamd_url=c.rsp.url, rspamd_timeout="5s")
    try:
        refused(c, message("rs-reject", body=b"X" + GTUBE + b"\r\n"), 422, 550,
                "5.7.1", "spam", rest=True)
        s = delivered(c, "rs-header", message("rs-header",
                      body=b"Y" + GTUBE + b"\r\n"), folder="Junk", rest=True)
        check(b"X-Spam-Flag: YES\r\n" in s, "X-Spam-Flag")
        check(b"X-Spam-Action: add header" in s, "X-Spam-Action")
        s = delivered(c, "rs-subject", message("rs-subject",
                      body=b"Z" + GTUBE + b"\r\n"), folder="Junk", rest=True)
        s = delivered(c, "rs-ham", message("rs-ham",
                      extra=b"X-Spam-Flag: YES\r\n"), rest=True)
        check(b"X-Spam-Flag: NO\r\n" in s and b"X-Spam-Flag: YES" not in s,
              "our X-Spam-Flag replaces the sender's")
        c.rsp.stop()
        refused(c, message("rs-down"), 503, rest=True)
        restart(c, rspamd_url=c.rsp.url, rspamd_fail_open="yes")
        s = delivered(c, "rs-open", message("rs-open"), rest=True)
        check(b"X-Spam-Flag" not in s, "unscored")
    finally:
        c.rsp.stop()
        restart(c)


@test
def rspamd_fake_soft_reject_timeout_and_garbage(c):
    c.fake = FakeRspamd()
    restart(c, rspamd_url=c.fake.url, rspamd_timeout="1s")
    try:
        for mode in ("soft reject", "greylist", "slow", "500", "garbage"):
            c.fake.mode = mode
            refused(c, message("fake-" + mode.replace(" ", "-")), 503,
                    rest=False)
        c.fake.mode = "no action"
        c.fake.requests.clear()
        m = edge_block() + message("fake-ok", frm="a@spf.test")
        delivered(c, "fake-ok", m)
        h, rcpts, body = c.fake.requests[-1]
        eq(h.get("From"), "a@sender.test", "envelope From")
        eq(rcpts, [DEMO], "Rcpt")
        eq(h.get("IP"), "192.0.2.10", "IP from the edge")
        eq(h.get("Helo"), "mail.spf.test", "Helo from the edge")
        check(body.startswith(b"Authentication-Results: mx.example.test;"),
              "rspamd sees our A-R (with the edge's SPF) on top")
        check(b"spf=pass" in body.split(b"\r\n\r\n")[0], "SPF result sent")
        # Actions a rule can set that are not "add header": never the
        # inbox.
        for mode in ("quarantine", "discard"):
            c.fake.mode = mode
            tag = "fake-" + mode
            s = delivered(c, tag, message(tag), folder="Junk", rest=True)
            check(b"X-Spam-Flag: YES\r\n" in s, "X-Spam-Flag for %s" % mode)
    finally:
        c.fake.stop()
        c.fake = None
        restart(c)


# ---- speed ----------------------------------------------------------------------

@test
def checks_take_a_few_ms_for_10kb_messages(c):
    body = (b"x" * 76 + b"\r\n") * 130
    for i in range(20):
        m = sign(message("speed-%d" % i, frm="a@sender.test", body=body), "rsa", "sender.test",
                 c.rsa_pem)
        st, j, _ = post(c, m, rest=True)
        eq(st, 200, "status")
    ms = []
    for line in c.st.log("api").splitlines():
        if "event=checks" in line and "dkim=pass" in line:
            for f in line.split():
                if f.startswith("ms="):
                    ms.append(float(f[3:]))
    check(len(ms) >= 20, "timings logged: %d" % len(ms))
    med = statistics.median(ms[-20:])
    print("checks median %.2f ms over %d messages of 10 KB" % (med, 20))
    check(med < 15, "median %.2f ms" % med)


if __name__ == "__main__":
    harness.main(setup, teardown)
