"""The client side of docs/protocol.md, as libcaveat (client/cv_client.c)
does it: one CURVE DEALER connection and one session on one queue.

Every call that waits goes through _pump(), which reads what has arrived
and the socket monitor's handshake events: deliveries are queued whenever
they come (so nothing is lost while a publish waits for its
acknowledgement), an Error frame ends the wait, and a reconnect (a second
successful CURVE handshake) sends Hello again, since the broker keeps a
session per connection. Not thread-safe: use a client from one thread.
"""

import collections
import itertools
import os
import struct
import time

import zmq

from . import proto
from .cert import load_public, load_secret
from .errors import (
    BrokerError,
    CaveatError,
    KeyRefusedError,
    SessionClosedError,
    NoAnswerError,
)

CLIENT_NAME = "caveat_client.py/0.1"
PROTOCOL_VERSION = 1
DEFAULT_CREDIT = 100
MAX_CREDIT = 10000  # docs/protocol.md 3.4
DEFAULT_MAX_FRAME = 1024 * 1024  # HelloAck.max_frame absent or 0
DEFAULT_MAX_REPORTS = 500  # HelloAck.max_reports absent or 0
BATCH_BYTES = 256 * 1024  # a batch's frame at most: a few in flight keep the broker busy
PUBLISH_WINDOW = 16  # batches in flight: as libcaveat's (cv_client.c says why)
LINGER_MS = 1000  # close sends a last ack, but never hangs
HWM = 1000
AUTH_TRY_AGAIN = 300  # a ZAP status that is no refusal

ERR_NOT_READY, ERR_VERSION, ERR_REVOKED, ERR_LIMIT = 2, 3, 6, 9  # docs/protocol.md 7
HELLO_AGAIN_S = 1.0  # a reconnect's Hello the broker limited, said again

PublishResult = collections.namedtuple("PublishResult", "report_id status reason")
PublishResult.__doc__ = """A report's outcome: status is a wire Status name
("OK", "REFUSED_DUPLICATE"), or "PENDING" when no PublishAck came for it
(it may or may not be stored; publishing it again is safe)."""

_monitors = itertools.count()


def new_report_id():
    """An id of the broker's form: "r-", 12 hex digits of the time in
    milliseconds, 12 random ones. Ids that rise with time keep the broker's
    index of ids cheap to grow."""
    ms = time.time_ns() // 1_000_000
    return "r-%012x%s" % (ms & 0xFFFFFFFFFFFF, os.urandom(6).hex())


