"""dnsserver.py - a tiny authoritative-looking DNS server on loopback.

Serves TXT records (DKIM keys, DMARC policies, SPF...) from a dict, over
UDP and TCP on 127.0.0.1, so that tests and the dev stack never touch the
system resolver or the network.  Every other name gets NXDOMAIN.

    srv = DNSServer({"sel._domainkey.sender.test": ["v=DKIM1; k=rsa; p=..."]})
    srv.start()                 # srv.port, srv.addr ("127.0.0.1:PORT")
    srv.set("_dmarc.sender.test", "v=DMARC1; p=reject")
    srv.mode = "drop"           # "ok", "drop" (never answer), "servfail",
                                # "refused", "truncate" (UDP always TC)
    srv.stop()

As a program (zone file: one record per line, `NAME TEXT...`, `#`
comments; TEXT is the record's value as one string):

    python3 dnsserver.py --port 5353 --zone records.txt [--pidfile F]

Only Debian's python3-dnspython is needed.
"""
import argparse
import os
import signal
import socket
import socketserver
import struct
import sys
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

__all__ = ["DNSServer", "load_zone"]


def _split255(value):
    """A TXT value as character-strings of at most 255 bytes."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (list, tuple)):
        return [v.encode() if isinstance(v, str) else v for v in value]
    return [value[i:i + 255] for i in range(0, len(value), 255)] or [b""]


def _key(name):
    return name.lower().rstrip(".")


def load_zone(path):
    """Read a zone file of `NAME TEXT...` lines into {name: [text]}."""
    recs = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, text = line.partition(" ")
            text = text.strip()
            if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
                text = text[1:-1]
            recs.setdefault(_key(name), []).append(text)
    return recs


class DNSServer:
    """TXT records on 127.0.0.1 (UDP and TCP on the same port)."""

    def __init__(self, records=None, port=0, ttl=60):
        self.records = {}
        self.lock = threading.Lock()
        self.mode = "ok"
        self.ttl = ttl
        self.queries = []           # names asked, in order (lower-case)
        for k, v in (records or {}).items():
            self.set(k, v)
        self._port = port
        self._udp = self._tcp = None
        self._threads = []

    # -- records --------------------------------------------------------

    def set(self, name, values):
        """Replace the TXT records of name (a string or a list of them)."""
        if isinstance(values, (str, bytes)):
            values = [values]
        with self.lock:
            self.records[_key(name)] = list(values)

    def remove(self, name):
        with self.lock:
            self.records.pop(_key(name), None)

    def clear_queries(self):
        with self.lock:
            self.queries = []

    @property
    def port(self):
        return self._udp.server_address[1]

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    # -- answering ------------------------------------------------------

    def answer(self, wire, over_tcp):
        """The reply to one query (bytes), or None to stay silent."""
        try:
            q = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if self.mode == "drop":
            return None
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if not q.question:
            r.set_rcode(dns.rcode.FORMERR)
            return r.to_wire()
        qn = q.question[0]
        name = _key(qn.name.to_text())
        with self.lock:
            self.queries.append(name)
            vals = self.records.get(name)
            known = vals is not None or any(
                k.endswith("." + name) for k in self.records)
        if self.mode == "servfail":
            r.set_rcode(dns.rcode.SERVFAIL)
            return r.to_wire()
        if self.mode == "refused":
            r.set_rcode(dns.rcode.REFUSED)
            return r.to_wire()
        if vals is None and not known:
            r.set_rcode(dns.rcode.NXDOMAIN)
        elif vals and qn.rdtype in (dns.rdatatype.TXT, dns.rdatatype.ANY):
            rrs = dns.rrset.RRset(qn.name, dns.rdataclass.IN,
                                  dns.rdatatype.TXT)
            for v in vals:
                rrs.add(dns.rdtypes.ANY.TXT.TXT(
                    dns.rdataclass.IN, dns.rdatatype.TXT, _split255(v)),
                    self.ttl)
            r.answer.append(rrs)
        if over_tcp:
            return r.to_wire()
        limit = max(q.payload, 512) if q.edns >= 0 else 512
        if self.mode != "truncate":
            try:
                return r.to_wire(max_size=limit)
            except dns.exception.TooBig:
                pass
        t = dns.message.make_response(q)
        t.flags |= dns.flags.AA | dns.flags.TC
        return t.to_wire()

    # -- threads --------------------------------------------------------

    def start(self):
        srv = self

        class UDP(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                out = srv.answer(data, False)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(5)
                try:
                    while True:
                        n = self._read(2)
                        if n is None:
                            return
                        data = self._read(struct.unpack("!H", n)[0])
                        if data is None:
                            return
                        out = srv.answer(data, True)
                        if out is None:
                            return
                        self.request.sendall(struct.pack("!H", len(out)) +
                                             out)
                except OSError:
                    return

            def _read(self, n):
                buf = b""
                while len(buf) < n:
                    got = self.request.recv(n - len(buf))
                    if not got:
                        return None
                    buf += got
                return buf

        class UDPServer(socketserver.ThreadingUDPServer):
            daemon_threads = True
            allow_reuse_address = True

        class TCPServer(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        # UDP and TCP on one port: take a UDP port, then try TCP on it.
        for _ in range(50):
            self._udp = UDPServer(("127.0.0.1", self._port), UDP)
            port = self._udp.server_address[1]
            try:
                self._tcp = TCPServer(("127.0.0.1", port), TCP)
                break
            except OSError:
                self._udp.server_close()
                self._udp = None
                if self._port:
                    raise
        if self._tcp is None:
            raise RuntimeError("no free port for UDP and TCP")
        for s in (self._udp, self._tcp):
            t = threading.Thread(target=s.serve_forever, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        for s in (self._udp, self._tcp):
            if s is not None:
                s.shutdown()
                s.server_close()
        self._udp = self._tcp = None
        for t in self._threads:
            t.join(5)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--zone", help="file of NAME TEXT lines")
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    srv = DNSServer(load_zone(a.zone) if a.zone else {}, port=a.port)
    srv.start()
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    print("dnsserver: listening on %s" % srv.addr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    srv.stop()
    if a.pidfile:
        try:
            os.unlink(a.pidfile)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
