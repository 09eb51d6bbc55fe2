"""scenarios.py: the wire behaviour every caveat client must show, run
against libcaveat and against the Python client alike (run.py).

A scenario is a function of (harness, client): the harness has started a
fresh caveatd with the example policy and keys; client(agency, ...) makes
a client of the implementation under test. Expected views are written out
here, once, so both clients are held to the same bytes."""

import json
import os
import re
import signal
import threading

from clients import ClientError
from harness import SOURCE_DIR

SCENARIOS = []


def scenario(*broker_args):
    def register(fn):
        fn.broker_args = broker_args
        SCENARIOS.append(fn)
        return fn

    return register


def example(name, **changes):
    with open(os.path.join(SOURCE_DIR, "examples/reports", name + ".json")) as f:
        report = json.load(f)
    report.update(changes)
    return report


def check(condition, what, *shown):
    if not condition:
        raise AssertionError(what + "".join("\n  " + repr(s) for s in shown))


def expect_error(call, *fragments):
    """Runs call, which must fail with an error naming every fragment."""
    try:
        call()
    except ClientError as e:
        check(all(f in str(e) for f in fragments), "error lacks %r" % (fragments,), str(e))
        return str(e)
    raise AssertionError("no error; expected one naming %r" % (fragments,))


def statuses(results):
    return [r["status"] for r in results]


def receive_all(client, n, timeout=5):
    got = []
    for _ in range(n):
        delivery = client.receive(timeout)
        check(delivery is not None, "delivery %d of %d did not come" % (len(got) + 1, n), got)
        got.append(delivery)
    return got


def sync(client):
    """A round trip on the client's connection: the broker handles a
    connection's frames in order, so an acknowledgement sent before has
    been handled when the answer comes. The cheapest answer is FORBIDDEN
    to an admin request from an agency that is not an administrator."""
    expect_error(lambda: client.admin("stats"), "broker: FORBIDDEN")


ID_FORM = re.compile(r"^r-[0-9a-f]{24}$")

# What the council's safeguarding hub (hull-cc) sees of the police's
# vulnerable_individual example: the rule safeguarding-referral, year of
# birth and postcode district only, no source, grading, address or PNC.
SAFEGUARDING_VIEW = {
    "originator": "hum-bcu-hull",
    "created": "2026-11-20T09:30:00Z",
    "category": "vulnerable_individual",
    "handling_level": "OFFICIAL-SENSITIVE",
    "priority": "ROUTINE",
    "area": "hull",
    "subjects": [
        {
            "name": "Jordan Ellis",
            "date_of_birth": "2009",
            "postcode": "HU3",
            "vulnerability_factors": ["isolation", "online contact", "recent school exclusion"],
        }
    ],
    "summary": example("vulnerable_individual")["summary"],
    "narrative": example("vulnerable_individual")["narrative"],
}


@scenario()
def delivered_redacted(h, client):
    council = client("hull-cc")
    college = client("hull-college")
    police = client("hum-bcu-hull", publish_only=True)
    check(police.agency == "hum-bcu-hull", "HelloAck names the agency", police.agency)
    [result] = police.publish([example("vulnerable_individual")])
    check(result["status"] == "OK" and ID_FORM.match(result["report_id"]), "accepted", result)
    delivery = council.receive(5)
    check(delivery is not None, "the council receives it")
    check(delivery["seq"] == 1, "the first seq is 1", delivery)
    check(delivery["report_id"] == result["report_id"], "the id published", delivery)
    check(delivery["rules"] == ["safeguarding-referral"], "released by its rule", delivery)
    expected = dict(SAFEGUARDING_VIEW, id=result["report_id"])
    check(delivery["report"] == expected, "the policy's redaction", delivery["report"], expected)
    council.ack(delivery["seq"])
    check(college.receive(0.5) is None, "no rule sends it to the college")


@scenario("--max-reports", "3")
def batch_split(h, client):
    council = client("hull-cc")
    police = client("hum-bcu-hull", publish_only=True)
    reports = [example("critical_incident", summary="incident %d" % i) for i in range(7)]
    results = police.publish(reports)
    check(statuses(results) == ["OK"] * 7, "7 reports in batches of at most 3", results)
    ids = [r["report_id"] for r in results]
    check(len(set(ids)) == 7 and all(ID_FORM.match(i) for i in ids), "ids assigned", ids)
    got = receive_all(council, 7)
    check([d["seq"] for d in got] == list(range(1, 8)), "seqs 1..7", got)
    check([d["report_id"] for d in got] == ids, "in publishing order", got)
    admin = client("caveat-admin", publish_only=True)
    ok, text = admin.admin("stats")
    stats = json.loads(text)
    check(ok and stats["published"] == 7 and stats["refused"] == 0, "stored: 7", stats)


