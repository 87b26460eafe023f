"""Review webhooks: where a requester asks to be told of the decision. A webhook is a request the
server makes on the requester's behalf, so it is checked like one (SSRF): http(s) only, no
credentials, and every address its host resolves to must be public, unless the operator allows
the host or network (``genlab serve --webhook-allow``, ``GENLAB_WEBHOOK_ALLOW``). The check runs when
the item is submitted and again just before sending, and a plain-http hook is sent to the address
that was checked (no second DNS answer)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any
from urllib.parse import urlparse

import httpx

from genlab.server import errors
from genlab.server.errors import APIError

HEADER = "x-genlab-review-webhook"


def _allowed(host: str, address: ipaddress._BaseAddress, allow: tuple[str, ...]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return _public(address)


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # RFC 3056: the IPv4 address is bits 16-48


def _public(address: ipaddress._BaseAddress) -> bool:
    """A public unicast address, judged by the IPv4 address an IPv6 one carries where it carries
    one (IPv4-mapped, NAT64, 6to4, Teredo's client): Python 3.11 counts ``64:ff9b::7f00:1`` and
    ``2002:7f00:1::`` as global, though they reach 127.0.0.1."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (address.teredo[1] if address.teredo else None)
        if address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address in SIX_TO_FOUR:
            embedded = address.sixtofour
        if embedded is not None:
            return _public(embedded)
    return address.is_global and not address.is_multicast


def resolve(url: str, allow: tuple[str, ...]) -> tuple[str, int]:
    """(a checked address, port) of a webhook URL, or a 400 saying why it is refused."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise refused(f"{HEADER} must be an http(s) URL")
    if parsed.username is not None or parsed.password is not None:
        raise refused(f"{HEADER} must not carry credentials")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parsed.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise refused(f"the webhook host {parsed.hostname!r} does not resolve") from None
    addresses = {ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}
    for address in addresses:
        if not _allowed(parsed.hostname, address, allow):
            raise refused(
                f"the webhook host {parsed.hostname!r} is {address}, a loopback, private, link-local or "
                "reserved address; the operator may allow it (genlab serve --webhook-allow)"
            )
    return str(sorted(addresses, key=str)[0]), port


def refused(message: str) -> APIError:
    return APIError(400, message, type_="invalid_request_error", code="invalid_webhook")


def notify(url: str, body: dict[str, Any], allow: tuple[str, ...]) -> None:
    """POST the outcome in the background (two retries), to an address checked again now."""

    def send() -> None:
        try:
            address, port = resolve(url, allow)
        except APIError as e:
            errors.log.warning("review webhook %s refused at send time: %s", url, e.message)
            return
        parsed = urlparse(url)
        target, headers = url, {}
        if parsed.scheme == "http":  # pin the checked address; the Host header keeps the name
            literal = f"[{address}]" if ":" in address else address
            target = parsed._replace(netloc=f"{literal}:{port}").geturl()
            headers = {"Host": parsed.netloc}
        for _ in range(3):
            try:
                if (
                    httpx.post(
                        target, json=body, headers=headers, timeout=10, follow_redirects=False
                    ).status_code
                    < 500
                ):
                    return
            except httpx.HTTPError:
                continue
        errors.log.warning("review webhook %s failed for %s", url, body.get("id"))

    threading.Thread(target=send, daemon=True).start()
