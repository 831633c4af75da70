"""test_install.py - `make install` and the systemd units it installs.

The units are checked with `systemd-analyze verify` (it needs no running
systemd): every ExecStart names an installed program, every setting
parses.  A unit with a fault is refused by the same check, so that a
clean result means something.
"""
import grp
import os
import re
import shutil
import smtplib
import subprocess
import tempfile

import harness
import stack
from harness import check, eq, test

TOP = os.environ.get("EDGEMAIL_TOP") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PROGS = ["edgemail-api", "edgemail-submit", "edgemail-scand", "edgemailctl",
         "lmtp-send"]
UNITS = ["edgemail.target", "edgemail-dovecot.service",
         "edgemail-scand.service", "edgemail-api.service",
         "edgemail-submit.service", "edgemail-archive-expire.service",
         "edgemail-archive-expire.timer"]


def make(*args):
    run(["make", "--no-print-directory", "-C", TOP] + list(args),
        "make " + " ".join(args))


def verify(unit_dir, names):
    rc, out = attempt(["systemd-analyze", "verify"] +
                      [os.path.join(unit_dir, n) for n in names])
    return rc, out.decode().strip()


def setup():
    return tempfile.mkdtemp(prefix="edgemail-install.")


def teardown(d):
    shutil.rmtree(d, ignore_errors=True)


@test
def install_with_destdir_puts_programs_units_and_docs_in_place(d):
    dest = os.path.join(d, "dest")
    make("install", "DESTDIR=" + dest)
    for p in PROGS:
        f = os.path.join(dest, "usr/local/bin", p)
        check(os.access(f, os.X_OK), "%s installed and executable" % f)
    for u in UNITS:
        f = os.path.join(dest, "etc/systemd/system", u)
        with open(f) as fh:
            text = fh.read()
        eq(re.findall(r"@[A-Z_]+@", text), [], "%s: placeholders left" % u)
        eq(os.stat(f).st_mode & 0o777, 0o644, "%s mode" % u)
    api = open(os.path.join(dest, "etc/systemd/system",
                            "edgemail-api.service")).read()
    check("ExecStart=/usr/local/bin/edgemail-api -c "
          "/var/lib/edgemail/edgemail.conf\n" in api, "ExecStart: %s" % api)
    check("User=edgemail\n" in api and "SupplementaryGroups=dovecot\n" in api,
          "the service user, in Dovecot's group for the LMTP socket")
    check(os.path.isfile(os.path.join(dest, "usr/local/share/doc/edgemail",
                                      "README.md")), "README installed")
    check(not os.path.exists(os.path.join(dest, "usr/local/bin",
                                          "edgemail-bench")),
          "the benchmark is not installed")


@test
def uninstall_removes_what_install_put_there(d):
    dest = os.path.join(d, "dest")
    make("uninstall", "DESTDIR=" + dest)
    left = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs]
    eq(left, [], "files left")


@test
def installed_units_pass_systemd_analyze_verify(d):
    root = os.path.join(d, "root")
    units = os.path.join(root, "units")
    make("install", "PREFIX=" + os.path.join(root, "usr"),
         "UNITDIR=" + units, "STATE_DIR=" + os.path.join(root, "state"))
    rc, out = verify(units, UNITS)
    eq((rc, out), (0, ""), "systemd-analyze verify")


@test
def a_unit_with_a_fault_fails_the_same_check(d):
    units = os.path.join(d, "root", "units")
    bad = os.path.join(units, "edgemail-broken.service")
    with open(os.path.join(units, "edgemail-api.service")) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text.replace("/bin/edgemail-api ", "/bin/edgemail-apix "))
    rc, out = verify(units, ["edgemail-broken.service"])
    check(rc != 0 and "edgemail-apix" in out, "refused: rc=%d %s" % (rc, out))
    with open(bad, "w") as f:
        f.write(text.replace("ProtectSystem=strict", "ProtectSystem=stric"))
    rc, out = verify(units, ["edgemail-broken.service"])
    check("protect system value" in out, "a setting that does not parse is "
          "reported: rc=%d %s" % (rc, out))


