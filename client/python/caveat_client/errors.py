"""What the client raises. Every error is one line; a broker Error keeps
its wire ErrorCode's name (wire.proto) and reason."""


class CaveatError(Exception):
    """Any failure of the client."""


class CertError(CaveatError):
    """A certificate file that cannot be used (missing, not a czmq
    certificate, a secret file readable by others, keys that do not match)."""


class KeyRefusedError(CaveatError):
    """The broker refused this agency's key (its ZAP handler): the key is
    not in the policy. libzmq does not retry: make a new Client once the
    key is listed."""


class NoAnswerError(CaveatError):
    """No answer in time. publish() sets results: what was acknowledged,
    and PENDING for the rest (publishing them again is safe)."""

    def __init__(self, message, results=None):
        super().__init__(message)
        self.results = results


class BrokerError(CaveatError):
    """An Error frame from the broker: code (the number), name
    ("REVOKED") and reason."""

    def __init__(self, code, name, reason):
        super().__init__("broker: %s%s" % (name, ": " + reason if reason else ""))
        self.code = code
        self.name = name
        self.reason = reason


class SessionClosedError(BrokerError):
    """REVOKED or VERSION: the session is over and every later call fails
    with it."""
