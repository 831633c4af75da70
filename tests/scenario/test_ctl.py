"""test_ctl.py - bin/edgemailctl as an administrator uses it.

Proves: --help on every command, exit codes (0 ok, 1 error, 2 usage),
--json output, -c/-o, config check and config --defaults, the generated
Dovecot configuration and DNS records against golden files
(tests/golden/; UPDATE_GOLDEN=1 rewrites them), DKIM keys (RSA 2048 and
Ed25519) and their records, dns check against a loopback DNS server
(missing and wrong records found), user del keeping the mail and user
purge removing it, archive expire by the Maildir files' dates, and
report / report --mail (delivered by LMTP to the admin through the
admin alias).
"""
import base64
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
from stack import BIN, TOP, Stack  # noqa: E402

import dns.message  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402

CTL = os.path.join(BIN, "edgemailctl")
GOLDEN = os.path.join(TOP, "tests", "golden")


def run(args, conf=None, stdin=None, opts=()):
    """edgemailctl [-c conf] [-o k=v]... args; (rc, stdout, stderr)."""
    cmd = [CTL]
    if conf:
        cmd += ["-c", conf]
    for o in opts:
        cmd += ["-o", o]
    r = subprocess.run(cmd + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def golden(name, got):
    path = os.path.join(GOLDEN, name)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        with open(path, "w") as f:
            f.write(got)
        return
    with open(path) as f:
        want = f.read()
    if got != want:
        import difflib
        diff = "".join(list(difflib.unified_diff(
            want.splitlines(True), got.splitlines(True), "golden", "got"))[:60])
        raise AssertionError("%s differs from the golden file:\n%s"
                             % (name, diff))


# -- a DNS server answering any type from a zone ---------------------------

class ZoneServer:
    """UDP DNS on 127.0.0.1: {(name, TYPE): [zone-file values]}."""

    def __init__(self, records):
        self.records = records
        srv = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                try:
                    q = dns.message.from_wire(data)
                except Exception:  # noqa: BLE001 - junk: no answer
                    return
                r = dns.message.make_response(q)
                qn = q.question[0]
                name = qn.name.to_text().rstrip(".").lower()
                typ = dns.rdatatype.to_text(qn.rdtype)
                vals = srv.records.get((name, typ))
                if vals:
                    if typ == "TXT":
                        vals = [" ".join('"%s"' % v[i:i + 255] for i in
                                         range(0, len(v), 255))
                                for v in vals]
                    r.answer.append(dns.rrset.from_text(
                        qn.name, 300, "IN", typ, *vals))
                elif not any(k[0] == name for k in srv.records):
                    r.set_rcode(dns.rcode.NXDOMAIN)
                sock.sendto(r.to_wire(), self.client_address)

        self.server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# -- fixture -----------------------------------------------------------------

class Ctx:
    pass


def setup():
    c = Ctx()
    c.st = Stack("ctl")
    c.conf = c.st.conf_path
    c.st.start_dovecot()
    return c


def teardown(c):
    c.st.stop()


def ctl(c, *args, stdin=None, opts=()):
    return run(args, c.conf, stdin, opts)


# -- help, exit codes, options -----------------------------------------------

@test
def help_on_every_command(c):
    rc, out, _ = run(["--help"])
    eq(rc, 0, "edgemailctl --help")
    cmds = [l.strip() for l in out.splitlines() if l.startswith("  ")]
    check(len(cmds) >= 25, "commands listed: %r" % cmds)
    for line in cmds:
        words = []
        for w in line.split():
            if w.isupper() or w.startswith("[") or w.startswith("-"):
                break
            words.append(w)
        rc, out, err = run(words + ["--help"])
        eq(rc, 0, "%s --help (%s)" % (" ".join(words), err))
        check(out.startswith("usage: edgemailctl"), "%s --help: %r"
              % (" ".join(words), out[:80]))
    for group in ("domain", "user", "alias", "group", "archive", "dkim"):
        rc, out, _ = run([group, "--help"])
        eq(rc, 0, "%s --help" % group)
        check("edgemailctl %s add" % group in out or group in out,
              "%s help lists its commands" % group)


@test
def exit_codes(c):
    eq(run(["no-such-command"])[0], 2, "unknown command")
    eq(run(["user"])[0], 2, "group without a command")
    eq(ctl(c, "user", "add")[0], 2, "missing argument")
    eq(ctl(c, "user", "add", "a@example.test", "--bogus")[0], 2,
       "unknown option")
    rc, _, err = ctl(c, "user", "del", "ghost@example.test")
    eq(rc, 1, "deleting an unknown user")
    check("no mailbox ghost@example.test" in err, "message: %r" % err)
    rc, _, err = ctl(c, "user", "add", "x@unknown-domain.test")
    eq(rc, 1, "user in an unknown domain")
    check("domain add" in err, "the message says what to do: %r" % err)
    eq(ctl(c, "domain", "list")[0], 0, "domain list")


@test
def json_output(c):
    rc, out, _ = ctl(c, "--json", "domain", "list")
    eq(rc, 0, "domain list --json")
    doms = json.loads(out)
    eq([d["domain"] for d in doms], ["example.test"], "domains")
    eq(doms[0]["admin"], "demo@example.test", "admin")
    rc, out, _ = ctl(c, "user", "list", "--json")
    users = json.loads(out)
    check({"user": "demo@example.test", "state": "active", "quota": "4G"}
          in users, "demo in %r" % users)


@test
def config_check_and_defaults(c):
    rc, out, err = ctl(c, "config", "check")
    eq(rc, 0, "config check: %s" % err)
    check("state_dir = %s\n" % c.st.dir in out, "effective state_dir")
    check("max_group_targets = 32\t# default" in out, "defaults marked")
    check(out.rstrip().endswith("# configuration ok"), "ok line")
    rc, out, _ = ctl(c, "config", "check", opts=["max_message_size=lots"])
    eq(rc, 1, "a bad size is an error")
    rc, out, _ = ctl(c, "--json", "config", "check")
    j = json.loads(out)
    eq(j["values"]["archive_retention_days"],
       {"value": "365", "set": False}, "json value")
    bad = os.path.join(c.st.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("no_such_key = 1\n")
    rc, _, err = run(["config", "check"], bad)
    eq(rc, 1, "unknown key refused")
    check("no_such_key" in err, "names the key: %r" % err)
    rc, out, _ = run(["config", "--defaults"])
    eq(rc, 0, "config --defaults")
    check(re.search(r"^max_group_targets +32 ", out, re.M), "table row")
    check(re.search(r"^password_scheme +BLF-CRYPT ", out, re.M),
          "password scheme default")
    rc, out2, _ = run(["config", "defaults"])
    eq(out2, out, "config defaults = config --defaults")


# -- golden files --------------------------------------------------------------

def golden_conf(dirpath):
    conf = os.path.join(dirpath, "edgemail.conf")
    with open(conf, "w") as f:
        f.write("state_dir = /var/lib/edgemail\n"
                "hostname = mx.example.com\n"
                "postmaster_address = postmaster@example.com\n"
                "mail_owner = 65534:65534\n"
                "dkim_keys_dir = %s\n"
                "imap_host = imap.example.com\n"
                "submission_host = smtp.example.com\n"
                "autoconfig_host = mail-api.example.com\n"
                "submit_listen = 0.0.0.0:587\n"
                "submit_tls_listen = 0.0.0.0:465\n"
                % os.path.join(GOLDEN, "dkim"))
    return conf


@test
def dovecot_config_matches_golden(c):
    d = tempfile.mkdtemp(prefix="em-golden-")
    try:
        conf = golden_conf(d)
        rc, out, err = run(["dovecot-config"], conf)
        eq(rc, 0, "dovecot-config: %s" % err)
        out = out.replace(os.path.realpath(CTL), "@EDGEMAILCTL@")
        out = out.replace(os.path.realpath(conf), "@CONF@")
        golden("dovecot.conf", out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def dev_stack_dovecot_config_is_the_generators(c):
    rc, out, _ = ctl(c, "dovecot-config")
    eq(rc, 0, "dovecot-config")
    with open(c.st.path("dovecot", "dovecot.conf")) as f:
        eq(f.read(), out, "stack.sh wrote the generator's output")
    check("auth_failure_delay = 0" in out, "no login penalty in the stack")
    check("sieve_before = %s/sieve/junk.sieve" % c.st.dir in out, "sieve")
    check("quota_max_mail_size = 26M" in out, "max size + 1M")
    # --output also installs the global script it names, compiled and
    # readable by the delivery process.
    with open(os.path.join(TOP, "deploy", "sieve", "junk.sieve")) as f:
        src = f.read()
    with open(c.st.path("sieve", "junk.sieve")) as f:
        eq(f.read(), src, "the installed script is deploy/sieve/junk.sieve")
    svbin = c.st.path("sieve", "junk.svbin")
    check(os.path.getsize(svbin) > 0, "compiled")
    eq(os.stat(svbin).st_mode & 0o777, 0o644, "readable by the mail user")


@test
def dns_records_match_golden(c):
    d = tempfile.mkdtemp(prefix="em-golden-")
    try:
        conf = golden_conf(d)
        rc, out, err = run(["dns", "example.com"], conf)
        eq(rc, 0, "dns: %s" % err)
        golden("dns-example.com.zone", out)
        rc, out, _ = run(["--json", "dns", "example.com"], conf)
        recs = json.loads(out)
        types = sorted(set(r["type"] for r in recs))
        eq(types, ["CNAME", "MX", "SRV", "TXT"], "record types")
        check({"name": "_dmarc.example.com", "type": "TXT",
               "value": "v=DMARC1; p=quarantine; "
               "rua=mailto:dmarc-report@example.com; adkim=r; aspf=r"}
              in recs, "DMARC with rua to dmarc-report")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- DKIM -------------------------------------------------------------------------

@test
def dkim_keygen_rsa_and_ed25519(c):
    key = c.st.path("keys", "dkim", "example.test", "edgemail.key")
    if os.path.exists(key):     # the dev stack's own key (stack.sh init)
        os.unlink(key)
    rc, out, err = ctl(c, "dkim", "keygen", "example.test")
    eq(rc, 0, "rsa keygen: %s" % err)
    eq(os.stat(key).st_mode & 0o777, 0o600, "key file mode")
    m = re.search(r'"v=DKIM1; k=rsa; p=([^"]+)" "([^"]+)"', out)
    check(m, "split TXT record printed: %r" % out)
    der = base64.b64decode(m.group(1) + m.group(2))
    r = subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER",
                        "-noout", "-text"], input=der,
                       stdout=subprocess.PIPE, timeout=10)
    check(b"2048 bit" in r.stdout, "a 2048-bit RSA key: %r" % r.stdout[:60])
    eq(ctl(c, "dkim", "keygen", "example.test")[0], 1,
       "an existing key is not replaced")
    rc, _, err = ctl(c, "dkim", "keygen", "example.test", "--force")
    eq(rc, 1, "not the key the signer uses, even with --force")
    check("--selector NEW" in err, "says how to rotate: %s" % err)
    eq(ctl(c, "dkim", "keygen", "Example.TEST", "--selector", "next")[0], 0,
       "a new selector; the domain lower-cased")
    check(os.path.exists(os.path.join(os.path.dirname(key), "next.key")),
          "in the lower-case domain's directory")
    eq(ctl(c, "dkim", "keygen", "example.test", "--selector", "next",
           "--force")[0], 0, "--force replaces a key not in use")
    rc, out, _ = ctl(c, "--json", "dkim", "keygen", "example.test",
                     "--type", "ed25519", "--selector", "ed1")
    eq(rc, 0, "ed25519 keygen")
    j = json.loads(out)
    p = j["record"].split("p=")[1]
    eq(len(base64.b64decode(p)), 32, "raw 32-byte Ed25519 key")
    rc, out, _ = ctl(c, "--json", "dkim", "show", "example.test")
    shown = {e["selector"]: e["record"] for e in json.loads(out)}
    eq(shown["ed1"], j["record"], "show gives the keygen record")
    check(shown["edgemail"].startswith("v=DKIM1; k=rsa; p=MIIB"), "rsa")
    eq(ctl(c, "dkim", "show", "nokeys.test")[0], 1, "no key: error")


# -- dns check -----------------------------------------------------------------------

@test
def dns_check_finds_missing_and_wrong_records(c):
    rc, out, _ = ctl(c, "--json", "dns", "example.test")
    recs = json.loads(out)
    zone = {}
    for r in recs:
        zone.setdefault((r["name"], r["type"]), []).append(
            r["value"] + ("." if r["type"] in ("MX", "SRV", "CNAME")
                          else ""))
    srv = ZoneServer(zone)
    try:
        o = ["dns_server=127.0.0.1:%d" % srv.port]
        rc, out, err = ctl(c, "dns", "check", "example.test", opts=o)
        eq(rc, 0, "complete zone: %s%s" % (out, err))
        check("all records present" in out, out)
        del zone[("_dmarc.example.test", "TXT")]
        zone[("example.test", "MX")] = ["10 mx.elsewhere.test."]
        zone[("example.test", "TXT")] = ["v=spf1 -all"]
        rc, out, _ = ctl(c, "--json", "dns", "check", "example.test", opts=o)
        eq(rc, 1, "problems give exit 1")
        j = json.loads(out)
        st = {}
        for r in j["records"]:
            st.setdefault((r["name"], r["type"]), set()).add(r["status"])
        eq(st[("_dmarc.example.test", "TXT")], {"missing"}, "DMARC")
        eq(st[("example.test", "MX")], {"missing"}, "Cloudflare MX")
        eq(st[("example.test", "TXT")], {"wrong"}, "SPF")
        eq(st[("_imaps._tcp.example.test", "SRV")], {"ok"}, "SRV")
        eq(j["problems"], 5, "3 MX + SPF + DMARC")
    finally:
        srv.stop()
    rc, _, err = ctl(c, "dns", "check", "example.test")
    eq(rc, 1, "dns_server = none")
    check("off" in err or "cannot" in err, err)


# -- mailboxes on disk -------------------------------------------------------------------

@test
def user_del_keeps_mail_until_purge(c):
    rc, out, _ = ctl(c, "user", "add", "leaver@example.test")
    eq(rc, 0, "add")
    eq(c.st.lmtp_deliver(b"Subject: x\r\n\r\nbody\r\n",
                         ["leaver@example.test"]), {}, "delivery")
    home = c.st.path("mail", "example.test", "leaver")
    eq(ctl(c, "user", "purge", "leaver@example.test")[0], 1,
       "purge refused while the mailbox exists")
    rc, out, _ = ctl(c, "user", "del", "leaver@example.test")
    eq(rc, 0, "del")
    check("kept" in out, out)
    eq(c.st.maildir_count("leaver@example.test"), 1, "mail kept")
    rc, out, err = ctl(c, "user", "purge", "leaver@example.test")
    eq(rc, 0, "purge: %s" % err)
    check(not os.path.exists(home), "Maildir removed")
    eq(ctl(c, "user", "purge", "leaver@example.test")[0], 1,
       "nothing left to purge")


@test
def addresses_the_files_cannot_hold_are_refused(c):
    # Each of these once made a file that no program could read again.
    for args in (("alias", "add", "info@example.test", '"john smith"@far.test'),
                 ("alias", "add", '"x y"@example.test', "demo@example.test"),
                 ("user", "add", '"a:b"@example.test'),
                 ("user", "add", "#x@example.test"),
                 ("user", "add", "john+news@example.test")):
        rc, _, err = ctl(c, *args)
        eq(rc, 1, "%r refused (%s)" % (args, err))
    rc, out, err = ctl(c, "alias", "list")
    eq(rc, 0, "the directory still reads: %s" % err)


@test
def a_mailbox_may_keep_a_copy_and_forward(c):
    eq(ctl(c, "user", "add", "keeper@example.test")[0], 0, "user add")
    rc, _, err = ctl(c, "alias", "add", "keeper@example.test",
                     "keeper@example.test", "keeper@far.test")
    eq(rc, 0, "self-alias: %s" % err)
    rc, out, err = ctl(c, "resolve", "keeper@example.test")
    eq(rc, 0, "resolve: %s" % err)
    check("keeper@far.test" in out and "keeper@example.test" in out, out)
    ctl(c, "alias", "del", "keeper@example.test")
    ctl(c, "user", "del", "keeper@example.test")


@test
def domain_admin_refuses_a_loop_and_an_empty_name(c):
    rc, _, err = ctl(c, "domain", "admin", "example.test",
                     "postmaster@example.test")
    eq(rc, 1, "an admin that is an admin alias: %s" % err)
    check("loop" in err, err)
    rc, _, err = ctl(c, "domain", "admin", "example.test",
                     "demo@example.test", "--aliases", "postmaster,,abuse")
    eq(rc, 1, "an empty name would be the catch-all: %s" % err)
    rc, out, _ = ctl(c, "alias", "list")
    check(not any(l.startswith("@") for l in out.splitlines()),
          "no catch-all made: %s" % out)
    rc, out, err = ctl(c, "resolve", "postmaster@example.test")
    check("loop" not in out + err, "postmaster still resolves: %s" % out)


@test
def backup_and_restore(c):
    eq(ctl(c, "user", "add", "saved@example.test")[0], 0, "user add")
    time.sleep(1.1)     # Dovecot's passwd-file: a newer second
    eq(c.st.lmtp_deliver(b"Subject: keep me\r\n\r\nbody\r\n",
                         ["saved@example.test"]), {}, "delivery")
    full, nomail = c.st.path("full.tar.gz"), c.st.path("nomail.tar.gz")
    rc, out, err = ctl(c, "backup", "create", full)
    eq(rc, 0, "backup create: %s" % err)
    eq(os.stat(full).st_mode & 0o777, 0o600, "the backup holds keys: 0600")
    rc, _, err = ctl(c, "backup", "create", nomail, "--no-mail")
    eq(rc, 0, "backup create --no-mail: %s" % err)
    names = subprocess.run(["tar", "-tzf", nomail], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    check(any(n.endswith("directory/users") for n in names), "directory")
    check(any("hmac.keys" in n for n in names), "keys")
    check(not any("/mail/" in n for n in names), "no mail with --no-mail")
    # lose the mailbox and its mail, then get both back
    eq(ctl(c, "user", "del", "saved@example.test")[0], 0, "user del")
    eq(ctl(c, "user", "purge", "saved@example.test")[0], 0, "purge")
    eq(ctl(c, "backup", "restore", full)[0], 1,
       "not over a directory with mailboxes without --force")
    rc, _, err = ctl(c, "backup", "restore", full, "--force")
    eq(rc, 0, "restore: %s" % err)
    rc, out, _ = ctl(c, "user", "list")
    check("saved@example.test" in out, "the mailbox is back: %s" % out)
    eq(c.st.maildir_count("saved@example.test"), 1, "its mail is back")
    ctl(c, "user", "del", "saved@example.test")


@test
def archive_expire_by_file_dates(c):
    rc, out, err = ctl(c, "archive", "set", "example.test",
                       "vault@example.test", "--create")
    eq(rc, 0, "archive set: %s" % err)
    check("password: " in out, "created mailbox's password printed")
    md = c.st.maildir("vault@example.test")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
        os.makedirs(os.path.join(md, ".Sent", sub), exist_ok=True)
    now = time.time()
    files = {"old1": (os.path.join(md, "cur", "1.old1:2,S"), 400),
             "old2": (os.path.join(md, ".Sent", "new", "2.old2"), 366),
             "new1": (os.path.join(md, "new", "3.new1"), 10),
             "new2": (os.path.join(md, "cur", "4.new2:2,"), 364)}
    for name, (p, days) in files.items():
        with open(p, "w") as f:
            f.write("Subject: %s\r\n\r\n" % name)
        t = now - days * 86400
        os.utime(p, (t, t))
    rc, out, _ = ctl(c, "--json", "archive", "expire", "--dry-run")
    eq(json.loads(out)[0]["deleted"], 2, "dry run counts")
    check(all(os.path.exists(p) for p, _ in files.values()),
          "dry run deletes nothing")
    rc, out, err = ctl(c, "archive", "expire")
    eq(rc, 0, "expire: %s" % err)
    check("2 message(s) older than 365 days deleted, 2 kept" in out, out)
    for name, (p, days) in files.items():
        eq(os.path.exists(p), days < 365, "%s (%d days)" % (name, days))
    eq(ctl(c, "archive", "set", "example.test", "off")[0], 0, "off")


@test
def report_and_report_mail(c):
    rc, out, err = ctl(c, "report", "--no-dns")
    eq(rc, 0, "report: %s" % err)
    check("Domain example.test" in out, out)
    check("demo@example.test" in out, "mailboxes listed")
    check("TLS certificate" in out and "expires" in out, "certificate")
    check("Queues:" in out, "queues")
    rc, out, _ = ctl(c, "--json", "report", "--no-dns")
    j = json.loads(out)
    check(j["certificate"]["days_left"] > 300, "days left %r"
          % j["certificate"])
    before = c.st.maildir_count("demo@example.test")
    rc, out, err = ctl(c, "report", "--mail", "postmaster@example.test",
                       "--no-dns")
    eq(rc, 0, "report --mail: %s" % err)
    eq(c.st.maildir_count("demo@example.test"), before + 1,
       "report delivered to the admin through postmaster@")


@test
def quota_warning_hook_delivers_a_warning(c):
    before = c.st.maildir_count("demo@example.test")
    rc, _, err = ctl(c, "quota-warning", "90", "demo@example.test")
    eq(rc, 0, "quota-warning: %s" % err)
    got = c.st.imap_messages("demo@example.test", c.st.demo_password)
    eq(len(got), before + 1, "one more message")
    check(b"Subject: Your mailbox is 90% full" in got[-1], got[-1][:300])


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
