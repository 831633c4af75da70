"""test_redis.py - two edgemail-api processes sharing one real Redis.

Proves the scale-out promise of DESIGN section 3: a signature accepted by
one instance is refused as a replay by the other, an idempotent retry on
the other instance gets the first answer and no second copy, the
per-key rate limit is shared (429 with Retry-After), Redis down gives 503
(fail closed) and Redis back gives 200 without a restart.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import check, eq, test  # noqa: E402
import apiclient  # noqa: E402
from stack import Stack, free_ports, port_open, wait_for  # noqa: E402

DEMO = "demo@example.test"


class Ctx:
    pass


def start_redis(c):
    c.redis = subprocess.Popen(
        [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port",
         str(c.redis_port), "--save", "", "--appendonly", "no", "--dir",
         c.redis_dir, "--daemonize", "no", "--loglevel", "warning"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(c.redis_port), 10, what="redis")


def stop_redis(c):
    if c.redis is not None and c.redis.poll() is None:
        c.redis.terminate()
        c.redis.wait(10)
    c.redis = None


def api_conf(c, n):
    return {"redis": "redis://127.0.0.1:%d/0" % c.redis_port,
            "rate_limit_per_key": "40",
            "api_listen": "127.0.0.1:%d" % c.api_ports[n],
            "spool_dir": os.path.join(c.s.dir, "spool%d" % n),
            "idem_dir": os.path.join(c.s.dir, "idem%d" % n)}


def setup():
    c = Ctx()
    c.s = Stack("redis")
    c.redis = None
    c.redis_port, p1, p2 = free_ports(3)
    c.api_ports = [p1, p2]
    c.redis_dir = os.path.join(c.s.dir, "redis")
    os.makedirs(c.redis_dir)
    try:
        start_redis(c)
        c.s.start_dovecot()
        for n in (0, 1):
            c.s.start_prog("api%d" % n, "edgemail-api", api_conf(c, n))
        for port in c.api_ports:
            wait_for(lambda: port_open(port), 15, what="api on %d" % port)
    except BaseException:
        teardown(c)     # the harness has no context to tear down
        raise
    return c


def teardown(c):
    try:
        for n in (0, 1):
            c.s.stop_prog("api%d" % n)
    finally:
        stop_redis(c)
        c.s.stop()


def post(c, n, body, **kw):
    return apiclient.post(c.api_ports[n], c.s.ca, c.s.key_id, c.s.secret,
                          body, **kw)


def body(tag):
    return (b"From: <a@sender.test>\r\nSubject: redis %s\r\n\r\nhi\r\n"
            % tag.encode())


def copies(c, tag):
    needle = b"Subject: redis " + tag.encode() + b"\r\n"
    return sum(1 for m in c.s.imap_messages(DEMO, c.s.demo_password)
               if needle in m)


@test
def signature_replayed_on_the_other_instance_is_refused(c):
    ts = int(time.time())
    code, j, _ = post(c, 0, body("r1"), ts=ts)
    eq(code, 200, "first instance %r" % (j,))
    code, j, _ = post(c, 1, body("r1"), ts=ts)
    eq(code, 401, "second instance %r" % (j,))
    check("replay" in j["reason"], "reason %r" % j)
    eq(copies(c, "r1"), 1, "copies")


@test
def idempotent_retry_on_the_other_instance_does_not_deliver_twice(c):
    code1, j1, _ = post(c, 0, body("i1"), idem="shared-i1")
    eq(code1, 200, "first %r" % (j1,))
    code2, j2, _ = post(c, 1, body("i1"), idem="shared-i1")
    eq((code2, j2), (code1, j1), "answer from the other instance")
    eq(copies(c, "i1"), 1, "copies")
    code3, j3, _ = post(c, 1, body("i1-changed"), idem="shared-i1")
    eq(code3, 409, "same key, another body, other instance %r" % (j3,))


@test
def rate_limit_is_shared_between_instances(c):
    # Wait for a fresh minute window so the count is predictable.
    while time.time() % 60 > 45:
        time.sleep(1)
    codes = []
    for i in range(50):
        code, j, h = post(c, i % 2, body("rate%d" % i), rcpts=["ghost@example.test"])
        codes.append(code)
        if code == 429:
            check(int(h.get("Retry-After", "0")) > 0, "Retry-After %r" % h)
            eq(j["status"], "rate_limited", "status")
            break
    check(429 in codes, "no 429 within 50 requests: %r" % codes)
    # Earlier tests in this minute count too; the limit is 40 in all.
    check(len(codes) <= 41, "limit passed: %d requests" % len(codes))


@test
def redis_down_gives_503_and_recovers_without_restart(c):
    # Let the rate window from the previous test pass.
    while time.time() % 60 > 2:
        time.sleep(0.5)
    stop_redis(c)
    try:
        code, j, h = post(c, 0, body("d1"))
        eq(code, 503, "Redis down %r" % (j,))
        check("Redis" in j["reason"], "reason %r" % j)
        check(int(h.get("Retry-After", "0")) > 0, "Retry-After")
        eq(copies(c, "d1"), 0, "nothing delivered while Redis is down")
    finally:
        start_redis(c)
    code, j, _ = post(c, 0, body("d2"))
    eq(code, 200, "Redis back %r" % (j,))
    code, j, _ = post(c, 1, body("d3"))
    eq(code, 200, "Redis back, other instance %r" % (j,))


if __name__ == "__main__":
    harness.main(setup, teardown, only=os.environ.get("ONLY"))
