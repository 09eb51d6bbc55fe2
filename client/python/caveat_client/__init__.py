"""caveat_client: a Python client for caveatd, the second implementation
of docs/protocol.md beside libcaveat (C). It needs only pyzmq and the
protobuf runtime, and the modules protoc generates at build time.

    from caveat_client import Client, report_from_json
    with Client("tcp://127.0.0.1:7400", "broker.cert", "hull-cc.cert_secret") as c:
        delivery = c.receive(timeout=5)
"""

from .cert import load_public, load_secret
from .client import Client, PublishResult, new_report_id
from .errors import (
    BrokerError,
    CaveatError,
    CertError,
    KeyRefusedError,
    NoAnswerError,
    SessionClosedError,
)
from .proto import (
    Delivery,
    Report,
    error_code_name,
    message_to_dict,
    report_from_json,
    report_to_json,
    status_name,
)

__all__ = [
    "BrokerError",
    "CaveatError",
    "CertError",
    "Client",
    "Delivery",
    "KeyRefusedError",
    "NoAnswerError",
    "PublishResult",
    "Report",
    "SessionClosedError",
    "error_code_name",
    "load_public",
    "load_secret",
    "message_to_dict",
    "new_report_id",
    "report_from_json",
    "report_to_json",
    "status_name",
]
