"""Unit and end-to-end tests of the Python client (client/python) beyond
the conformance scenarios: certificate refusals, the JSON form, batch
planning, timeouts and the exceptions' names.

  /usr/bin/python3 tests/python/test_caveat_client.py

Exits 77, ctest's skip, when the client cannot be imported."""

import glob
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../conformance"))
from harness import SOURCE_DIR, Harness  # noqa: E402

try:
    import caveat_client as cc
except ImportError as e:
    print("skipped: the Python client cannot be imported: %s" % e)
    sys.exit(77)


def example(name, **changes):
    with open(os.path.join(SOURCE_DIR, "examples/reports", name + ".json")) as f:
        report = cc.report_from_json(f.read())
    for key, value in changes.items():
        setattr(report, key, value)
    return report


class Certificates(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="caveat-py-cert-")
        self.keys = os.path.join(SOURCE_DIR, "examples/keys")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def copy(self, name, mode=0o600):
        path = os.path.join(self.dir, name)
        shutil.copy(os.path.join(self.keys, name), path)
        os.chmod(path, mode)
        return path

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def refused(self, call, message):
        with self.assertRaises(cc.CertError) as caught:
            call()
        self.assertIn(message, str(caught.exception))

    def test_reads_the_keys_czmq_wrote(self):
        public, secret = cc.load_secret(self.copy("hull-cc.cert_secret"))
        with open(os.path.join(self.keys, "hull-cc.cert")) as f:
            self.assertIn('"%s"' % public.decode(), f.read())
        self.assertEqual(len(secret), 40)
        # any mode that gives group and others nothing, read-only included
        self.assertEqual(cc.load_secret(self.copy("hull-cc.cert_secret", 0o400))[0], public)
        self.assertEqual(cc.load_public(self.copy("hull-cc.cert", 0o644)), public)

    def test_secret_readable_by_others_is_refused(self):
        for mode in (0o644, 0o640, 0o604):
            path = self.copy("hull-cc.cert_secret", mode)
            self.refused(
                lambda: cc.load_secret(path),
                "secret key file must give group and others no access"
                " (0600 and 0400 do; it is %04o)" % mode)

    def test_public_certificate_is_no_secret_one(self):
        path = self.copy("hull-cc.cert")
        self.refused(lambda: cc.load_secret(path), "not a secret certificate (NAME.cert_secret)")

    def test_not_a_certificate(self):
        path = self.write("junk.cert", "hello\n")
        self.refused(lambda: cc.load_public(path), "not a czmq certificate with a valid CURVE key")
        short = self.write("short.cert", 'curve\n    public-key = "abc"\n')
        self.refused(lambda: cc.load_public(short), "not a czmq certificate")

    def test_keys_that_do_not_match(self):
        with open(os.path.join(self.keys, "hull-cc.cert_secret")) as f:
            text = f.read()
        with open(os.path.join(self.keys, "hull-nhs.cert")) as f:
            other = re.search(r'public-key = "(.*)"', f.read()).group(1)
        mine = re.search(r'public-key = "(.*)"', text).group(1)
        path = self.write("mixed.cert_secret", text.replace(mine, other))
        self.refused(lambda: cc.load_secret(path), "the secret key does not match the public key")

    def test_missing_and_odd_files(self):
        missing = os.path.join(self.dir, "none.cert")
        self.refused(lambda: cc.load_public(missing), "No such file or directory")
        self.refused(lambda: cc.load_public(self.dir), "not a regular file")
        big = self.write("big.cert", "#" * 70000)
        self.refused(lambda: cc.load_public(big), "too large")

    def test_client_refuses_before_connecting(self):
        broker = self.copy("broker.cert", 0o644)
        loose = self.copy("hull-cc.cert_secret", 0o644)
        self.refused(lambda: cc.Client("tcp://127.0.0.1:1", broker, loose),
                     "must give group and others no access")


