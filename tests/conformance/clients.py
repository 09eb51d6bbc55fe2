"""clients.py: the two clients behind one small interface, so that every
scenario (scenarios.py) runs unchanged against libcaveat and against the
Python client.

  client.agency                      the agency the broker authenticated
  client.publish(reports, timeout)   a {report_id, status, reason} per report
  client.receive(timeout)            a delivery in its JSON form, or None
  client.ack(up_to)
  client.admin(command, timeout)     (ok, text)
  client.close()

Every failure is a ClientError whose message is the client's own one-line
error ("broker: REVOKED: ..."). Timeouts are in seconds."""

import json
import os
import subprocess


class ClientError(Exception):
    pass


class CClient:
    """libcaveat, through tests/conformance/driver.c: one driver process
    per client, commands on its stdin, one JSON line back for each."""

    def __init__(self, driver, endpoint, server_cert, client_cert, feed, credit, publish_only):
        self.proc = subprocess.Popen(
            [driver], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        fields = [endpoint, server_cert, client_cert, feed or "", str(credit)]
        try:
            answer = self._call("connect", *fields, "1" if publish_only else "0")
        except ClientError:
            self.close()
            raise
        self.agency = answer["agency"]

    def _call(self, *fields):
        self.proc.stdin.write("\t".join(fields) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the C driver died (status %s)" % self.proc.wait())
        answer = json.loads(line)
        if not answer["ok"]:
            raise ClientError(answer["error"])
        return answer

    def publish(self, reports, timeout=10):
        lines = [json.dumps(r) for r in reports]
        return self._call("publish", str(int(timeout * 1000)), *lines)["results"]

    def receive(self, timeout=2):
        return self._call("receive", str(int(timeout * 1000))).get("delivery")

    def ack(self, up_to):
        self._call("ack", str(up_to))

    def admin(self, command, timeout=5):
        answer = self._call("admin", command, str(int(timeout * 1000)))
        return answer["reply_ok"], answer["text"]

    def close(self):
        """Ends the driver; a driver that fails to exit 0 (a sanitizer
        report under the ASan build) fails the scenario."""
        if self.proc is None:
            return
        self.proc.stdin.close()
        status = self.proc.wait(30)
        self.proc.stdout.close()
        self.proc = None
        if status != 0:
            raise RuntimeError("the C driver exited with status %d" % status)


class PythonClient:
    """client/python's caveat_client, in this process."""

    def __init__(self, endpoint, server_cert, client_cert, feed, credit, publish_only):
        import caveat_client

        self.cc = caveat_client
        try:
            self.client = caveat_client.Client(
                endpoint,
                server_cert,
                client_cert,
                feed=feed,
                credit=credit,
                publish_only=publish_only,
                timeout=3,
            )
        except caveat_client.CaveatError as e:
            raise ClientError(str(e)) from None
        self.agency = self.client.agency

    def _call(self, method, *args):
        try:
            return method(*args)
        except self.cc.CaveatError as e:
            raise ClientError(str(e)) from None

    def publish(self, reports, timeout=10):
        reports = [self.cc.report_from_json(r) for r in reports]
        return [r._asdict() for r in self._call(self.client.publish, reports, timeout)]

    def receive(self, timeout=2):
        delivery = self._call(self.client.receive, timeout)
        if delivery is None:
            return None
        view = self.cc.message_to_dict(delivery)
        view["seq"] = int(view["seq"])  # protobuf's JSON mapping writes a uint64 as a string
        return view

    def ack(self, up_to):
        self._call(self.client.ack, up_to)

    def admin(self, command, timeout=5):
        return self._call(self.client.admin, command, (), timeout)

    def close(self):
        self.client.close()


def factory(kind, harness):
    """client(agency, feed=None, credit=100, publish_only=False): a new
    client of that kind, with the agency's key from the harness."""
    driver = os.environ.get("CAVEAT_CONFORMANCE_DRIVER")
    made = []

    def client(agency, feed=None, credit=100, publish_only=False):
        cls = PythonClient if kind == "python" else CClient
        args = [harness.endpoint, harness.path("broker.cert"), harness.path(agency + ".cert_secret")]
        args += [feed, credit, publish_only]
        c = cls(*args) if kind == "python" else cls(driver, *args)
        made.append(c)
        return c

    client.made = made
    return client
