"""Where the sidecar may connect on a caller's behalf: the guard against request forgery.

Media URLs come from Laravel, and the sidecar fetches them, so a URL must not turn the
sidecar into a way into its own network. By default only public destinations are fetched:
- the URL is http(s), with no credentials, and its host is a host name, a dotted IPv4
  address or a bracketed IPv6 address (no `2130706433`, `0x7f.1` or `017700000001`);
- every address the host name resolves to is public (not loopback, private, link-local,
  shared/CGNAT, multicast, reserved or unspecified, nor an IPv6 form embedding one);
- the connection then goes to one of exactly those addresses (`Destination.request_target`):
  the host is never looked up a second time, so a DNS answer that changes cannot slip in
  an address that was not checked.

SIDECAR_FETCH_ALLOW names the exceptions (`AllowList`): host names, addresses or CIDRs that
may be fetched although they are not public, such as Laravel's storage on a private network.

Webhook URLs are the operator's own endpoints and may be private, but never link-local or a
cloud metadata service (`webhook_url_problem`); a session's browser proxy follows the same
rule (`proxy_server`). Credentials in a URL are never shown back (`redact_url`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (host, port) -> every address it resolves to, as strings.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

ALLOW_SETTING = "SIDECAR_FETCH_ALLOW"

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# A last label that is a number: browsers and inet_aton() read such a host as an IPv4
# address in some numeric form (decimal, octal, hex, fewer than four parts).
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_PRIVATE = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv6Network("fc00::/7"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4

# Webhooks may go to private hosts (Laravel usually lives there), but never to these.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("169.254.0.0/16"),  # link-local: AWS, GCP, Azure, OCI, DO metadata
    ipaddress.IPv6Network("fe80::/10"),  # link-local
    ipaddress.IPv6Network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.IPv4Network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.IPv4Network("168.63.129.16/32"),  # Azure wire server
)


class Refused(Exception):
    """The guard will not connect there; `reason` reads after the URL's name, e.g.
    "media.url: points to a private address (10.0.0.5); allow it with ..."."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LookupFailed(Exception):
    """The host name did not resolve (or not in time)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """An http(s) URL whose form passed the checks, split into what the guard needs."""

    url: httpx.URL  # no credentials, no fragment
    host: str  # ASCII (IDNA), lower case, as written (a trailing dot kept)
    port: int
    address: IPAddress | None  # the host itself, when it is an IP address

    @property
    def name(self) -> str:
        """The host without a trailing dot: what allow lists and SNI compare."""
        return self.host.rstrip(".")


@dataclass(frozen=True)
class Destination:
    """A checked URL and every address it may be fetched from, in the resolver's order."""

    target: Target
    addresses: tuple[IPAddress, ...]

    @property
    def url(self) -> httpx.URL:
        return self.target.url

    def request_target(
        self, address: IPAddress
    ) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """URL, headers and httpx extensions that reach `address` and nothing else.

        The URL names the address itself, so the HTTP client connects there without a DNS
        lookup. The Host header carries the real name; for https the `sni_hostname`
        extension makes the TLS handshake send that name and verify the certificate
        against it, exactly as if the name had been connected to.
        """
        if address not in self.addresses:
            raise ValueError(f"{address} was not checked for {self.target.host}")
        target = self.target
        if target.address is not None:
            return target.url, {}, {}
        url = target.url.copy_with(host=str(address))
        default = 443 if target.url.scheme == "https" else 80
        host_header = target.host if target.port == default else f"{target.host}:{target.port}"
        extensions: dict[str, Any] = {}
        if target.url.scheme == "https":
            extensions["sni_hostname"] = target.name
        return url, {"Host": host_header}, extensions