class JsonForm(unittest.TestCase):
    def test_examples_read_and_write_back_unchanged(self):
        for path in sorted(glob.glob(os.path.join(SOURCE_DIR, "examples/reports/*.json"))):
            with open(path) as f:
                text = f.read()
            if '"category": "feedback"' in text and '"value"' in text:
                continue  # a feedback frame's example, not a report
            with self.subTest(path=path):
                report = cc.report_from_json(text)
                self.assertEqual(json.loads(cc.report_to_json(report)), json.loads(text))

    def test_unknown_field_and_enum_name_refused(self):
        with self.assertRaises(Exception) as caught:
            cc.report_from_json('{"categroy": "x"}')
        self.assertIn("categroy", str(caught.exception))
        with self.assertRaises(Exception) as caught:
            cc.report_from_json('{"priority": "URGENT"}')
        self.assertIn("URGENT", str(caught.exception))

    def test_names_from_wire_proto(self):
        self.assertEqual(cc.status_name(3), "REFUSED_DUPLICATE")
        self.assertEqual(cc.error_code_name(6), "REVOKED")
        self.assertEqual(cc.error_code_name(0), "UNKNOWN")
        self.assertEqual(cc.error_code_name(99), "UNKNOWN")

    def test_ids_have_the_brokers_form_and_rise(self):
        ids = [cc.new_report_id() for _ in range(50)]
        self.assertTrue(all(re.match(r"^r-[0-9a-f]{24}$", i) for i in ids), ids)
        self.assertEqual(len(set(ids)), 50)
        self.assertLessEqual(ids[0][:14], ids[-1][:14])


class WithBroker(unittest.TestCase):
    """Against a real caveatd, one per test."""

    broker_args = ()

    def setUp(self):
        self.h = Harness()
        self.h.start(*self.broker_args)
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close(linger=0)
        self.h.destroy()

    def client(self, agency, **options):
        options.setdefault("timeout", 3)
        c = cc.Client(
            self.h.endpoint, self.h.path("broker.cert"), self.h.path(agency + ".cert_secret"), **options
        )
        self.clients.append(c)
        return c


class Sessions(WithBroker):
    def taker(self, agency):
        """A raw CURVE DEALER of agency, connected, that has said nothing."""
        import zmq

        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.curve_serverkey = cc.load_public(self.h.path("broker.cert"))
        sock.curve_publickey, sock.curve_secretkey = cc.load_secret(self.h.path(agency + ".cert_secret"))
        sock.connect(self.h.endpoint)
        return sock

    def test_a_limited_reconnect_says_hello_again(self):
        # ten connections of the council take its queue in turn within one
        # second, each having the window (one delivery in flight) sent
        # again; the subscriber's connection, replaced and ended, comes back
        # within that second and is limited: a second later it says Hello
        # again, and gets what was sent meanwhile, with no error
        from caveat_client import proto

        council = self.client("hull-cc", credit=10, timeout=5)
        police = self.client("hum-bcu-hull", publish_only=True)
        first = police.publish([example("vulnerable_individual")])[0]
        self.assertEqual(council.receive(5).report_id, first.report_id)  # not acknowledged
        takers = [self.taker("hull-cc") for _ in range(10)]
        hello = proto.Frame(hello=proto.wire_pb2.Hello(version=1, credit=10)).SerializeToString()
        while time.monotonic() % 1 > 0.1:  # the broker counts by the same clock's seconds
            time.sleep(0.005)
        for sock in takers:
            sock.send(hello)
            answer = proto.Frame()
            self.assertTrue(sock.poll(5000))
            answer.ParseFromString(sock.recv())
            self.assertEqual(answer.WhichOneof("body"), "hello_ack")
        second = police.publish([example("vulnerable_individual")])[0]  # to the last taker
        delivery = council.receive(5)
        self.assertIsNotNone(delivery)
        self.assertEqual(delivery.report_id, second.report_id)
        admin = self.client("caveat-admin", publish_only=True)
        ok, text = admin.admin("stats")
        self.assertGreaterEqual(json.loads(text)["limited"], 1)
        for sock in takers:
            sock.close()

    def test_hello_ack(self):
        c = self.client("hull-cc")
        self.assertEqual((c.agency, c.protocol, c.protocol_version), ("hull-cc", "humber-prevent", 7))
        self.assertEqual((c.max_frame, c.max_reports), (1024 * 1024, 500))

    def test_broker_errors_keep_their_wire_name(self):
        c = self.client("hull-cc", publish_only=True)
        with self.assertRaises(cc.BrokerError) as caught:
            c.admin("stats")
        e = caught.exception
        self.assertEqual((e.code, e.name), (5, "FORBIDDEN"))
        self.assertEqual(str(e), "broker: FORBIDDEN: " + e.reason)

    def test_unknown_key_refused(self):
        self.h.keygen("stranger")
        with self.assertRaises(cc.KeyRefusedError) as caught:
            self.client("stranger")
        self.assertIn("the broker refused this agency's key", str(caught.exception))

    def test_revoked_ends_the_session(self):
        c = self.client("hull-cc")
        self.h.replace_key("hull-cc")
        self.h.reload()
        with self.assertRaises(cc.SessionClosedError) as caught:
            c.receive(10)
        self.assertEqual(caught.exception.name, "REVOKED")
        for call in (lambda: c.receive(0), lambda: c.ack(1), lambda: c.publish([])):
            with self.assertRaises(cc.SessionClosedError):
                call()

    def test_wrong_broker_key_times_out(self):
        self.h.keygen("impostor")
        with self.assertRaises(cc.NoAnswerError) as caught:
            cc.Client(self.h.endpoint, self.h.path("impostor.cert"), self.h.path("hull-cc.cert_secret"), timeout=0.5)
        self.assertIn("no answer from %s within 0.5s" % self.h.endpoint, str(caught.exception))

    def test_ack_above_highest_received_refused(self):
        c = self.client("hull-cc")
        with self.assertRaises(cc.CaveatError) as caught:
            c.ack(1)
        self.assertIn("cannot acknowledge seq 1: the highest received is 0", str(caught.exception))

    def test_credit_out_of_range_refused(self):
        for credit in (0, 10001):
            with self.assertRaises(cc.CaveatError) as caught:
                self.client("hull-cc", credit=credit)
            self.assertIn("credit %d: from 1 to 10000" % credit, str(caught.exception))

    def test_publish_without_ack_is_pending(self):
        c = self.client("hum-bcu-hull", publish_only=True)
        self.h.kill()
        report = example("critical_incident")
        with self.assertRaises(cc.NoAnswerError) as caught:
            c.publish([report], timeout=0.5)
        self.assertIn("no PublishAck", str(caught.exception))
        [result] = caught.exception.results
        self.assertEqual((result.status, result.report_id), ("PENDING", report.id))
        self.assertTrue(report.id, "the id is assigned before sending, so a retry is idempotent")


