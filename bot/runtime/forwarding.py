"""The client address behind trusted proxies, for servers without a library that does it.

The receiver (aiohttp) uses aiohttp-remotes' `XForwardedFiltered`; the dashboard (Tornado, via
Bokeh) has only `xheaders`, which believes `X-Forwarded-For` from any peer and skips exact
addresses only. This is the same rule as the receiver's: the header is read only when the direct
peer is a trusted proxy, and then from the right, skipping trusted hops, so a client cannot choose
its address by sending the header itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The peer, or, when the peer is a trusted proxy, the right-most untrusted hop of
    `X-Forwarded-For` (the peer itself when every hop is trusted or the header is absent)."""
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        if not _trusted(hop, trusted):
            return hop.strip() or peer
    return peer
