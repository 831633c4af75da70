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
    r = subprocess.run(["make", "--no-print-directory", "-C", TOP] +
                       list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    check(r.returncode == 0, "make %s: %s" % (" ".join(args),
                                              r.stdout.decode()[-2000:]))


def verify(unit_dir, names):
    r = subprocess.run(["systemd-analyze", "verify"] + names, cwd=unit_dir,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    return r.returncode, r.stdout.decode().strip()


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
def the_stack_works_as_the_units_run_it_unprivileged(d):
    # As the units: Dovecot as root with dovecot_user/dovecot_group of
    # its own; the scanner, the API and the relay as one unprivileged
    # user that owns the state directory and is in Dovecot's group (the
    # LMTP and auth sockets are 0660 dovecot:dovecot); the users file
    # readable by Dovecot's auth through that group (0640).
    nobody, dovecot_gid = 65534, grp.getgrnam("dovecot").gr_gid
    st = stack.Stack("svc-user")
    try:
        sock = st.path("scand.sock")
        with open(st.conf_path, "a") as f:
            f.write("dovecot_user = dovecot\ndovecot_group = dovecot\n"
                    "scan_socket = %s\n" % sock)
        r = subprocess.run([os.path.join(stack.BIN, "edgemailctl"), "-c",
                            st.conf_path, "dovecot-config", "--output",
                            st.path("dovecot", "dovecot.conf")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        eq(r.returncode, 0, "dovecot-config: %s" % r.stdout.decode())
        for root, dirs, files in os.walk(st.dir):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), nobody, nobody)
        os.chown(st.dir, nobody, nobody)
        os.chmod(st.dir, 0o751)
        os.chown(st.path("directory"), nobody, dovecot_gid)
        os.chmod(st.path("directory"), 0o750)
        os.chown(st.users_file, nobody, dovecot_gid)
        os.chmod(st.users_file, 0o640)
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
        stack.wait_for(lambda: stack.port_open(st.ports["submit"]) or
                       submit.poll() is not None, 15, what="submit port")
        check(submit.poll() is None, "edgemail-submit runs: %s" %
              st.log("submit")[-1500:])
        eq(uid_of(submit.pid), nobody, "the relay's user")
        with smtplib.SMTP("127.0.0.1", st.ports["submit"], timeout=30) as s:
            s.starttls(context=st.ssl_context())
            s.login(st.demo_user, st.demo_password)
            s.sendmail(st.demo_user, [st.demo_user],
                       b"From: <demo@example.test>\r\n"
                       b"To: <demo@example.test>\r\n"
                       b"Subject: submitted as the service user\r\n\r\n"
                       b"hello\r\n")
        subjects = []

        def both():
            subjects[:] = [m for m in st.imap_messages(
                st.demo_user, st.demo_password) if b"as the service user"
                in m]
            return len(subjects) == 2
        stack.wait_for(both, 30, what="both messages in the mailbox")
    finally:
        st.stop()


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
