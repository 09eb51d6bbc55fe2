"""harness.py: the real caveatd for the Python tests, as tests/harness.c
starts it for the C ones: a temporary directory with copies of the example
keys (secret ones 0600) and policy, a fresh broker key, and caveatd bound
to a free loopback port outside the kernel's range of ephemeral ports
(unephemeral_port), which it reports on stdout.

Paths come from the environment ctest sets: CAVEAT (the CLI), CAVEATD and
CAVEAT_SOURCE_DIR."""

import glob
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SOURCE_DIR = os.environ.get("CAVEAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
CAVEAT = os.path.abspath(os.environ.get("CAVEAT", os.path.join(SOURCE_DIR, "build/client/caveat")))
CAVEATD = os.path.abspath(os.environ.get("CAVEATD", os.path.join(SOURCE_DIR, "build/broker/caveatd")))
READY = "caveatd: ready on "
SANITIZER_ERRORS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def unephemeral_port():
    """A loopback port free now, below the kernel's ephemeral range. A
    broker restarted on its port must find it free: one from the ephemeral
    range (what tcp://127.0.0.1:! or port 0 gives) can be taken, while the
    broker is down, as the source port of any outgoing connection, a
    reconnecting client's own included, and held for as long as that
    connection lasts. No connection is given a port below the range."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    ports = range(max(1024, low - 12288), low)
    for _ in range(100):
        port = random.choice(ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below %d" % low)


class Harness:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="caveat-py-")
        self.proc = None
        self.endpoint = None
        try:
            self._populate()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _populate(self):
        for cert in glob.glob(os.path.join(SOURCE_DIR, "examples/keys/*.cert*")):
            shutil.copy(cert, self.dir)
        # git keeps no file modes: the secret keys are made 0600 here
        for secret in glob.glob(os.path.join(self.dir, "*.cert_secret")):
            os.chmod(secret, 0o600)
        shutil.copy(os.path.join(SOURCE_DIR, "examples/policy.yaml"), self.path("policy.yaml"))
        # a fresh broker key: a client left over from another test,
        # reconnecting to a port the kernel reused, fails the handshake
        os.remove(self.path("broker.cert"))
        os.remove(self.path("broker.cert_secret"))
        self.keygen("broker")

    def path(self, name):
        return os.path.join(self.dir, name)

    def keygen(self, name):
        """A new key pair DIR/NAME.cert(_secret), by `caveat keygen`; its
        public key."""
        out = subprocess.run(
            [CAVEAT, "keygen", name], cwd=self.dir, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def policy_text(self):
        with open(self.path("policy.yaml")) as f:
            return f.read()

    def write_policy(self, text):
        # written beside and renamed: a reload never sees half a file
        with open(self.path("policy.yaml.new"), "w") as f:
            f.write(text)
        os.rename(self.path("policy.yaml.new"), self.path("policy.yaml"))

    def replace_key(self, agency):
        """Gives agency a new key in the policy: its example key is no
        longer listed (revoked)."""
        with open(self.path(agency + ".cert")) as f:
            old = re.search(r'public-key = "(.*)"', f.read()).group(1)
        new = self.keygen(agency + "-new")
        self.write_policy(self.policy_text().replace('"%s"' % old, '"%s"' % new))

    def start(self, *extra, endpoint=None):
        """Starts caveatd and waits (10 s) for its ready line; on a new
        port (unephemeral_port) unless endpoint is given, and on another
        if a process bound that one in the meantime."""
        for attempt in range(20):
            logged = len(self.log())
            try:
                return self._start(extra, endpoint or "tcp://127.0.0.1:%d" % unephemeral_port())
            except RuntimeError:
                if endpoint or attempt == 19 or "Address already in use" not in self.log()[logged:]:
                    raise

    def _start(self, extra, endpoint):
        args = [CAVEATD, "--policy", self.path("policy.yaml"), "--endpoint", endpoint]
        args += ["--cert", self.path("broker.cert_secret"), "--data", self.path("data")]
        with open(self.path("broker.log"), "a") as log:
            self.proc = subprocess.Popen(
                args + list(extra), stdout=subprocess.PIPE, stderr=log, text=True
            )
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith(READY):
            self.kill()
            raise RuntimeError("caveatd did not start:\n" + self.log())
        self.endpoint = line[len(READY) :].strip()

    def restart(self, *extra):
        """Stops caveatd and starts it again on the same endpoint: its
        clients reconnect by themselves. The port is outside the range the
        kernel gives connections (unephemeral_port), but another test may
        have bound it in the meantime: then it tries again, for up to 5 s."""
        self.stop()
        endpoint = self.endpoint
        for attempt in range(50):
            logged = len(self.log())
            try:
                return self.start(*extra, endpoint=endpoint)
            except RuntimeError:
                if attempt == 49 or "Address already in use" not in self.log()[logged:]:
                    raise
            time.sleep(0.1)

    def log(self):
        try:
            with open(self.path("broker.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGTERM and wait; fails unless caveatd exited 0 and its log
        holds no sanitizer report."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(30)
        self.proc.stdout.close()
        self.proc = None
        log = self.log()
        if status != 0 or any(e in log for e in SANITIZER_ERRORS):
            raise RuntimeError("caveatd did not stop cleanly (status %d):\n%s" % (status, log))

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None

    def destroy(self):
        try:
            self.stop()
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.kill()
            print(self.log())
        self.destroy()
