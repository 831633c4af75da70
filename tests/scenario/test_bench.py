"""test_bench.py - the benchmark's paired mode and the API's timing line.

`make bench` compares (a) raw LMTP and (b) the API at concurrency 1 with
`edgemail-bench pair`: one LMTP and one HTTPS connection take turns, a
message each (docs/bench.md).  Proves, against the null LMTP sink and a
real edgemail-api in front of it: a pair gives two result lines and two
samples files, one per side, with as many messages on each side (give or
take the last turn) and msg/s = 1 / mean latency; without --url both
sides are LMTP (the A/A control); more than one connection is refused.
And the API's `event=done` line splits the time into recv_ms and
deliver_ms.  Not a measurement: nothing here is timed.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
from stack import BIN, Stack, wait_for  # noqa: E402

BENCH = os.path.join(BIN, "edgemail-bench")


def setup():
    st = Stack("bench")
    try:
        sock = st.path("sink.sock")
        log = open(st.path("sink.log"), "ab")
        try:
            p = subprocess.Popen([BENCH, "sink", "--listen", "unix:" + sock],
                                 stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT)
        finally:
            log.close()
        st.procs["sink"] = p        # stopped by its PID with the stack
        wait_for(lambda: os.path.exists(sock), what="the sink's socket")
        st.sink = sock
        # The API knows its recipients: the bench's bench1 ... bench5.
        for i in range(1, 6):
            st.add_user("bench%d@example.test" % i, "bench-pw")
        st.start_api({"lmtp_server": "unix:" + sock, "scan": "no"})
    except BaseException:
        st.stop()
        raise
    return st


def teardown(st):
    st.stop()


def results(out):
    """The result lines of edgemail-bench as {label: {field: value}}."""
    r = {}
    for line in out.splitlines():
        if line.startswith("result "):
            f = dict(w.split("=", 1) for w in line.split()[1:])
            r[f["label"]] = f
    return r


def pair(st, *args):
    cmd = [BENCH, "pair", "--server", "unix:" + st.sink, "--size", "10k",
           "--duration", "1", "--warmup", "0.2"] + list(args)
    return subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


@test
def a_pair_gives_each_side_its_result_and_as_many_turns(st):
    sa, sb = st.path("samples-a"), st.path("samples-b")
    r = pair(st, "--url", "https://127.0.0.1:%d" % st.ports["api"],
             "--ca", st.ca, "--keys-file", st.path("keys", "hmac.keys"),
             "--label", "a", "--samples", sa,
             "--label-b", "b", "--samples-b", sb)
    eq(r.returncode, 0, "exit status (%s)" % r.stderr.decode()[-300:])
    res = results(r.stdout.decode())
    eq(sorted(res), ["a", "b"], "labels")
    eq(res["a"]["mode"], "lmtp", "side a")
    eq(res["b"]["mode"], "http", "side b")
    for side in "ab":
        f = res[side]
        eq(f["errors"], "0", "errors of %s" % side)
        check(int(f["msgs"]) > 10, "%s: only %s messages" % (side, f["msgs"]))
    # Taking turns, neither side can be more than a turn ahead.
    check(abs(int(res["a"]["msgs"]) - int(res["b"]["msgs"])) <= 2,
          "turns: %s against %s" % (res["a"]["msgs"], res["b"]["msgs"]))
    for path, mode, f in ((sa, "lmtp", res["a"]), (sb, "http", res["b"])):
        with open(path) as fp:
            lines = fp.read().splitlines()
        check(lines and lines[0].startswith("# mode=%s " % mode),
              "%s: header %r" % (path, lines[:1]))
        eq(len(lines) - 1, int(f["msgs"]), "samples in " + path)
        # Each side had the connection only for its own messages: its
        # msg/s is over their time, 1 / mean latency.
        lat = [float(x) for x in lines[1:]]
        want = 1000.0 * len(lat) / sum(lat)
        check(abs(float(f["msgps"]) - want) <= 0.05 * want,
              "%s: msg/s %s is not 1/mean (%.2f)" % (mode, f["msgps"], want))


@test
def a_pair_without_url_is_two_lmtp_sides(st):
    r = pair(st, "--label", "a", "--label-b", "a2")
    eq(r.returncode, 0, "exit status (%s)" % r.stderr.decode()[-300:])
    res = results(r.stdout.decode())
    eq(sorted(res), ["a", "a2"], "labels")
    eq([res[x]["mode"] for x in ("a", "a2")], ["lmtp", "lmtp"], "modes")


@test
def a_pair_of_more_than_one_connection_is_refused(st):
    r = pair(st, "--concurrency", "2")
    check(r.returncode != 0, "exit status 0")
    check(b"--concurrency 1" in r.stderr, "why: %r" % r.stderr)
    eq(results(r.stdout.decode()), {}, "results")


@test
def the_done_line_says_where_the_time_went(st):
    body = b"Subject: timing\r\n\r\n" + b"x" * 5000 + b"\r\n"
    status, _, _ = st.post(body, ["demo@example.test"])
    eq(status, 200, "status")
    lines = [x for x in st.log("api").splitlines() if "event=done" in x]
    check(lines, "no event=done line")
    m = re.search(r" ms=([\d.]+) recv_ms=([\d.]+) deliver_ms=([\d.]+)",
                  lines[-1])
    check(m, "fields: %s" % lines[-1])
    total, recv, deliver = (float(x) for x in m.groups())
    check(recv + deliver <= total + 0.2,
          "recv_ms %s + deliver_ms %s > ms %s" % (recv, deliver, total))


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
