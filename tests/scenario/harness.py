"""harness.py - test registration and PASS/FAIL lines for scenario tests.

A scenario file defines functions decorated with @test and ends with
`harness.main()`.  Each test runs in order; an exception or a failed
`check` prints "FAIL name: why", a clean return prints "PASS name".
tests/run.sh counts those lines.  Fixtures (Dovecot, the API...) are
started by the file itself (see stack.py) and stopped in a finally.
"""
import sys
import traceback

_tests = []


def test(fn):
    """Register a scenario test; its name is the function name."""
    _tests.append(fn)
    return fn


class CheckFailed(Exception):
    pass


def check(cond, why):
    if not cond:
        raise CheckFailed(why)


def eq(got, want, what=""):
    if got != want:
        raise CheckFailed("%s: got %r, want %r" % (what, got, want))


def main(setup=None, teardown=None, only=None):
    """Run every registered test (or those whose name contains `only`)."""
    failed = 0
    ctx = None
    try:
        if setup:
            ctx = setup()
        for fn in _tests:
            if only and only not in fn.__name__:
                continue
            try:
                fn(ctx) if setup else fn()
                print("PASS %s" % fn.__name__, flush=True)
            except CheckFailed as e:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, e), flush=True)
            except Exception as e:  # noqa: BLE001 - report, keep going
                failed += 1
                print("FAIL %s: %s: %s" % (fn.__name__, type(e).__name__, e),
                      flush=True)
                traceback.print_exc(file=sys.stdout)
    except Exception as e:  # setup failure: every test is a failure
        print("FAIL setup: %s: %s" % (type(e).__name__, e), flush=True)
        traceback.print_exc(file=sys.stdout)
        failed += 1
    finally:
        if teardown and ctx is not None:
            teardown(ctx)
    sys.exit(1 if failed else 0)
