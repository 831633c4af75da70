"""stack.py - a throw-away edgemail stack for one scenario test file.

    st = Stack("api_basic")          # temp run dir, free ports, stack.sh init
    try:
        st.start_dovecot()
        st.start_api()
        status, js, hdrs = st.post(msg, ["demo@example.test"])
        msgs = st.imap_messages(st.demo_user, st.demo_password)
    finally:
        st.stop()

Everything runs on 127.0.0.1 with ports picked by the kernel, in a fresh
directory under /tmp (kept when KEEP=1 is set, removed otherwise).  Every
process is started here and stopped here by its PID, also at interpreter
exit and on SIGTERM.  Requests are signed as DESIGN section 4 says; the
helpers also let a test break any part of a request on purpose.
"""
import atexit
import hashlib
import hmac
import http.client
import imaplib
import json
import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

TOP = os.environ.get("EDGEMAIL_TOP") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("EDGEMAIL_BIN") or os.path.join(TOP, "bin")
STACK_SH = os.path.join(TOP, "deploy", "stack.sh")

PORT_NAMES = ("api", "imap", "imaps", "pop3", "pop3s", "sieve",
              "submit", "submits")
PORT_ENV = {"api": "API_PORT", "imap": "IMAP_PORT", "imaps": "IMAPS_PORT",
            "pop3": "POP3_PORT", "pop3s": "POP3S_PORT",
            "sieve": "SIEVE_PORT", "submit": "SUBMIT_PORT",
            "submits": "SUBMITS_PORT"}

_live = []          # stacks not stopped yet, for atexit / SIGTERM


def _stop_all():
    for st in list(_live):
        try:
            st.stop()
        except Exception as e:  # noqa: BLE001 - keep stopping the others
            print("stack: stop failed: %s" % e, file=sys.stderr)


def _on_sigterm(signum, frame):
    _stop_all()
    sys.exit(128 + signum)


atexit.register(_stop_all)
if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open until all found)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            p = s.getsockname()[1]
            if p not in ports:
                ports.append(p)
    finally:
        for s in socks:
            s.close()
    return ports


