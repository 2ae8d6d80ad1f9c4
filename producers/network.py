"""Who is calling: the client address behind trusted proxies, and the source-IP allowlist.

`X-Forwarded-For` is honoured only when the direct peer is one of `ITFF_TRUSTED_PROXIES`; the
chain is then walked from the right by aiohttp-remotes' `XForwardedFiltered`, so a client cannot
forge its address by sending the header itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, NoReturn

from aiohttp import web
from aiohttp_remotes import XForwardedFiltered

from producers.responses import ApiError, Handler

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text) if text else None
    except ValueError:
        return None


def _within(text: str | None, networks: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in networks)


class TrustedForwarded(XForwardedFiltered):
    """`XForwardedFiltered`, applied only to requests whose direct peer is a trusted proxy."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._proxies = _networks(trusted_proxies)
        super().__init__(set(self._proxies))

    async def setup(self, app: web.Application) -> None:  # pragma: no cover - not used this way
        app.middlewares.append(self.middleware)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer or not _within(str(peer[0]), self._proxies):
            return await handler(request)
        return await super().middleware(request, handler)

    async def raise_error(self, request: web.Request) -> NoReturn:  # noqa: ARG002
        raise ApiError(
            400,
            "bad_forwarded_header",
            "X-Forwarded-For / X-Forwarded-Proto / X-Forwarded-Host must each appear once",
        )


class IpAllowlist:
    """The source addresses allowed on the TradingView endpoint (when enabled)."""

    def __init__(self, *, enabled: bool, allowed: Iterable[str]) -> None:
        self.enabled = enabled
        self._allowed = _networks(allowed)

    def check(self, request: web.Request) -> None:
        if self.enabled and not _within(request.remote, self._allowed):
            raise ApiError(
                403,
                "forbidden",
                f"source address {request.remote} is not in ITFF_IP_ALLOWLIST; TradingView "
                "posts from its four documented addresses, other clients use POST /webhook",
            )


def forwarded_middlewares(trusted_proxies: list[str]) -> list[Any]:
    return [TrustedForwarded(trusted_proxies).middleware] if trusted_proxies else []