@scenario()
def duplicate_refused(h, client):
    police = client("hum-bcu-hull", publish_only=True)
    report = example("critical_incident", id="conformance-dup-1")
    check(statuses(police.publish([report])) == ["OK"], "first publish")
    check(statuses(police.publish([report])) == ["OK"], "the same report again: idempotent")
    changed = dict(report, summary="something else")
    fresh = example("critical_incident", id="conformance-dup-2")
    results = police.publish([fresh, changed])
    check(statuses(results) == ["OK", "REFUSED_DUPLICATE"], "a refusal stops no other", results)
    check(results[1]["report_id"] == "conformance-dup-1" and results[1]["reason"], "why", results)


@scenario()
def spoofed_originator(h, client):
    council = client("hull-cc", publish_only=True)
    spoofed = example("vulnerable_individual", originator="hum-bcu-hull")
    [result] = council.publish([spoofed])
    check(result["status"] == "REFUSED_SPOOFED_ORIGINATOR" and result["reason"], "refused", result)
    own = example("vulnerable_individual", originator="hull-cc")
    check(statuses(council.publish([own])) == ["OK"], "its own originator is accepted")


@scenario()
def resends_dropped_after_reconnect(h, client):
    council = client("hull-cc")
    police = client("hum-bcu-hull", publish_only=True)
    reports = [example("critical_incident", summary="before %d" % i) for i in range(3)]
    police.publish(reports)
    got = receive_all(council, 3)
    council.ack(1)
    sync(council)
    h.restart()  # the clients reconnect; the broker resends seqs 2 and 3
    [after] = client("hum-bcu-hull", publish_only=True).publish(
        [example("critical_incident", summary="after")]
    )
    delivery = council.receive(10)
    check(delivery is not None, "the report published after the restart comes")
    check(delivery["seq"] == 4, "seqs 2 and 3, already returned, are dropped", delivery, got)
    check(delivery["report_id"] == after["report_id"], "the new report", delivery)
    check(council.receive(1) is None, "nothing more")
    ok, text = client("caveat-admin", publish_only=True).admin("stats")
    # since the restart: seqs 2 and 3 again, and 4
    check(json.loads(text)["delivered"] == 3, "the broker did send them again", text)


@scenario()
def publish_resent_after_reconnect(h, client):
    """A publish made while the broker is down waits for it, opens the
    session again when it is back, and resends; the report is stored once."""
    council = client("hull-cc")
    police = client("hum-bcu-hull", publish_only=True)
    h.kill()
    comeback = threading.Timer(1.0, h.restart)
    comeback.start()
    try:
        results = police.publish([example("critical_incident")], timeout=20)
    finally:
        comeback.join()
    check(statuses(results) == ["OK"], "stored once the broker is back", results)
    delivery = council.receive(10)
    check(delivery is not None and delivery["report_id"] == results[0]["report_id"], "delivered")
    check(council.receive(1) is None, "once", delivery)


@scenario()
def acks_cumulative_across_restart(h, client):
    council = client("hull-cc")
    police = client("hum-bcu-hull", publish_only=True)
    police.publish([example("critical_incident", summary="first %d" % i) for i in range(3)])
    receive_all(council, 3)
    council.ack(3)  # one acknowledgement covers seqs 1 to 3
    sync(council)
    council.close()
    h.restart()
    council = client("hull-cc")
    check(council.receive(1.5) is None, "nothing acknowledged comes back")
    police = client("hum-bcu-hull", publish_only=True)
    police.publish([example("critical_incident", summary="second %d" % i) for i in range(2)])
    got = receive_all(council, 2)
    check([d["seq"] for d in got] == [4, 5], "seqs go on", got)
    council.ack(4)
    sync(council)
    council.close()
    h.restart()
    council = client("hull-cc")
    delivery = council.receive(5)
    check(delivery is not None and delivery["seq"] == 5, "seq 5 was not acknowledged", delivery)
    check(delivery["report_id"] == got[1]["report_id"], "the same report again", delivery)
    check(council.receive(1) is None, "and only it")


@scenario()
def credit_limits_unacknowledged(h, client):
    council = client("hull-cc", credit=2)
    police = client("hum-bcu-hull", publish_only=True)
    police.publish([example("critical_incident", summary="n %d" % i) for i in range(5)])
    got = receive_all(council, 2)
    check(council.receive(1) is None, "no more than the credit unacknowledged", got)
    council.ack(2)
    got += receive_all(council, 2)
    check(council.receive(1) is None, "again the credit", got)
    council.ack(4)
    got += receive_all(council, 1)
    check([d["seq"] for d in got] == [1, 2, 3, 4, 5], "every seq once", got)


