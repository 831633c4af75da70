"""checks_msg.py - the message of `make bench` part (d), inbound checks on.

Writes into DIR:
  msg.eml   a multipart message with a base64 PDF-like attachment
            (%PDF-1.4 header, random content), DKIM-signed rsa-sha256 by
            SELECTOR._domainkey.DOMAIN over its whole body; exactly
            SIZE - 49 bytes, so that with edgemail-bench's 49-byte
            "X-Bench:" field put on top it is SIZE bytes
  zone.txt  the key record (and a DMARC policy) for tests/scenario/
            dnsserver.py --zone

edgemail-bench makes every request unique by that field on top, which no
signature covers, so every request verifies (dkim=pass) without l=: the
API counts a signature whose l= leaves part of the body unsigned as
"policy", not "pass" (anything could have been appended there).

    /usr/bin/python3 checks_msg.py DIR [--size 1048576] [--domain sender.test]
                     [--selector bench] [--from bench@sender.test]
"""
import argparse
import base64
import os
import random
import sys

import dkim  # python3-dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TAIL_LEN = 49


def rsa_key():
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(serialization.Encoding.PEM,
                          serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    pub = base64.b64encode(k.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return pem, "v=DKIM1; k=rsa; p=" + pub


def pdf_like(n, seed):
    """%PDF-1.4, an object or two, then random stream bytes."""
    rng = random.Random(seed)
    head = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog "
            b"/Pages 2 0 R >>\nendobj\n3 0 obj\n<< /Length " +
            str(n).encode() + b" /Filter /FlateDecode >>\nstream\n")
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    body = rng.randbytes(max(0, n - len(head) - len(tail)))
    return head + body + tail


def build(a, pad):
    att = base64.encodebytes(pdf_like(a.pdf_bytes, 7)).replace(b"\n", b"\r\n")
    text = b"Please find the report attached.\r\n"
    while pad > 0:  # filler lines of at most 76 characters, each CRLF
        n = min(pad, 78)
        if pad - n == 1:
            n -= 1  # never leave a single byte: a line needs 2
        text += b"x" * (n - 2) + b"\r\n"
        pad -= n
    body = (b"--BENCHBND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
            text +
            b"--BENCHBND\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n" +
            att + b"--BENCHBND--\r\n")
    return (b"From: Bench Sender <" + a.frm.encode() + b">\r\n"
            b"To: <bench1@example.test>\r\n"
            b"Subject: edgemail bench, inbound checks\r\n"
            b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <bench-checks@" + a.domain.encode() + b">\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=BENCHBND\r\n"
            b"\r\n" + body)


def sign(a, msg, pem):
    sig = dkim.sign(msg, a.selector.encode(), a.domain.encode(), pem,
                    signature_algorithm=b"rsa-sha256",
                    canonicalize=(b"relaxed", b"simple"),
                    include_headers=[b"from", b"to", b"subject", b"date",
                                     b"message-id", b"mime-version",
                                     b"content-type"])
    return sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--size", type=int, default=1048576)
    ap.add_argument("--domain", default="sender.test")
    ap.add_argument("--selector", default="bench")
    ap.add_argument("--from", dest="frm", default="bench@sender.test")
    a = ap.parse_args()
    want = a.size - TAIL_LEN
    # Base64 grows 57 bytes to 78 (76 + CRLF): leave ~2 KB for the rest.
    a.pdf_bytes = max(1024, (want - 2048) * 57 // 78)
    pem, txt = rsa_key()
    pad = 0
    for _ in range(6):
        out = sign(a, build(a, pad), pem)
        if len(out) == want:
            break
        pad += want - len(out)
        if pad < 0:
            a.pdf_bytes -= 1024
            pad = 0
    else:
        sys.exit("checks_msg.py: cannot reach %d bytes" % want)
    tail = b"X-Bench: 0123456789abcdef-000000000000000000001\r\n"
    if len(tail) != TAIL_LEN or not dkim.verify(
            tail + out, dnsfunc=lambda name, timeout=5: txt.encode()):
        sys.exit("checks_msg.py: the signature does not verify with the "
                 "X-Bench field on top")
    with open(os.path.join(a.dir, "msg.eml"), "wb") as f:
        f.write(out)
    with open(os.path.join(a.dir, "zone.txt"), "w") as f:
        f.write("%s._domainkey.%s %s\n" % (a.selector, a.domain, txt))
        f.write("_dmarc.%s v=DMARC1; p=none\n" % a.domain)


if __name__ == "__main__":
    main()
