"""Who may talk to the server: loopback only by default; any other address needs an API key (checked on
every request in constant time) or an explicit --insecure. A loopback server also refuses requests
whose Host header is not a loopback name, so a web page cannot reach it through DNS rebinding."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from modelzoo.core.errors import ZooError

API_KEY_ENV = "ZOO_API_KEY"
OPEN_PATHS = frozenset({"/healthz"})  # answered without the key, so probes need no secret


class ListenRefused(ZooError):
    """A non-loopback address without an API key or --insecure."""


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); any other name counts as reachable."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_listen(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to listen where other machines can connect unless a key protects it or --insecure says so."""
    if is_loopback(host) or api_key or insecure:
        return
    raise ListenRefused(
        f"--host {host} lets other machines connect: pass --api-key KEY (or set ${API_KEY_ENV}), "
        "or --insecure to serve without a key"
    )


def host_header_allowed(headers: dict) -> bool:
    """For a loopback server: the Host header, when there is one, names a loopback host."""
    host = headers.get(b"host")
    if host is None:
        return True
    text = host.decode("latin-1")
    name = text.rsplit("]", 1)[0] + "]" if text.startswith("[") else text.rsplit(":", 1)[0]
    return is_loopback(name)


def same_origin(headers: dict) -> bool:
    """For a WebSocket handshake: no Origin (not a browser), or an Origin naming this very host and port."""
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"").decode("latin-1").lower()
    _scheme, _, netloc = origin.decode("latin-1").lower().partition("://")
    return bool(host) and netloc == host


def presented_key(headers: dict) -> bytes | None:
    """The key a request presents: `Authorization: Bearer KEY`, `X-API-Key: KEY`, or HTTP Basic auth
    with the key as the password (what a browser asks for when it opens the page)."""
    if b"x-api-key" in headers:
        return headers[b"x-api-key"]
    scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() == b"bearer":
        return value.strip()
    if scheme.lower() == b"basic":
        try:
            return base64.b64decode(value.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return None
    return None


def key_matches(headers: dict, api_key: str) -> bool:
    given = presented_key(headers)
    return given is not None and hmac.compare_digest(given, api_key.encode("utf-8"))