@scenario()
def unknown_key_refused(h, client):
    h.keygen("stranger")
    # again and again: a refusal that beats the Hello is told as one too
    for _ in range(10):
        expect_error(lambda: client("stranger"), "agency's key")


@scenario()
def revoked_key(h, client):
    council = client("hull-cc")
    h.replace_key("hull-cc")
    h.reload()
    expect_error(lambda: council.receive(10), "broker: REVOKED")
    expect_error(lambda: council.receive(1), "REVOKED")  # the session is over for good
    expect_error(lambda: client("hull-cc"), "agency's key")


@scenario()
def feed_gets_screened_reports(h, client):
    screen = client("hum-ctio-hull", feed="ctio")
    direct = client("hum-ctio-hull")
    police = client("hum-bcu-hull", publish_only=True)
    results = police.publish([example("critical_incident"), example("radicalisation_concern")])
    check(statuses(results) == ["OK", "OK"], "accepted", results)
    delivery = screen.receive(5)
    check(delivery is not None, "the screened report comes on the feed")
    check(delivery["report_id"] == results[1]["report_id"], "only the one screening matches", delivery)
    check(delivery["feed"] == "ctio" and delivery["rules"] == ["prevent-screen"], "how", delivery)
    check(delivery["report"]["source"]["type"] == "covert human intelligence source", "whole")
    check(screen.receive(0.5) is None, "a critical incident is not screened")
    check(direct.receive(0.5) is None, "the direct queue gets neither")
    forbidden = expect_error(lambda: client("hull-cc", feed="ctio"), "broker: FORBIDDEN")
    unknown = expect_error(lambda: client("hull-cc", feed="no-such-feed"), "broker: FORBIDDEN")
    check(forbidden == unknown, "a feed that is not there is refused as one not sent to hull-cc",
          forbidden, unknown)


@scenario()
def admin_stats(h, client):
    ok, text = client("caveat-admin", publish_only=True).admin("stats")
    check(ok and json.loads(text)["policy"] == "humber-prevent", "stats", text)
    council = client("hull-cc", publish_only=True)
    expect_error(lambda: council.admin("stats"), "broker: FORBIDDEN")


@scenario()
def late_admin_reply_is_not_the_next_ones(h, client):
    """A call that gave up before its AdminReply came does not hand that
    reply to the next call: "sessions" gets the sessions, not the stats.
    The broker is stopped (SIGSTOP) while the first call waits, so that
    its reply comes late whatever the machine's speed."""
    admin = client("caveat-admin", publish_only=True)
    h.proc.send_signal(signal.SIGSTOP)
    try:
        expect_error(lambda: admin.admin("stats", timeout=0.2), "no AdminReply")
    finally:
        h.proc.send_signal(signal.SIGCONT)
    ok, text = admin.admin("sessions")
    sessions = json.loads(text)
    check(ok and isinstance(sessions, list), "the sessions, not the late stats", text)
    check(any(s.get("agency") == "caveat-admin" for s in sessions), "its own session", sessions)


# Across the clients: the same delivery decoded by each (run.py cross).
CROSS_SCENARIOS = []


def cross_scenario(fn):
    fn.broker_args = ()
    CROSS_SCENARIOS.append(fn)
    return fn


def handed_over(h, first, second, agency, n):
    """The first client of agency receives n deliveries and leaves them
    unacknowledged; the second, opening the queue's next session, gets
    them again with their seqs. Both views, in the JSON form."""
    earlier = first(agency)
    seen_first = receive_all(earlier, n)
    earlier.close()
    later = second(agency)
    seen_second = receive_all(later, n)
    later.ack(seen_second[-1]["seq"])
    return seen_first, seen_second


@cross_scenario
def same_view_through_both(h, c_client, py_client):
    # doubles masked to about a kilometre, a map, repeated fields, enums
    reports = [example("venue_of_concern"), example("vulnerable_individual")]
    results = c_client("hum-bcu-hull", publish_only=True).publish(reports)
    check(statuses(results) == ["OK", "OK"], "published by libcaveat", results)
    from_c, from_py = handed_over(h, c_client, py_client, "hull-cc", 2)
    check(from_py == from_c, "the Python client decodes what libcaveat does", from_c, from_py)
    check(from_c[1]["report"] == dict(SAFEGUARDING_VIEW, id=results[1]["report_id"]), "redacted")
    results = py_client("hum-bcu-hull", publish_only=True).publish([example("critical_incident")])
    check(statuses(results) == ["OK"], "published by the Python client", results)
    from_py, from_c = handed_over(h, py_client, c_client, "hum-sb", 3)
    check(from_c == from_py, "and the other way", from_py, from_c)
