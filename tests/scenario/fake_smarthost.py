#!/usr/bin/python3
"""fake_smarthost.py - the outside world for the relay's scenario tests.

An SMTP server on 127.0.0.1 (aiosmtpd) that behaves like a provider's
smarthost: STARTTLS required, AUTH PLAIN/LOGIN required (after TLS), then
it takes mail and records every message in a directory:

    OUT/NNNNNN.eml    the message as received (CRLF)
    OUT/NNNNNN.json   {"mail_from": ..., "rcpt_tos": [...], "auth": ...,
                       "tls": true}

Files appear atomically (written under a temporary name, then renamed).
Recipients can be refused on purpose, by the local part:

    --reject REGEX    RCPT gets 550 5.1.1 when the local part matches
    --tempfail REGEX  RCPT gets 451 4.3.0 when the local part matches
    --null            accept and count, write nothing (benchmarks)

Usage:
    fake_smarthost.py --port P --cert PEM --key KEY --dir OUT
                      [--user U --password PW] [--reject RE] [--tempfail RE]

Runs with Debian's /usr/bin/python3 (python3-aiosmtpd) until SIGTERM or
SIGINT.  Prints "ready PORT" on stdout once it listens.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def _login_of(session):
    """The user name the client authenticated as (None: no AUTH)."""
    for v in (getattr(session, "auth_data", None),):
        if isinstance(v, LoginPassword):
            v = v.login
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, str):
            return v
    return None


class Recorder:
    def __init__(self, outdir, reject, tempfail, null):
        self.outdir = outdir
        self.reject = re.compile(reject) if reject else None
        self.tempfail = re.compile(tempfail) if tempfail else None
        self.null = null
        self.lock = threading.Lock()
        self.seq = 0
        if outdir:
            os.makedirs(outdir, exist_ok=True)
            for f in os.listdir(outdir):
                if f.endswith(".json"):
                    try:
                        self.seq = max(self.seq, int(f.split(".")[0]))
                    except ValueError:
                        pass

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        local = address.rsplit("@", 1)[0]
        if self.reject and self.reject.search(local):
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        if self.tempfail and self.tempfail.search(local):
            return "451 4.3.0 <%s>: Temporary failure, try later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.seq += 1
            n = self.seq
        if not self.null:
            base = os.path.join(self.outdir, "%06d" % n)
            data = envelope.original_content or envelope.content
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
            meta = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "auth": _login_of(session),
                "tls": session.ssl is not None,
                "mail_options": list(envelope.mail_options),
            }
            with open(base + ".eml.tmp", "wb") as f:
                f.write(data)
            os.rename(base + ".eml.tmp", base + ".eml")
            with open(base + ".json.tmp", "w") as f:
                json.dump(meta, f)
            os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as fake%06d" % n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", default="")
    ap.add_argument("--user", default="relayuser")
    ap.add_argument("--password", default="relaypass")
    ap.add_argument("--reject", default="")
    ap.add_argument("--tempfail", default="")
    ap.add_argument("--null", action="store_true")
    a = ap.parse_args()
    if not a.null and not a.dir:
        ap.error("--dir is required unless --null")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              auth_data.login.decode() == a.user and
              auth_data.password.decode() == a.password)
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    handler = Recorder(a.dir, a.reject, a.tempfail, a.null)
    ctl = Controller(handler, hostname="127.0.0.1", port=a.port,
                     server_hostname="smarthost.test",
                     tls_context=ctx, require_starttls=True,
                     auth_required=True, auth_require_tls=True,
                     authenticator=authenticator,
                     data_size_limit=64 * 1024 * 1024,
                     decode_data=False, ready_timeout=10)
    ctl.start()
    print("ready %d" % a.port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *x: stop.set())
    signal.signal(signal.SIGINT, lambda *x: stop.set())
    while not stop.wait(0.5):
        pass
    ctl.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