def as_service_user(st, name, uid, gid, groups):
    """A wrapper that starts bin/NAME as the units do: another user, its
    group, Dovecot's group besides, no capabilities."""
    path = st.path(name + "-as-user")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --reuid=%d --regid=%d --groups=%s "
                "--inh-caps=-all --bounding-set=-all %s \"$@\"\n" %
                (uid, gid, ",".join(str(g) for g in groups),
                 os.path.join(stack.BIN, name)))
    os.chmod(path, 0o755)
    return path


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


@test
def a_new_users_file_is_group_readable_only_in_a_directory_closed_to_others(d):
    ctl = [os.path.join(stack.BIN, "edgemailctl"), "-o",
           "password_scheme=SHA512-CRYPT", "-o", "password_cost=0"]
    for mode, want in ((0o755, 0o600), (0o750, 0o640), (0o700, 0o600)):
        sd = os.path.join(d, "users-%o" % mode)
        os.makedirs(os.path.join(sd, "directory"))
        os.chmod(os.path.join(sd, "directory"), mode)
        c = ctl + ["-o", "state_dir=" + sd]
        run(c + ["domain", "add", "example.test"], "domain add")
        run(c + ["user", "add", "u@example.test", "--password-stdin"],
            "user add", stdin=b"a fine password\n")
        got = os.stat(os.path.join(sd, "directory", "users")).st_mode & 0o777
        eq(oct(got), oct(want), "users in a %o directory" % mode)


@test
def root_edgemailctl_writes_through_no_link_the_service_user_made(d):
    # The service user owns keys/dkim and directory/; root runs
    # edgemailctl in them.  A link planted there must not make root
    # write elsewhere or give a file away.
    nobody = 65534
    sd = os.path.join(d, "links")
    victim = os.path.join(d, "victim-dir")
    os.makedirs(victim, 0o755)
    for n in ("keys/dkim", "directory"):
        os.makedirs(os.path.join(sd, n), 0o750)
    for n in ("keys", "keys/dkim", "directory"):
        os.chown(os.path.join(sd, n), nobody, nobody)
    c = [os.path.join(stack.BIN, "edgemailctl"), "-o", "state_dir=" + sd,
         "-o", "password_scheme=SHA512-CRYPT", "-o", "password_cost=0"]
    run(c + ["domain", "add", "example.test"], "domain add")
    os.symlink(victim, os.path.join(sd, "keys", "dkim", "example.test"))
    rc, out = attempt(c + ["dkim", "keygen", "example.test"])
    check(rc != 0 and b"not a directory" in out,
          "dkim keygen through a link: %d %s" % (rc, out))
    st = os.stat(victim)
    eq((st.st_uid, os.listdir(victim)), (0, []), "the link's target")
    # users as a link to a file of root's: neither read (its lines
    # would be quoted in the errors) nor written.
    secret = os.path.join(d, "victim-file")
    with open(secret, "w") as f:
        f.write("root's secret\n")
    os.chmod(secret, 0o600)
    os.symlink(secret, os.path.join(sd, "directory", "users"))
    rc, out = attempt(c + ["user", "add", "u@example.test",
                           "--password-stdin"], b"a fine password\n")
    check(rc != 0 and b"symbolic link" in out and b"secret" not in out,
          "user add through a linked users file: %d %s" % (rc, out))
    eq(open(secret).read(), "root's secret\n", "the link's target")
    os.unlink(os.path.join(sd, "directory", "users"))
    run(c + ["user", "add", "u@example.test", "--password-stdin"],
        "user add", stdin=b"a fine password\n")
    # The lock file as a link: refused, nothing made at its target.
    lock = os.path.join(sd, "directory", ".lock")
    os.unlink(lock)
    os.symlink(os.path.join(d, "made-by-root"), lock)
    rc, out = attempt(c + ["user", "add", "v@example.test",
                           "--password-stdin"], b"a fine password\n")
    check(rc != 0, "user add with a linked lock: %s" % out)
    check(not os.path.exists(os.path.join(d, "made-by-root")),
          "root made a file through the lock link")


