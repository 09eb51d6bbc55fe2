"""run.py: runs the conformance scenarios (scenarios.py) against one client.

  /usr/bin/python3 tests/conformance/run.py c|python|cross [SCENARIO...]

c drives libcaveat through the driver program (CAVEAT_CONFORMANCE_DRIVER);
python, client/python's caveat_client (on PYTHONPATH with the generated
protobuf modules); cross, the scenarios that hand deliveries from one
client to the other. Exits 77, ctest's skip, when the Python client cannot
be imported (no python3-zmq or python3-protobuf)."""

import sys
import time
import traceback

from clients import factory
from harness import Harness
from scenarios import CROSS_SCENARIOS, SCENARIOS

SKIP = 77


def run_one(kind, fn):
    harness = Harness()
    kinds = ("c", "python") if kind == "cross" else (kind,)
    factories = [factory(k, harness) for k in kinds]
    failure = None
    try:
        harness.start(*fn.broker_args)
        fn(harness, *factories)
    except Exception:
        failure = traceback.format_exc()
    for c in [c for f in factories for c in f.made]:
        try:
            c.close()
        except Exception:
            failure = failure or traceback.format_exc()
    try:
        harness.destroy()
    except Exception:
        failure = failure or traceback.format_exc()
    if failure:
        print(failure + "broker log:\n" + harness.log())
    return failure is None


def main(argv):
    if len(argv) < 2 or argv[1] not in ("c", "python", "cross"):
        print("usage: run.py c|python|cross [SCENARIO...]", file=sys.stderr)
        return 2
    kind, wanted = argv[1], set(argv[2:])
    if kind != "c":
        try:
            import caveat_client  # noqa: F401
        except ImportError as e:
            print("skipped: the Python client cannot be imported: %s" % e)
            return SKIP
    failed = []
    for fn in CROSS_SCENARIOS if kind == "cross" else SCENARIOS:
        if wanted and fn.__name__ not in wanted:
            continue
        start = time.monotonic()
        ok = run_one(kind, fn)
        print("%s %s %s (%.1fs)" % ("PASS" if ok else "FAIL", kind, fn.__name__, time.monotonic() - start))
        sys.stdout.flush()
        if not ok:
            failed.append(fn.__name__)
    if failed:
        print("failed: " + " ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
