"""What a download may reach, and how much it may write: the operator's switches, enforced at connect time.

A URL comes from whoever may call POST /models/apply, so by default a download speaks HTTPS to public
addresses only. The check is made on the address the connection is opened to (after DNS, for every redirect
hop), so a name that resolves to a public address once and to 127.0.0.1 the next time gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from gallery.index import GalleryError

DEFAULT_MAX_BYTES = 50 * 1000**3


class RefusedSource(GalleryError):
    """The operator's policy does not allow this download (scheme, address, size or checksum)."""


@dataclass(frozen=True)
class DownloadPolicy:
    allow_private: bool = False  # loopback, private, link-local targets (a local mirror, the tests' servers)
    allow_http: bool = False  # plain http:// (no integrity nor privacy on the way)
    max_bytes: int = DEFAULT_MAX_BYTES  # per model, all its files together
    allow_unverified: bool = False  # files without a sha256


def is_public(address: str) -> bool:
    """False for loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the
    cloud metadata service, fe80::/10), unspecified, multicast and reserved addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scope id (fe80::1%eth0) is no part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_multicast
        or ip.is_reserved
    )  # fmt: skip


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class PublicResolver(AbstractResolver):
    """Resolves as `inner` does, then keeps only the addresses the policy allows."""

    def __init__(self, inner: AbstractResolver, allow_private: bool) -> None:
        self.inner = inner
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if self.allow_private:
            return results
        allowed = [r for r in results if is_public(r["host"])]
        if not allowed:
            raise RefusedSource(f"{host.rstrip('.')} resolves to a private or local address: {PRIVATE_HINT}")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


PRIVATE_HINT = "refused (the operator may allow it with --allow-private-downloads)"


class GuardedConnector(aiohttp.TCPConnector):
    """Checks the scheme and literal addresses of every connection, redirects included; names go through
    the PublicResolver (aiohttp does not ask a resolver about an address literal)."""

    def __init__(self, policy: DownloadPolicy, resolver: AbstractResolver) -> None:
        super().__init__(resolver=PublicResolver(resolver, policy.allow_private))
        self.policy = policy

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        check_target(req.url.scheme, req.url.host or "", self.policy)
        return await super().connect(req, traces, timeout)


def check_target(scheme: str, host: str, policy: DownloadPolicy) -> None:
    if scheme == "http" and not policy.allow_http:
        raise RefusedSource(
            f"http://{host}: plain http is refused (use https://, or the operator may allow it with "
            "--allow-http-downloads)"
        )
    if scheme not in ("http", "https"):
        raise RefusedSource(f"{scheme}:// is not a download scheme")
    if not policy.allow_private and is_ip_literal(host) and not is_public(host.strip("[]")):
        raise RefusedSource(f"{host} is a private or local address: {PRIVATE_HINT}")


def download_session(
    policy: DownloadPolicy, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """The one session every gallery download and index read goes through."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    connector = GuardedConnector(policy, resolver or aiohttp.DefaultResolver())
    return aiohttp.ClientSession(timeout=timeout, connector=connector)