def attempt(cmd, stdin=None):
    """Run cmd; (exit status, its output)."""
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    return r.returncode, r.stdout


def run(cmd, what, stdin=None):
    rc, out = attempt(cmd, stdin)
    eq(rc, 0, "%s: %s" % (what, out.decode()[-1500:]))


@test
def the_readme_server_steps_work_as_the_units_run_the_stack(d):
    # README, "Running it on a server", from an empty state directory:
    # root's, with directories of the service user (nobody here: tests
    # make no users) in it; the mailboxes are another user's (a bare
    # UID:GID, as mail_owner may be), the directory is the service
    # user's and Dovecot's group's, root runs
    # edgemailctl and writes the configuration.  Then as the units do:
    # Dovecot as root with the configuration dovecot-config writes, the
    # scanner, the API and the relay as the service user in Dovecot's
    # group, without capabilities.  A POST and an authenticated
    # submission both land in the mailbox.
    nobody, dovecot_gid = 65534, grp.getgrnam("dovecot").gr_gid
    vmail = 65533
    st = stack.Stack("svc-user", init=False)
    try:
        # root's, so that the service user cannot replace what root
        # reads (edgemail.conf, Dovecot's configuration); the service
        # user gets its own directories in it.
        os.chmod(st.dir, 0o755)
        for n in ("spool", "idem", "outbound", "run"):
            os.mkdir(st.path(n), 0o700)
            os.chown(st.path(n), nobody, nobody)
        os.mkdir(st.path("directory"), 0o750)
        os.chown(st.path("directory"), nobody, dovecot_gid)
        os.mkdir(st.path("mail"), 0o750)
        os.chown(st.path("mail"), vmail, vmail)
        # The TLS certificate, the signing key and the signatures: the
        # admin's own (a self-signed certificate for 127.0.0.1 here).
        os.mkdir(st.path("tls"), 0o700)
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
             "/CN=mx.example.test", "-addext",
             "subjectAltName=DNS:mx.example.test,IP:127.0.0.1",
             "-keyout", st.path("tls", "key.pem"), "-out",
             st.path("tls", "cert.pem")], "openssl req")
        for n in ("tls", os.path.join("tls", "key.pem"),
                  os.path.join("tls", "cert.pem")):
            os.chown(st.path(n), nobody, nobody)
        st.ca = st.path("tls", "cert.pem")
        os.mkdir(st.path("keys"), 0o700)
        st.key_id, st.secret = "k1", "s" * 64
        with open(st.path("keys", "hmac.keys"), "w") as f:
            f.write("%s %s\n" % (st.key_id, st.secret))
        os.chmod(st.path("keys", "hmac.keys"), 0o600)
        for n in ("keys", os.path.join("keys", "hmac.keys")):
            os.chown(st.path(n), nobody, nobody)
        os.mkdir(st.path("clamav"))
        with open(st.path("clamav", "test.hdb"), "w") as f:
            f.write("44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-"
                    "Signature\n")
        sock = st.path("run", "scand.sock")
        p = st.ports
        with open(st.conf_path, "w") as f:
            f.write("state_dir = %s\nhostname = mx.example.test\n"
                    "tls_cert_file = %s\ntls_key_file = %s\n"
                    "scan_socket = %s\nclamav_db_dir = %s\n"
                    "api_listen = 127.0.0.1:%d\n"
                    "submit_listen = 127.0.0.1:%d\n"
                    "submit_tls_listen = 127.0.0.1:%d\n"
                    "dovecot_listen = 127.0.0.1\nimap_port = %d\n"
                    "imaps_port = %d\npop3_port = %d\npop3s_port = %d\n"
                    "managesieve_port = %d\nmail_owner = %d:%d\n"
                    "dovecot_login_user = nobody\ndns_server = none\n" %
                    (st.dir, st.ca, st.path("tls", "key.pem"), sock,
                     st.path("clamav"), p["api"], p["submit"],
                     p["submits"], p["imap"], p["imaps"], p["pop3"],
                     p["pop3s"], p["sieve"], vmail, vmail))
        ctl = [os.path.join(stack.BIN, "edgemailctl"), "-c", st.conf_path]
        st.demo_password = "a fine password"
        run(ctl + ["domain", "add", "example.test"], "domain add")
        run(ctl + ["user", "add", st.demo_user, "--password-stdin"],
            "user add", stdin=st.demo_password.encode() + b"\n")
        us = os.stat(st.users_file)
        eq((us.st_uid, us.st_gid, us.st_mode & 0o777),
           (nobody, dovecot_gid, 0o640), "the new users file")
        # edgemail-dovecot.service: ExecStartPre, then Dovecot.
        run(ctl + ["dovecot-config", "--output",
                   st.path("dovecot", "dovecot.conf")], "dovecot-config")
        st.start_dovecot()
        scand = st.start_prog("scand", as_service_user(
            st, "edgemail-scand", nobody, nobody, [dovecot_gid]))
        stack.wait_for(lambda: os.path.exists(sock) or
                       scand.poll() is not None, 30, what="scand socket")
        check(scand.poll() is None, "edgemail-scand runs: %s" %
              st.log("scand")[-1500:])
        api = st.start_prog("api", as_service_user(
            st, "edgemail-api", nobody, nobody, [dovecot_gid]))

        def healthy():
            check(api.poll() is None, "edgemail-api exited: %s" %
                  st.log("api")[-1500:])
            try:
                return st.get("/healthz", timeout=2)[0] == 200
            except OSError:
                return False
        stack.wait_for(healthy, 15, what="edgemail-api /healthz")
        eq(uid_of(api.pid), nobody, "the API's user")
        body = (b"From: <a@sender.test>\r\nTo: <demo@example.test>\r\n"
                b"Subject: as the service user\r\n\r\nhello\r\n")
        code, j, _ = st.post(body, [st.demo_user])
        eq(code, 200, "POST: %r; api log: %s" % (j, st.log("api")[-800:]))
        submit = st.start_prog("submit", as_service_user(
            st, "edgemail-submit", nobody, nobody, [dovecot_gid]))
        stack.wait_for(lambda: stack.port_open(p["submit"]) or
                       submit.poll() is not None, 15, what="submit port")
        check(submit.poll() is None, "edgemail-submit runs: %s" %
              st.log("submit")[-1500:])
        eq(uid_of(submit.pid), nobody, "the relay's user")
        with smtplib.SMTP("127.0.0.1", p["submit"], timeout=30) as s:
            s.starttls(context=st.ssl_context())
            s.login(st.demo_user, st.demo_password)
            s.sendmail(st.demo_user, [st.demo_user],
                       b"From: <demo@example.test>\r\n"
                       b"To: <demo@example.test>\r\n"
                       b"Subject: submitted as the service user\r\n\r\n"
                       b"hello\r\n")
        got = []

        def both():
            got[:] = [m for m in st.imap_messages(
                st.demo_user, st.demo_password) if b"as the service user"
                in m]
            return len(got) == 2
        stack.wait_for(both, 30, what="both messages in the mailbox")
        # edgemail-archive-expire.service: as mail_owner, in Dovecot's
        # group (the directory is 0750 edgemail:dovecot).
        run(["setpriv", "--reuid=%d" % vmail, "--regid=%d" % vmail,
             "--groups=%d" % dovecot_gid, "--inh-caps=-all",
             "--bounding-set=-all"] + ctl + ["archive", "expire"],
            "archive expire as mail_owner")
    finally:
        st.stop()

if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