def pid_alive(pid):
    """Whether pid runs (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
    except OSError:
        return False
    return True


def descendants(pid):
    """PIDs of every process below pid (from /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def wait_gone(pids, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return not any(pid_alive(p) for p in pids)


def wait_for(cond, timeout=10.0, interval=0.05, what="condition"):
    """Poll cond() until it returns a true value; raise on timeout."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            raise TimeoutError("timed out after %.1fs waiting for %s"
                               % (timeout, what))
        time.sleep(interval)


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_listening(port):
    """Whether something listens on 127.0.0.1:port, from /proc/net/tcp
    (no connection: probing Dovecot's login ports would start a login
    process that slows its shutdown)."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if len(parts) > 3 and parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        return port_open(port)
    return False


def qenc(s):
    """Percent-encode a query value as the Worker does (@ -> %40)."""
    return urllib.parse.quote(s, safe="")


def sign(secret, ts, method, target, idem, body):
    """The v1 signature header value (DESIGN section 4)."""
    if isinstance(secret, str):
        secret = secret.encode()
    canonical = "v1\n%s\n%s\n%s\n%s\n%s" % (
        ts, method, target, idem or "", hashlib.sha256(body).hexdigest())
    return "v1=" + hmac.new(secret, canonical.encode(),
                            hashlib.sha256).hexdigest()


def messages_target(mail_from, rcpts):
    t = "/v1/messages?mail_from=" + qenc(mail_from)
    for r in rcpts:
        t += "&rcpt=" + qenc(r)
    return t


def _tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no %s)" % path


class Stack:
    """One run directory with its Dovecot, API and relay processes."""

    def __init__(self, name, env=None, init=True):
        self.name = name
        safe = "".join(c if c.isalnum() else "-" for c in name)[:24]
        self.dir = tempfile.mkdtemp(prefix="em-%s-" % safe, dir="/tmp")
        os.chmod(self.dir, 0o755)
        _live.append(self)
        self.procs = {}             # name -> Popen
        self.dovecot = None         # Popen of the Dovecot master
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        self.env = dict(os.environ)
        self.env.update({PORT_ENV[k]: str(v) for k, v in self.ports.items()})
        self.env.update(env or {})
        self.conf_path = os.path.join(self.dir, "edgemail.conf")
        self.ca = os.path.join(self.dir, "tls", "ca.pem")
        self.lmtp_socket = os.path.join(self.dir, "dovecot", "lmtp")
        self.auth_socket = os.path.join(self.dir, "dovecot", "auth-client")
        self.users_file = os.path.join(self.dir, "directory", "users")
        self.dovecot_log = os.path.join(self.dir, "dovecot", "dovecot.log")
        self.demo_user = "demo@example.test"
        self.demo_password = None
        self.key_id = self.secret = None
        self.last_body = None
        self._sent_sigs = set()
        if init:
            try:
                self.init()
            except BaseException:
                self.stop()
                raise

    # -- set-up ---------------------------------------------------------

    def init(self):
        """Run deploy/stack.sh init into the run dir (idempotent)."""
        r = subprocess.run([STACK_SH, "init", self.dir], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("stack.sh init failed (%d):\n%s"
                               % (r.returncode, r.stdout.decode()))
        self.load()
        return r.stdout.decode()

    def load(self):
        """Read the demo password and the signing key of the run dir."""
        with open(os.path.join(self.dir, "demo.password")) as f:
            self.demo_password = f.read().strip()
        with open(os.path.join(self.dir, "keys", "hmac.keys")) as f:
            for line in f:
                parts = line.split()
                if parts and not parts[0].startswith("#"):
                    self.key_id, self.secret = parts[0], parts[1]
                    break

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    def _write_pid(self, name, pid):
        os.makedirs(self.path("pids"), exist_ok=True)
        with open(self.path("pids", name + ".pid"), "w") as f:
            f.write("%d\n" % pid)

    # -- Dovecot --------------------------------------------------------

    def start_dovecot(self, timeout=15):
        """Start Dovecot in the foreground (our child) and wait for it."""
        if self.dovecot is not None and self.dovecot.poll() is None:
            raise RuntimeError("Dovecot already running")
        for stale in (self.path("dovecot", "base", "master.pid"),
                      self.lmtp_socket):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        conf = self.path("dovecot", "dovecot.conf")
        self.dovecot = subprocess.Popen(
            ["dovecot", "-F", "-c", conf], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self._write_pid("dovecot", self.dovecot.pid)

        def up():
            if self.dovecot.poll() is not None:
                raise RuntimeError("dovecot exited %d:\n%s" % (
                    self.dovecot.returncode, _tail(self.dovecot_log)))
            return (os.path.exists(self.lmtp_socket) and
                    all(port_listening(self.ports[k]) for k in
                        ("imap", "imaps", "pop3", "pop3s", "sieve")))
        wait_for(up, timeout, what="Dovecot")
        return self.dovecot.pid

    def stop_dovecot(self, timeout=10):
        """Stop the Dovecot master and every process below it, by PID."""
        p, self.dovecot = self.dovecot, None
        if p is None:
            return
        kids = descendants(p.pid)
        if p.poll() is None:
            # The master and its children at once (their process group is
            # the master's PID): signalled alone, the master waits a
            # second or more for its children, up to 5 s when one is
            # still starting and reading its configuration.
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if not wait_gone(kids, timeout):
            for k in kids:
                if pid_alive(k):
                    try:
                        os.kill(k, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            wait_gone(kids, 5)
        try:
            os.unlink(self.path("pids", "dovecot.pid"))
        except FileNotFoundError:
            pass

    def dovecot_running(self):
        return self.dovecot is not None and self.dovecot.poll() is None

    # -- directory ------------------------------------------------------

    def hash_password(self, password, scheme="SHA512-CRYPT"):
        r = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, check=True)
        return r.stdout.decode().strip()

    def add_user(self, addr, password, quota=None, extra=""):
        """Add a mailbox to directory/users (Dovecot re-reads the file).
        quota: e.g. "1M" for a small mailbox; extra: more userdb fields."""
        fields = []
        if quota:
            fields.append("userdb_quota_rule=*:storage=%s" % quota)
        if extra:
            fields.append(extra)
        line = "%s:%s::::::%s\n" % (addr.lower(), self.hash_password(password),
                                    " ".join(fields))
        with open(self.users_file, "a") as f:
            f.write(line)
        self._users_changed()

    def _users_changed(self):
        # Dovecot checks the passwd-file for changes at most once per
        # second (on its clock's whole seconds): let that second pass.
        if self.dovecot_running():
            time.sleep(1.02 - (time.time() % 1.0))

    def remove_user(self, addr):
        with open(self.users_file) as f:
            lines = f.readlines()
        key = addr.lower() + ":"
        with open(self.users_file, "w") as f:
            f.writelines(ln for ln in lines if not ln.startswith(key))
        self._users_changed()

    # -- programs -------------------------------------------------------

    def start_prog(self, name, prog, extra_conf=None, args=None, env=None):
        """Start bin/PROG -c edgemail.conf [-o k=v ...]; log in RUN/log/."""
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError("%s already running" % name)
        cmd = [prog if os.path.isabs(prog) else os.path.join(BIN, prog),
               "-c", self.conf_path]
        for k, v in (extra_conf or {}).items():
            cmd += ["-o", "%s=%s" % (k, v)]
        cmd += list(args or [])
        os.makedirs(self.path("log"), exist_ok=True)
        log = open(self.path("log", name + ".log"), "ab")
        e = dict(self.env)
        e.update(env or {})
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=e)
        finally:
            log.close()
        self.procs[name] = p
        self._write_pid(name, p.pid)
        return p

    def stop_prog(self, name, timeout=10, sig=signal.SIGTERM):
        """Stop one program by PID; returns its exit status (None if it
        was not running)."""
        p = self.procs.pop(name, None)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        try:
            os.unlink(self.path("pids", name + ".pid"))
        except FileNotFoundError:
            pass
        return p.returncode

    def log(self, name):
        """The text of RUN/log/NAME.log ("dovecot" for Dovecot's log)."""
        path = (self.dovecot_log if name == "dovecot"
                else self.path("log", name + ".log"))
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start_api(self, extra_conf=None, args=None, env=None, timeout=15):
        """Start edgemail-api and wait until GET /healthz answers 200."""
        p = self.start_prog("api", "edgemail-api", extra_conf, args, env)

        def healthy():
            if p.poll() is not None:
                raise RuntimeError("edgemail-api exited %d:\n%s" % (
                    p.returncode, _tail(self.path("log", "api.log"))))
            try:
                st, _, _ = self.get("/healthz", timeout=2)
                return st == 200
            except (OSError, http.client.HTTPException):
                return False
        try:
            wait_for(healthy, timeout, what="edgemail-api /healthz")
        except BaseException:
            self.stop_prog("api")
            raise
        return p

    def stop_api(self, timeout=10):
        return self.stop_prog("api", timeout)

    def start_submit(self, extra_conf=None, args=None, env=None, timeout=15):
        """Start edgemail-submit and wait for both of its ports."""
        p = self.start_prog("submit", "edgemail-submit", extra_conf, args,
                            env)

        def up():
            if p.poll() is not None:
                raise RuntimeError("edgemail-submit exited %d:\n%s" % (
                    p.returncode, _tail(self.path("log", "submit.log"))))
            return (port_open(self.ports["submit"]) and
                    port_open(self.ports["submits"]))
        try:
            wait_for(up, timeout, what="edgemail-submit")
        except BaseException:
            self.stop_prog("submit")
            raise
        return p

    def stop_submit(self, timeout=10):
        return self.stop_prog("submit", timeout)

    def stop(self):
        """Stop everything started here (programs first), remove the dir
        unless KEEP=1.  Safe to call more than once."""
        try:
            for name in list(self.procs):
                try:
                    self.stop_prog(name)
                except Exception as e:  # noqa: BLE001
                    print("stack: stopping %s: %s" % (name, e),
                          file=sys.stderr)
            self.stop_dovecot()
        finally:
            if self in _live:
                _live.remove(self)
            if os.environ.get("KEEP") == "1":
                if os.path.isdir(self.dir):
                    print("stack: kept %s" % self.dir, file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- HTTP -----------------------------------------------------------

    def _conn(self, timeout):
        return http.client.HTTPSConnection(
            "127.0.0.1", self.ports["api"], context=self.ssl_context(),
            timeout=timeout)

    def get(self, target, headers=None, timeout=10):
        """A plain GET; returns (status, body bytes, headers)."""
        c = self._conn(timeout)
        try:
            c.request("GET", target, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, body, {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()

    def sign_headers(self, body, target, method="POST", key_id=None,
                     secret=None, idem=None, ts=None):
        """The three Edgemail-* headers for a request.

        Without an explicit ts, two identical requests in the same second
        would carry the same signature, which the API refuses as a replay;
        so the timestamp is moved a second on (well inside the accepted
        skew) until the signature is one this stack has not sent yet, as a
        real client's retry would be.  Pass ts to send a replay on purpose.
        """
        secret = self.secret if secret is None else secret
        if ts is None:
            t = int(time.time())
            while True:
                sig = sign(secret, str(t), method, target, idem, body)
                if sig not in self._sent_sigs:
                    break
                t += 1
            ts = str(t)
        else:
            ts = str(ts)
            sig = sign(secret, ts, method, target, idem, body)
        self._sent_sigs.add(sig)
        return {
            "Edgemail-Key-Id": self.key_id if key_id is None else key_id,
            "Edgemail-Timestamp": ts,
            "Edgemail-Signature": sig,
        }

    def post(self, body, rcpts, mail_from="a@sender.test", key_id=None,
             secret=None, idem=None, headers=None, ts=None, target=None,
             content_type="message/rfc822", raw_override=None,
             method="POST", sign_body=None, chunked=False, timeout=60):
        """POST /v1/messages, signed as DESIGN section 4 says.

        target: the request target (default: built from mail_from and
        rcpts); sign_body: sign these bytes instead of body; headers: extra
        request headers (signed with the rest); raw_override: headers
        applied last, after signing (a value of None removes the header),
        e.g. {"Edgemail-Signature": "v1=00"}; chunked: send the body with
        chunked transfer coding instead of Content-Length.
        Returns (status, parsed JSON or None, response headers with
        lower-case names); self.last_body holds the raw response body."""
        if isinstance(body, str):
            body = body.encode()
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        if target is None:
            target = messages_target(mail_from, rcpts)
        h = {"Host": "127.0.0.1:%d" % self.ports["api"]}
        if content_type is not None:
            h["Content-Type"] = content_type
        if idem is not None:
            h["Idempotency-Key"] = idem
        h.update(self.sign_headers(body if sign_body is None else sign_body,
                                   target, method, key_id, secret, idem, ts))
        h.update(headers or {})
        for k, v in (raw_override or {}).items():
            for old in [x for x in h if x.lower() == k.lower()]:
                del h[old]
            if v is not None:
                h[k] = v
        c = self._conn(timeout)
        try:
            c.putrequest(method, target, skip_host=True,
                         skip_accept_encoding=True)
            for k, v in h.items():
                c.putheader(k, v)
            if chunked:
                c.putheader("Transfer-Encoding", "chunked")
                c.endheaders()
                step = 65536
                for i in range(0, len(body), step):
                    part = body[i:i + step]
                    c.send(b"%x\r\n%s\r\n" % (len(part), part))
                c.send(b"0\r\n\r\n")
            else:
                if not any(k.lower() == "content-length" for k in h):
                    c.putheader("Content-Length", str(len(body)))
                c.endheaders()
                try:
                    c.send(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass    # refused early (413...): read the reply
            r = c.getresponse()
            data = r.read()
            self.last_body = data
            try:
                js = json.loads(data) if data else None
            except ValueError:
                js = None
            return r.status, js, {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()

    def raw_request(self, data, timeout=10, delay=None, tls=True):
        """Send raw bytes (or a list of byte chunks, `delay` seconds apart)
        to the API over TLS; return the raw response bytes (everything
        read until the reply is complete, the server closes, or timeout)."""
        chunks = [data] if isinstance(data, (bytes, bytearray)) else data
        s = socket.create_connection(("127.0.0.1", self.ports["api"]),
                                     timeout=timeout)
        if tls:
            s = self.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")
        buf = b""
        end = time.monotonic() + timeout
        try:
            try:
                for i, ch in enumerate(chunks):
                    if i and delay:
                        time.sleep(delay)
                    s.sendall(ch)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass
            while time.monotonic() < end:
                s.settimeout(max(0.05, end - time.monotonic()))
                try:
                    got = s.recv(65536)
                except (socket.timeout, ConnectionResetError, ssl.SSLError):
                    break
                if not got:
                    break
                buf += got
                if _response_complete(buf):
                    break
        finally:
            s.close()
        return buf

    # -- mailboxes ------------------------------------------------------

    def imap(self, user, password, timeout=15):
        """A logged-in IMAP4_SSL connection (caller logs out)."""
        m = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"],
                              ssl_context=self.ssl_context(), timeout=timeout)
        try:
            m.login(user, password)
        except BaseException:
            try:
                m.shutdown()
            except OSError:
                pass
            raise
        return m

    def imap_messages(self, user, password, folder="INBOX", timeout=15):
        """Every message of a folder, raw bytes, in UID order."""
        m = self.imap(user, password, timeout)
        try:
            typ, _ = m.select('"%s"' % folder, readonly=True)
            if typ != "OK":
                raise RuntimeError("IMAP SELECT %s failed" % folder)
            typ, data = m.uid("SEARCH", None, "ALL")
            uids = data[0].split() if data and data[0] else []
            out = []
            for uid in uids:
                typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
                for part in data:
                    if isinstance(part, tuple):
                        out.append(part[1])
                        break
            return out
        finally:
            try:
                m.logout()
            except (OSError, imaplib.IMAP4.error):
                pass

    def imap_folders(self, user, password):
        """Folder names with their flags: {name: "flags"}."""
        m = self.imap(user, password)
        try:
            typ, data = m.list()
            out = {}
            for line in data:
                line = line.decode()
                flags = line[line.index("(") + 1:line.index(")")]
                name = line.rsplit(" ", 1)[1].strip('"')
                out[name] = flags
            return out
        finally:
            m.logout()

    def pop3_messages(self, user, password, timeout=15):
        """Every INBOX message over POP3S, raw bytes."""
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"],
                            context=self.ssl_context(), timeout=timeout)
        try:
            p.user(user)
            p.pass_(password)
            n = p.stat()[0]
            out = []
            for i in range(1, n + 1):
                _, lines, _ = p.retr(i)
                out.append(b"\r\n".join(lines) + b"\r\n")
            return out
        finally:
            try:
                p.quit()
            except (OSError, poplib.error_proto):
                pass

    def maildir(self, user, folder="INBOX"):
        local, domain = user.lower().rsplit("@", 1)
        d = self.path("mail", domain, local, "Maildir")
        return d if folder == "INBOX" else os.path.join(d, "." + folder)

    def maildir_count(self, user, folder="INBOX"):
        """Messages in a folder, counted on disk (new/ + cur/)."""
        d = self.maildir(user, folder)
        n = 0
        for sub in ("new", "cur"):
            try:
                n += sum(1 for f in os.listdir(os.path.join(d, sub))
                         if not f.startswith("."))
            except FileNotFoundError:
                pass
        return n

    def lmtp_deliver(self, msg, rcpts, mail_from="a@sender.test",
                     timeout=30):
        """Deliver straight to Dovecot over its LMTP socket.  Returns the
        refused recipients ({} when all were accepted)."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        lm = smtplib.LMTP(self.lmtp_socket, timeout=timeout)
        try:
            return lm.sendmail(mail_from, rcpts, msg)
        finally:
            try:
                lm.quit()
            except (OSError, smtplib.SMTPException):
                pass


def _response_complete(buf):
    """Whether buf holds one whole HTTP response."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return False
    head = buf[:i].decode("latin-1").lower().split("\r\n")
    body = buf[i + 4:]
    status = head[0].split()
    if len(status) > 1 and status[1] in ("204", "304"):
        return True
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip() == "content-length":
            try:
                return len(body) >= int(v.strip())
            except ValueError:
                return False
        if k.strip() == "transfer-encoding" and "chunked" in v:
            return body.endswith(b"0\r\n\r\n")
    return False
