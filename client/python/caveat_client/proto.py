"""The protobuf modules protoc generates from proto/report.proto and
proto/wire.proto at build time (build/client/python: report_pb2, wire_pb2),
and the report's JSON form.

The JSON form is the project's (proto/cv_json.c): proto field names as
keys, enums by name, present fields only. protobuf's json_format gives the
same for a Report when asked for proto field names; where it differs
(client/python/README.md, "JSON"), the broker and the C tools are the
reference."""

import json

try:
    import report_pb2
    import wire_pb2
except ImportError as e:  # pragma: no cover - a setup error, said plainly
    raise ImportError(
        "caveat_client: the generated protobuf modules are missing (%s): build the "
        "tree (cmake --build build --target caveat_python) and put build/client/python "
        "on PYTHONPATH" % e
    ) from None

from google.protobuf import json_format

Report = report_pb2.Report
Frame = wire_pb2.Frame
Delivery = wire_pb2.Delivery


def status_name(status):
    """The name wire.proto gives a Status ("REFUSED_DUPLICATE")."""
    try:
        return wire_pb2.Status.Name(status)
    except ValueError:
        return "UNKNOWN"


def error_code_name(code):
    """The name wire.proto gives an ErrorCode ("REVOKED")."""
    try:
        return "UNKNOWN" if code == 0 else wire_pb2.ErrorCode.Name(code)
    except ValueError:
        return "UNKNOWN"


def report_from_json(text):
    """A Report from its JSON form (a str, bytes or an already-decoded dict).
    Unknown keys and enum names are refused (json_format.ParseError)."""
    report = Report()
    if isinstance(text, dict):
        json_format.ParseDict(text, report)
    else:
        json_format.Parse(text, report)
    return report


def message_to_dict(message):
    """A Report's (or a Delivery's) JSON form as a dict."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def report_to_json(report):
    """A Report's JSON form as text, keys in field order."""
    return json.dumps(message_to_dict(report), ensure_ascii=False)
