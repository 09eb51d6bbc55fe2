"""czmq certificate files (NAME.cert, NAME.cert_secret), read as libcaveat
reads them (proto/cv_cert.c): the ZPL text format, keys in Z85, and a
secret file refused when group or others have any access to it."""

import os
import stat

import zmq
from zmq.utils import z85

from .errors import CertError

CERT_MAX_BYTES = 65536  # a czmq certificate is a few hundred bytes


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value.split("#", 1)[0].strip()


def parse_zpl(text):
    """The name = value pairs of a ZPL document, keyed by their path
    ("curve/public-key"). Only what czmq certificates use: sections by
    four-space indentation, quoted or bare values, # comments."""
    values, path = {}, []
    for line in text.splitlines():
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        depth = (len(line) - len(body)) // 4
        name, sep, value = body.partition("=")
        name = name.strip()
        del path[depth:]
        if sep:
            values["/".join(path + [name])] = _unquote(value)
        path.append(name)
    return values


def _read(path):
    """The file's text and its mode bits; the mode is read from the open
    descriptor, so the file checked is the file read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CertError("%s: %s" % (path, e.strerror)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CertError("%s: not a regular file" % path)
        if st.st_size > CERT_MAX_BYTES:
            raise CertError("%s: not a czmq certificate (too large)" % path)
        data = os.read(fd, CERT_MAX_BYTES + 1)
    except OSError as e:
        raise CertError("%s: cannot read a certificate: %s" % (path, e.strerror)) from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8"), stat.S_IMODE(st.st_mode)
    except UnicodeDecodeError:
        raise CertError("%s: not a czmq certificate with a valid CURVE key" % path) from None


def _valid_key(text):
    if not text or len(text) != 40:
        return False
    try:
        return len(z85.decode(text.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError, KeyError, IndexError):
        return False


def load_public(path):
    """The Z85 public key of a certificate file (NAME.cert)."""
    text, _ = _read(path)
    key = parse_zpl(text).get("curve/public-key")
    if not _valid_key(key):
        raise CertError("%s: not a czmq certificate with a valid CURVE key" % path)
    return key.encode("ascii")


def load_secret(path):
    """The Z85 (public, secret) key pair of a secret certificate file
    (NAME.cert_secret), which must give group and others no access (0600
    and 0400 do)."""
    text, mode = _read(path)
    values = parse_zpl(text)
    public, secret = values.get("curve/public-key"), values.get("curve/secret-key")
    if not secret:
        raise CertError("%s: not a secret certificate (NAME.cert_secret)" % path)
    if not (_valid_key(public) and _valid_key(secret)):
        raise CertError("%s: not a czmq certificate with a valid CURVE key" % path)
    if mode & 0o077:
        raise CertError(
            "%s: secret key file must give group and others no access"
            " (0600 and 0400 do; it is %04o)" % (path, mode))
    public, secret = public.encode("ascii"), secret.encode("ascii")
    # a damaged or edited file would otherwise fail later as an
    # unexplained handshake timeout
    if zmq.curve_public(secret) != public:
        raise CertError("%s: the secret key does not match the public key" % path)
    return public, secret