def _varint_size(value):
    return max(1, (value.bit_length() + 6) // 7)


def _report_field_size(size):
    """A report's bytes inside Publish: tag, length, body."""
    return 1 + _varint_size(size) + size


def _publish_frame_size(body):
    """The Frame around a Publish whose reports take body bytes:
    Publish.batch at its largest (tag and a 10-byte varint), then Frame's
    tag and length."""
    publish = 11 + body
    return 1 + _varint_size(publish) + publish


class _Batch:
    __slots__ = ("indices", "id", "acked", "hello")

    def __init__(self):
        self.indices, self.id, self.acked = [], None, False
        self.hello = 0  # Client._hellos when last sent


class Client:
    """A session with caveatd: connects, sends Hello and waits for
    HelloAck. Raises CertError for a bad certificate, KeyRefusedError when
    the broker refuses the key, BrokerError for an Error answer (VERSION,
    a feed that does not send to the agency: FORBIDDEN) and
    NoAnswerError when nothing answers (a wrong broker certificate, no
    broker).

    credit is the deliveries the broker may have unacknowledged (1 to
    10,000); publish_only opens a session that takes no queue and receives
    nothing (Hello.credit 0)."""

    def __init__(
        self,
        endpoint,
        server_cert,
        client_cert,
        feed=None,
        credit=DEFAULT_CREDIT,
        publish_only=False,
        timeout=5.0,
        context=None,
    ):
        if not endpoint:
            raise CaveatError("no broker endpoint")
        if not publish_only and not 1 <= credit <= MAX_CREDIT:
            raise CaveatError("credit %d: from 1 to %d" % (credit, MAX_CREDIT))
        if timeout < 0:
            raise CaveatError("negative timeout")
        server_key = load_public(server_cert)
        public_key, secret_key = load_secret(client_cert)
        self.endpoint = endpoint
        self.feed = feed or None
        self.credit = 0 if publish_only else credit
        self.agency = None  # from HelloAck
        self.protocol, self.protocol_version = None, None
        self.max_frame, self.max_reports = DEFAULT_MAX_FRAME, DEFAULT_MAX_REPORTS
        self._next_batch = 1
        self._inbox = collections.deque()  # deliveries received, not yet returned
        self._highest_seq = 0  # the highest seq receive() returned
        self._acked = 0  # the highest seq the application acknowledged
        self._ack_sent = 0
        self._ack_pending = 0  # an ack held back (coalesced, or a full send queue)
        self._handshakes = 0
        self._rehello = False  # a reconnect's Hello is not yet answered
        self._hellos = 0  # Hellos sent: a batch sent after the last one needs no resend
        self._admin_requests = 0  # AdminRequests sent: each carries its number as its id
        self._hello_due = False  # a reconnect's Hello, sent once the events are read
        self._hello_again_at = None  # a reconnect's Hello the broker limited: again then
        self._key_refused = False
        self._fatal = None  # SessionClosedError once REVOKED or VERSION
        self._ctx = context or zmq.Context.instance()
        self._sock = self._monitor = None
        try:
            self._open_socket(server_key, public_key, secret_key)
            self._open_session(timeout)
        except BaseException:
            self.close(linger=0)  # an unanswered Hello is not worth waiting for
            raise

    # ------------------------------------------------------------------
    # Life cycle

    def _open_socket(self, server_key, public_key, secret_key):
        sock = self._sock = self._ctx.socket(zmq.DEALER)
        sock.linger = LINGER_MS
        sock.sndhwm = sock.rcvhwm = HWM
        # a dead broker is noticed; docs/protocol.md 1
        sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        sock.curve_serverkey = server_key
        sock.curve_publickey = public_key
        sock.curve_secretkey = secret_key
        # handshake events tell a refused key and a reconnect; the PAIR's
        # queue is unlimited because libzmq's I/O thread sends them blocking
        address = "inproc://caveat-client-monitor-%d-%d" % (os.getpid(), next(_monitors))
        sock.monitor(address, zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        self._monitor = self._ctx.socket(zmq.PAIR)
        self._monitor.rcvhwm = 0
        self._monitor.connect(address)
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as e:
            raise CaveatError("%s: %s" % (self.endpoint, e.strerror)) from None

    def _open_session(self, timeout):
        # the Hello waits for the first handshake: libzmq drops a refused
        # connection's pipe, and a Hello sent once the refusal is in would
        # fail as "the send queue is full", hiding why
        deadline = time.monotonic() + timeout
        hello_sent = False
        while True:
            if not hello_sent and self._handshakes > 0:
                hello_sent = True  # after a second handshake, the monitor sent it
                if self._handshakes == 1:
                    self._send_hello()
            frame = self._pump(deadline)
            if frame is not None and frame.WhichOneof("body") == "hello_ack":
                return
            if frame is None and time.monotonic() >= deadline:
                raise NoAnswerError(
                    "no answer from %s within %gs (is this agency's key in the policy?)"
                    % (self.endpoint, timeout)
                )

    def close(self, linger=None):
        """Sends a held-back acknowledgement (best effort) and closes."""
        if self._sock is None:
            return
        if self._ack_pending and self._fatal is None:
            self._try_send_ack(self._ack_pending)
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self._sock.close(linger=LINGER_MS if linger is None else linger)
        self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------
    # Frames on the wire: one ZeroMQ message of one frame each

    def _send(self, frame):
        data = frame.SerializeToString()
        try:
            # never block: a full send queue means the broker is gone or stuck
            self._sock.send(data, zmq.NOBLOCK)
        except zmq.Again:
            raise CaveatError(
                "%s: cannot send: the send queue is full (is the broker running?)" % self.endpoint
            ) from None
        except zmq.ZMQError as e:
            raise CaveatError("%s: cannot send: %s" % (self.endpoint, e.strerror)) from None

    def _send_hello(self):
        hello = proto.wire_pb2.Hello(version=PROTOCOL_VERSION, client=CLIENT_NAME, credit=self.credit)
        if self.feed:
            hello.feed = self.feed
        self._send(proto.Frame(hello=hello))
        self._hellos += 1

    def _recv(self):
        """One waiting message as a Frame; None when nothing waits. A
        message that is not exactly one frame holding a Frame is dropped."""
        try:
            parts = self._sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        frame = proto.Frame()
        try:
            frame.ParseFromString(parts[0])
        except Exception:  # protobuf's DecodeError, whichever implementation
            return frame  # an empty frame: ignored
        return frame if len(parts) == 1 else proto.Frame()

    # ------------------------------------------------------------------
    # What arrives: frames and handshake events

    def _on_monitor_event(self):
        parts = self._monitor.recv_multipart()
        if len(parts[0]) != 6:
            return
        event, value = struct.unpack("=HI", parts[0])
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._key_refused = False
            self._handshakes += 1
            # a new connection has no session at the broker: open it again
            if self._handshakes > 1:
                self._hello_due = True
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH and value != AUTH_TRY_AGAIN:
            self._key_refused = True
        # one Hello for however many reconnects the waiting events tell of
        # (the broker takes only so many a second on one connection), sent
        # once they are read: the broker ends a connection that opens no
        # session within its timeout
        if self._hello_due and not self._monitor.get(zmq.EVENTS) & zmq.POLLIN:
            self._hello_due = False
            self._try_send_hello()

    def _try_send_hello(self):
        try:
            self._send_hello()
            self._rehello = True
        except CaveatError:
            pass  # the next reconnect or NOT_READY tries again

    def _on_error(self, error):
        code = error.code
        # frames queued while the connection was down reach a broker with
        # no session for them before the new Hello does: Hello again, and
        # unacknowledged batches are resent when it is answered
        if code == ERR_NOT_READY:
            if not self._rehello:
                self._try_send_hello()
            if self._rehello:
                return
        # a reconnect's Hello over the broker's rate (its queue's window sent
        # again too often, many reconnects in a second): a second later, not
        # the application's error
        if code == ERR_LIMIT and self._rehello:
            self._rehello = False
            self._hello_again_at = time.monotonic() + HELLO_AGAIN_S
            return
        name = proto.error_code_name(code)
        reason = " ".join(error.reason.split())  # one line: it goes to a terminal
        if code in (ERR_REVOKED, ERR_VERSION):
            self._fatal = SessionClosedError(code, name, reason)
            raise self._fatal
        raise BrokerError(code, name, reason)

    def _on_hello_ack(self, ack):
        if ack.HasField("version") and ack.version != PROTOCOL_VERSION:
            self._fatal = SessionClosedError(
                ERR_VERSION,
                "VERSION",
                "broker speaks protocol version %d, not %d" % (ack.version, PROTOCOL_VERSION),
            )
            raise self._fatal
        self.agency = ack.agency
        self.protocol, self.protocol_version = ack.protocol, ack.protocol_version
        self.max_frame = ack.max_frame or DEFAULT_MAX_FRAME
        self.max_reports = ack.max_reports or DEFAULT_MAX_REPORTS
        self._rehello = False

    def _on_frame(self, frame):
        """Queues deliveries, raises for an Error, and returns a HelloAck,
        PublishAck or AdminReply for the caller."""
        body = frame.WhichOneof("body")
        if body == "deliver":
            self._inbox.extend(frame.deliver.deliveries)
        elif body == "error":
            self._on_error(frame.error)
        elif body == "hello_ack":
            self._on_hello_ack(frame.hello_ack)
            return frame
        elif body in ("publish_ack", "admin_reply"):
            return frame
        return None  # heartbeats, and frames only a client sends

    def _check_open(self):
        if self._fatal is not None:
            raise self._fatal
        if self._sock is None:
            raise CaveatError("the client is closed")

    def _pump(self, deadline):
        """Waits until deadline (time.monotonic()) for something to arrive
        and handles what has: returns the first frame the caller must see,
        or None."""
        self._check_open()
        if self._ack_pending and self._try_send_ack(self._ack_pending):
            self._ack_pending = 0
        wake = deadline if self._hello_again_at is None else min(deadline, self._hello_again_at)
        wait = max(0, wake - time.monotonic())
        try:
            ready = dict(self._poller.poll(int(wait * 1000)))
        except zmq.ZMQError as e:
            if e.errno == zmq.EINTR:
                return None
            raise CaveatError(e.strerror) from None
        if self._monitor in ready:
            while self._monitor.poll(0):
                self._on_monitor_event()
        if self._hello_again_at is not None and time.monotonic() >= self._hello_again_at:
            self._hello_again_at = None
            self._try_send_hello()
        if self._key_refused:
            raise KeyRefusedError(
                "%s: the broker refused this agency's key (is this agency's key in the policy?)"
                % self.endpoint
            )
        while True:
            frame = self._recv()
            if frame is None:
                return None
            wanted = self._on_frame(frame)
            if wanted is not None:
                return wanted

    # ------------------------------------------------------------------
    # Publishing

    def publish(self, reports, timeout=10.0):
        """Publishes reports (Report messages, or their JSON form as dicts
        or text), in batches that keep to HelloAck.max_frame and
        max_reports, and waits until every batch is acknowledged, that is
        stored durably. A report without an id first gets one
        (new_report_id, written into the Report; a report given as JSON
        is converted first, so its id is only in the result) so that
        publishing the same reports again after a lost acknowledgement is
        idempotent.
        Returns a PublishResult per report, in order. A report too large
        for a frame on its own is refused here (REFUSED_INVALID) and not
        sent. Raises NoAnswerError (with .results) when acks are missing."""
        self._check_open()
        reports = [r if isinstance(r, proto.Report) else proto.report_from_json(r) for r in reports]
        for report in reports:
            if not report.id:
                report.id = new_report_id()
        results = [None] * len(reports)
        batches = self._plan_batches(reports, results)
        try:
            self._run_publish(reports, batches, results, timeout)
        except NoAnswerError as e:
            e.results = self._fill_pending(reports, results)
            raise
        return self._fill_pending(reports, results)

    def _plan_batches(self, reports, results):
        """Splits the reports, in order, into batches whose Frame fits
        max_frame and that hold at most max_reports."""
        limit = min(self.max_frame, BATCH_BYTES)
        batches, body = [], 0
        for i, report in enumerate(reports):
            size = _report_field_size(report.ByteSize())
            if _publish_frame_size(size) > self.max_frame:
                results[i] = PublishResult(
                    report.id,
                    "REFUSED_INVALID",
                    "too large: %d bytes in a frame, the broker takes at most %d"
                    % (_publish_frame_size(size), self.max_frame),
                )
                continue
            if (
                not batches
                or _publish_frame_size(body + size) > limit
                or len(batches[-1].indices) >= self.max_reports
            ):
                batches.append(_Batch())
                body = 0
            body += size
            batches[-1].indices.append(i)
        return batches

    def _send_batch(self, reports, batch):
        publish = proto.wire_pb2.Publish(batch=batch.id)
        publish.reports.extend(reports[i] for i in batch.indices)
        frame = proto.Frame(publish=publish)
        # planned against max_frame; a broker restarted with a smaller
        # limit would drop the connection on this frame
        if frame.ByteSize() > self.max_frame:
            raise CaveatError(
                "a batch of %d bytes exceeds the broker's new limit of %d"
                % (frame.ByteSize(), self.max_frame)
            )
        batch.hello = self._hellos
        self._send(frame)

    def _run_publish(self, reports, batches, results, timeout):
        deadline = time.monotonic() + timeout
        sent = acked = 0
        while acked < len(batches):
            while sent < len(batches) and sent - acked < PUBLISH_WINDOW:
                batches[sent].id = self._next_batch
                self._next_batch += 1
                self._send_batch(reports, batches[sent])
                sent += 1
            frame = self._pump(deadline)
            body = frame.WhichOneof("body") if frame is not None else None
            if body == "publish_ack":
                acked += self._on_publish_ack(reports, batches[:sent], results, frame.publish_ack)
            elif body == "hello_ack":
                # after a reconnect the broker may never have seen what was
                # in flight; resending is safe, every report has its id. A
                # batch sent after the last Hello reaches the session that
                # Hello opens (two Hellos can be unanswered at once)
                for batch in batches[:sent]:
                    if not batch.acked and batch.hello < self._hellos:
                        self._send_batch(reports, batch)
            elif frame is None and time.monotonic() >= deadline:
                raise NoAnswerError(
                    "no PublishAck from %s within %gs (%d of %d batches acknowledged)"
                    % (self.endpoint, timeout, acked, len(batches))
                )

    @staticmethod
    def _on_publish_ack(reports, sent, results, ack):
        """1 when ack answers one of the batches sent; 0 for a late ack of
        an earlier call, or a duplicate after a resend."""
        batch = next((b for b in sent if b.id == ack.batch and not b.acked), None)
        if batch is None:
            return 0
        if len(ack.results) != len(batch.indices):
            raise CaveatError(
                "broker: PublishAck has %d results for %d reports"
                % (len(ack.results), len(batch.indices))
            )
        for i, result in zip(batch.indices, ack.results):
            results[i] = PublishResult(
                result.report_id or reports[i].id, proto.status_name(result.status), result.reason
            )
        batch.acked = True
        return 1

    @staticmethod
    def _fill_pending(reports, results):
        return [
            r if r is not None else PublishResult(report.id, "PENDING", "not acknowledged")
            for report, r in zip(reports, results)
        ]

    # ------------------------------------------------------------------
    # Receiving

    def _try_send_ack(self, up_to):
        self._ack_sent = max(self._ack_sent, up_to)
        try:
            self._send(proto.Frame(delivery_ack=proto.wire_pb2.DeliveryAck(up_to=up_to)))
            return True
        except CaveatError:
            return False

    def _pop_new(self):
        """The first queued delivery above the highest seq returned; the
        others are resends of deliveries already returned (docs/protocol.md
        5) and are dropped. A resend of one already acknowledged means the
        broker lost that ack (a reconnect): acknowledge it again, or it
        would hold the delivery, and its credit, until a later ack."""
        reack = 0
        delivery = None
        while self._inbox:
            candidate = self._inbox.popleft()
            if candidate.seq > self._highest_seq:
                self._highest_seq = candidate.seq
                delivery = candidate
                break
            if candidate.seq <= self._acked:
                reack = max(reack, candidate.seq)
        if reack:
            self._try_send_ack(reack)  # best effort: the next ack covers it too
        return delivery

    def receive(self, timeout=5.0):
        """The next delivery (a wire Delivery: seq, report_id, rules, feed,
        and the redacted report) not returned before, or None when none
        comes within timeout seconds. Raises BrokerError or
        KeyRefusedError."""
        deadline = time.monotonic() + timeout
        delivery = self._pop_new()
        while delivery is None:
            expired = time.monotonic() >= deadline
            self._pump(deadline)  # a late PublishAck or AdminReply, a HelloAck: nothing to do
            delivery = self._pop_new()
            if delivery is None and expired:
                return None
        return delivery

    def ack(self, up_to):
        """Acknowledges every delivery with seq <= up_to (cumulative). An
        ack may be held back while deliveries received are still to be
        returned (one later ack covers it); it goes at the latest before
        the next wait on the network, or at close()."""
        self._check_open()
        # the broker answers a larger value with Error BAD_ACK
        if up_to > self._highest_seq:
            raise CaveatError(
                "cannot acknowledge seq %d: the highest received is %d" % (up_to, self._highest_seq)
            )
        # the broker handles at most 128 frames of an agency in a turn
        coalesce = self._inbox and up_to - self._ack_sent < self.credit // 2
        if coalesce or not self._try_send_ack(up_to):
            self._ack_pending = max(self._ack_pending, up_to)
        else:
            self._ack_pending = 0
        self._acked = max(self._acked, up_to)

    # ------------------------------------------------------------------
    # Administration

    def admin(self, command, args=(), timeout=5.0):
        """An administrator's request ("stats", "reload", "purge", "backup",
        "quarantined"): returns (ok, text) from AdminReply. Raises
        BrokerError FORBIDDEN for an agency that is not an administrator."""
        self._check_open()
        if not command:
            raise CaveatError("no admin command")
        # each request is numbered, and its reply carries the number back: a
        # late reply to a request that gave up is not this one's answer
        self._admin_requests += 1
        request = proto.wire_pb2.AdminRequest(
            command=command, args=list(args), id=self._admin_requests
        )
        self._send(proto.Frame(admin_request=request))
        deadline = time.monotonic() + timeout
        while True:
            frame = self._pump(deadline)
            if frame is not None and frame.WhichOneof("body") == "admin_reply":
                reply = frame.admin_reply
                if not reply.HasField("id") or reply.id == self._admin_requests:
                    return reply.ok, reply.text
            if frame is None and time.monotonic() >= deadline:
                raise NoAnswerError("no AdminReply from %s within %gs" % (self.endpoint, timeout))