class SmallFrames(WithBroker):
    broker_args = ("--max-frame", "4096", "--max-reports", "4")

    def test_batches_keep_to_max_frame_and_max_reports(self):
        c = self.client("hum-bcu-hull", publish_only=True)
        self.assertEqual((c.max_frame, c.max_reports), (4096, 4))
        # small ones: max_reports ends their batches; large: max_frame
        small = [example("critical_incident") for _ in range(9)]
        large = [example("critical_incident", narrative="n" * 1000) for _ in range(9)]
        reports = small + large
        results = c.publish(reports, timeout=10)
        self.assertEqual([r.status for r in results], ["OK"] * 18)
        self.assertEqual([r.report_id for r in results], [r.id for r in reports])

    def test_report_too_large_for_a_frame_refused_locally(self):
        c = self.client("hum-bcu-hull", publish_only=True)
        big = example("critical_incident", narrative="n" * 5000)
        results = c.publish([big, example("critical_incident")])
        self.assertEqual([r.status for r in results], ["REFUSED_INVALID", "OK"])
        self.assertRegex(results[0].reason, r"^too large: \d+ bytes in a frame, the broker takes at most 4096$")


class IdleReconnects(WithBroker):
    broker_args = ("--handshake-timeout", "0.5")

    def test_an_idle_client_gets_in_after_reconnects(self):
        """The broker comes back and, while the application does not call
        in, ends the client's connection again and again for want of a
        Hello (some 13 times in 15 s); at the next call one Hello opens the
        session. One Hello per reconnect would get LIMIT past ten."""
        c = self.client("hum-bcu-hull", publish_only=True)
        self.assertEqual([r.status for r in c.publish([example("critical_incident")])], ["OK"])
        self.h.restart(*self.broker_args)
        time.sleep(15)
        results = c.publish([example("critical_incident")], timeout=10)
        self.assertEqual([r.status for r in results], ["OK"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