@dataclass(frozen=True)
class AllowList:
    """SIDECAR_FETCH_ALLOW: host names (exact) and networks that may be fetched although
    they are not public. A listed name may resolve to anything; a network admits any name
    whose addresses all fall in it (or are public)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Entries such as `storage.internal`, `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`;
        ValueError names a bad one."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if "/" in entry or ":" in entry or _DOTTED_QUAD.fullmatch(entry):
                try:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                except ValueError:
                    raise ValueError(f"{raw.strip()!r} is not a valid address or CIDR") from None
                continue
            name = entry.rstrip(".")
            labels = name.split(".")
            if _NUMERIC_LABEL.fullmatch(labels[-1]) or not _HOST_NAME.fullmatch(name):
                raise ValueError(
                    f"{raw.strip()!r} is not a host name, a dotted IPv4 address, an IPv6 "
                    "address or a CIDR"
                )
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, target: Target, address: IPAddress) -> bool:
        if target.name in self.hosts:
            return True
        plain = _without_scope(address)
        forms: list[IPAddress] = [plain]
        if isinstance(plain, ipaddress.IPv6Address) and (v4 := _embedded_ipv4(plain)):
            forms.append(v4)
        return any(ip.version == net.version and ip in net for ip in forms for net in self.networks)

    def __bool__(self) -> bool:
        return bool(self.hosts or self.networks)


def parse_target(url: str | httpx.URL, *, credentials: bool = False) -> Target:
    """Check the form of an http(s) URL; Refused says what is wrong with it.

    `credentials=True` lets `user:pass@` through (webhook URLs keep theirs).
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        if "IPv4" in str(exc):
            raise _odd_numeric(_raw_host(str(url))) from None
        raise Refused("is not a valid URL") from None
    except TypeError:
        raise Refused("is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise Refused("is not an http or https URL")
    if parsed.userinfo and not credentials:
        raise Refused("carries credentials (user:password@ in the URL), which are not accepted")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise Refused("has no host")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise Refused(f"has an invalid port ({port})")
    clean = parsed.copy_with(fragment=None)
    if not credentials:
        clean = clean.copy_with(userinfo=b"")
    if ":" in host:  # only a bracketed IPv6 literal has a colon in its host
        if "%" in host:
            raise Refused(f"gives an IPv6 zone ([{host}]), which is not accepted")
        try:
            return Target(clean, host, port, ipaddress.IPv6Address(host))
        except ValueError:
            raise Refused(f"has an invalid IPv6 address ([{host}])") from None
    name = host[:-1] if host.endswith(".") else host
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        if host != name or not _DOTTED_QUAD.fullmatch(name):
            raise _odd_numeric(host)
        return Target(clean, host, port, ipaddress.IPv4Address(name))
    if not _HOST_NAME.fullmatch(name) or len(name) > 253:
        raise Refused(f"has an invalid host name ({host})")
    return Target(clean, host, port, None)


def address_problem(address: IPAddress) -> str | None:
    """What makes `address` not public ("a loopback address", ...), or None when it is."""
    ip = _without_scope(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_problem(embedded)
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "a shared (CGNAT) address"
    if any(ip.version == net.version and ip in net for net in _PRIVATE):
        return "a private address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a private (site-local) address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a special-purpose address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address of `host`, through the event loop's getaddrinfo (a worker thread)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class NetGuard:
    """Checks outbound URLs against the policy and resolves them, once, to what may be
    connected to."""

    def __init__(
        self,
        allow: AllowList | None = None,
        resolver: Resolver | None = None,
        resolve_timeout: float = 10.0,
    ) -> None:
        self.allow = allow or AllowList()
        self.resolver = resolver or system_resolver
        self.resolve_timeout = resolve_timeout

    async def check(self, url: str | httpx.URL) -> Destination:
        """The URL's destination with every address checked; Refused or LookupFailed."""
        target = parse_target(url)
        if target.address is not None:
            addresses: tuple[IPAddress, ...] = (target.address,)
        else:
            addresses = await self._resolve(target)
        for address in addresses:
            problem = address_problem(address)
            if problem is not None and not self.allow.allows(target, address):
                where = f"{address} for {target.name}" if target.address is None else address
                raise Refused(f"points to {problem} ({where}); allow it with {ALLOW_SETTING}")
        return Destination(target, addresses)

    async def _resolve(self, target: Target) -> tuple[IPAddress, ...]:
        try:
            answers = await asyncio.wait_for(
                self.resolver(target.name, target.port), self.resolve_timeout
            )
        except TimeoutError:
            raise LookupFailed(
                f"could not be fetched: {target.name} did not resolve within "
                f"{self.resolve_timeout:g} s"
            ) from None
        except (OSError, UnicodeError):
            raise LookupFailed(f"could not be fetched: {target.name} does not resolve") from None
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                addresses.append(ipaddress.ip_address(answer))
            except ValueError:
                raise Refused(
                    f"resolves to something that is not an address ({answer!r})"
                ) from None
        if not addresses:
            raise LookupFailed(f"could not be fetched: {target.name} does not resolve")
        return tuple(dict.fromkeys(addresses))


def webhook_url_problem(url: str) -> str | None:
    """Why `url` may not receive webhooks, or None. Private and loopback hosts are fine;
    link-local and cloud metadata addresses and names are not."""
    try:
        target = parse_target(url, credentials=True)
    except Refused as exc:
        return exc.reason
    problem = _metadata_target(target)
    return None if problem is None else problem + _NEVER


def _metadata_target(target: Target) -> str | None:
    """ "points to ..." when the target's host is a link-local or metadata address or name."""
    if target.address is not None:
        kind = _metadata_kind(target.address)
        if kind is not None:
            return f"points to {kind} address ({target.address})"
    elif target.name in METADATA_HOSTS:
        return f"points to a cloud metadata host ({target.name})"
    return None


PROXY_SCHEMES = ("http", "https", "socks5")
_PROXY_NEVER = "; a proxy may be on a private host, but never on a link-local or metadata address"


def proxy_server(url: str) -> str:
    """A browser proxy's `scheme://host:port` (http, https or socks5; the port given in ASCII
    digits; no credentials, path, query or fragment). Like webhooks, the host may be private
    or loopback but never link-local or a metadata service. Refused says what is wrong."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise Refused("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise Refused("must be an http://, https:// or socks5:// URL")
    if "@" in parts.netloc:
        raise Refused("carries credentials; give them as proxy.username and proxy.password")
    if parts.path not in ("", "/") or "?" in url or "#" in url:
        raise Refused("must be scheme://host:port only, without a path, query or fragment")
    host, colon, raw_port = parts.netloc.rpartition(":")
    if not colon or not host or "]" in raw_port:
        raise Refused("needs a host and a port (scheme://host:port)")
    port = _ascii_port(raw_port)
    if port is None:
        raise Refused(f"has an invalid port ({raw_port}); give 1-65535 in ASCII digits")
    # The host follows the same rules as any URL the sidecar connects to.
    target = parse_target(f"http://{host}:{port}")
    problem = _metadata_target(target)
    if problem is not None:
        raise Refused(problem + _PROXY_NEVER)
    shown = f"[{target.host}]" if ":" in target.host else target.host
    return f"{scheme}://{shown}:{port}"


async def proxy_host_problem(server: str, resolver: Resolver | None = None) -> str | None:
    """For a proxy named by host name: whether the name resolves to a link-local or
    metadata address now (it may have been fine when configured). A name that does not
    resolve is no problem here: the browser's page load fails and says so."""
    target = parse_target("http://" + server.partition("://")[2])
    if target.address is not None:
        return None
    return await _resolves_to_metadata(target, resolver, _PROXY_NEVER)


def _ascii_port(text: str) -> int | None:
    if not re.fullmatch(r"[0-9]{1,5}", text):
        return None
    port = int(text)
    return port if 1 <= port <= 65535 else None


async def _resolves_to_metadata(
    target: Target, resolver: Resolver | None, never: str
) -> str | None:
    try:
        answers = await asyncio.wait_for(
            (resolver or system_resolver)(target.name, target.port), 10
        )
    except (TimeoutError, OSError, UnicodeError):
        return None
    for answer in answers:
        try:
            kind = _metadata_kind(ipaddress.ip_address(answer))
        except ValueError:
            continue
        if kind is not None:
            return f"resolves to {kind} address ({answer} for {target.name}){never}"
    return None


async def webhook_host_problem(url: str, resolver: Resolver | None = None) -> str | None:
    """`webhook_url_problem`, and for a host name also what it resolves to now: a name may
    be fine when configured and point at a metadata service later. A name that does not
    resolve is no problem here (the delivery fails and is retried)."""
    problem = webhook_url_problem(url)
    if problem is not None:
        return problem
    target = parse_target(url, credentials=True)
    if target.address is not None:
        return None
    return await _resolves_to_metadata(target, resolver, _NEVER)


_NEVER = "; webhooks may go to private hosts, but never to link-local or metadata addresses"


def _metadata_kind(address: IPAddress) -> str | None:
    """ "a link-local" / "a cloud metadata" when `address` is one webhooks never reach."""
    ip = _without_scope(address)
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    if any(ip.version == net.version and ip in net for net in METADATA_NETWORKS):
        return "a link-local" if ip.is_link_local else "a cloud metadata"
    return None


def redact_url(url: str) -> str:
    """`url` with any `user:password@` shown as `***@`; unchanged when it has none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***" if "@" in url else url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _without_scope(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def _raw_host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def _odd_numeric(host: str) -> Refused:
    return Refused(
        f"gives its host in an unusual numeric form ({host}); use a dotted IPv4 address "
        "(203.0.113.7), a bracketed IPv6 address or a host name"
    )
