"""The guard against request forgery (issue #13, finding 3): media URLs reach public
destinations only, connected to at the address that was checked; webhook URLs never reach
link-local or metadata hosts, and their credentials are never shown.

Everything runs on 127.0.0.1: names are answered by an injected resolver, and the hosts
tests need to reach are let in through the allow list, as SIDECAR_FETCH_ALLOW would.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from service.app import create_app
from service.errors import ConfigError, ValidationFailed
from service.messaging.media import MediaFetcher
from service.netguard import (
    AllowList,
    Destination,
    LookupFailed,
    NetGuard,
    Refused,
    address_problem,
    parse_target,
    proxy_host_problem,
    proxy_server,
    redact_url,
    webhook_url_problem,
)
from service.settings import Settings
from service.store import NewEvent, SQLiteStore
from tests.conftest import base_env
from tests.support.receivers import python_receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import ROOT, serve_app

PDF = b"%PDF-1.4\n" + b"0" * 2000 + b"\n%%EOF\n"


# --- an injected resolver -------------------------------------------------------------------


@dataclass
class FakeDns:
    """Answers from a table; `later` answers replace the table's from the second lookup on."""

    table: dict[str, list[str]]
    later: dict[str, list[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        seen = host in self.calls
        self.calls.append(host)
        if seen and host in self.later:
            return self.later[host]
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def guard(allow: Sequence[str] = (), **names: list[str]) -> NetGuard:
    table = {name.replace("_", "."): addresses for name, addresses in names.items()}
    return NetGuard(AllowList.parse(allow), FakeDns(table))


async def refusal(g: NetGuard, url: str) -> str:
    with pytest.raises(Refused) as caught:
        await g.check(url)
    return caught.value.reason


# --- address classes and URL forms ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "special-purpose"),
        ("198.18.0.1", "special-purpose"),
        ("0.1.2.3", "special-purpose"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "private"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "special-purpose"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("::127.0.0.1", "reserved"),  # IPv4-compatible, long deprecated
    ],
)
def test_every_non_public_address_class_is_named(address: str, kind: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and kind in problem, (address, problem)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1/x", "a loopback address (127.0.0.1)"),
        ("http://10.0.0.5:8080/x", "a private address (10.0.0.5)"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address (169.254.169.254)"),
        ("http://100.64.1.1/", "a shared (CGNAT) address"),
        ("http://0.0.0.0:3000/", "an unspecified address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://[::1]:3000/", "a loopback address (::1)"),
        ("http://[fe80::1]/", "a link-local address"),
        ("http://[fd00::1]/", "a private address"),
        ("http://[::ffff:127.0.0.1]/", "a loopback address (::ffff:"),
        ("http://[::ffff:a9fe:a9fe]/", "a link-local address"),
    ],
)
async def test_literal_addresses_that_are_not_public_are_refused(url: str, words: str) -> None:
    reason = await refusal(guard(), url)
    assert reason.startswith("points to " + words), reason
    assert "SIDECAR_FETCH_ALLOW" in reason


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one decimal number
        "2852039166",  # 169.254.169.254
        "0x7f.1",
        "0x7f000001",
        "017700000001",
        "0177.0.0.1",
        "127.1",
        "127.0.1",
        "127.0.0.1.",
        "1.2.3.04",
        "example.0x10",
        "foo.123",
    ],
)
async def test_odd_numeric_hosts_are_refused_before_any_lookup(host: str) -> None:
    g = guard()
    reason = await refusal(g, f"http://{host}/x.png")
    assert "unusual numeric form" in reason, reason
    assert g.resolver.calls == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://user:pass@files.example.com/a.png", "credentials"),
        ("http://user@files.example.com/a.png", "credentials"),
        ("http://files.example.com\\@127.0.0.1/a.png", "credentials"),
        ("ftp://files.example.com/a.png", "not an http or https URL"),
        ("file:///etc/passwd", "not an http or https URL"),
        ("gopher://files.example.com:70/_x", "not an http or https URL"),
        ("javascript:alert(1)", "not an http or https URL"),
        ("http:///a.png", "has no host"),
        ("http://files.example.com:0/a.png", "invalid port"),
        ("http://files.example.com:70000/a.png", "invalid port"),
        ("http://[fe80::1%25eth0]/a.png", "IPv6 zone"),
        ("http://files%2eexample.com/a.png", "invalid host name"),
        ("http://a b/", "invalid host name"),
    ],
)
async def test_urls_of_an_unusual_form_are_refused(url: str, words: str) -> None:
    g = guard(files_example_com=["93.184.215.14"])
    assert words in await refusal(g, url)


async def test_every_resolved_address_is_checked() -> None:
    g = guard(
        files_example_com=["93.184.215.14", "2606:4700::1111"],
        mixed_example_com=["93.184.215.14", "10.0.0.5"],
        mapped_example_com=["2606:4700::1111", "::ffff:127.0.0.1"],
        localhost=["127.0.0.1", "::1"],
    )
    destination = await g.check("https://files.example.com/a.png")
    assert [str(a) for a in destination.addresses] == ["93.184.215.14", "2606:4700::1111"]
    reason = await refusal(g, "http://mixed.example.com/a.png")
    assert reason.startswith("points to a private address (10.0.0.5 for mixed.example.com)")
    assert "loopback" in await refusal(g, "http://mapped.example.com/a.png")
    assert "loopback" in await refusal(g, "http://localhost:3000/")


async def test_a_name_that_does_not_resolve_is_a_lookup_failure() -> None:
    g = guard(empty_example_com=[])
    for url in ("http://nowhere.example.com/a.png", "http://empty.example.com/a.png"):
        with pytest.raises(LookupFailed, match="does not resolve"):
            await g.check(url)

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    with pytest.raises(LookupFailed, match="did not resolve within"):
        await NetGuard(resolver=slow, resolve_timeout=0.05).check("http://slow.example.com/")


async def test_the_default_resolver_sees_the_real_system() -> None:
    # "localhost" is in /etc/hosts everywhere: the system resolver must find it loopback.
    assert "loopback" in await refusal(NetGuard(), "http://localhost:9/x.png")


# --- the allow list ---------------------------------------------------------------------------


async def test_the_allow_list_admits_listed_hosts_by_name() -> None:
    g = guard(
        ["Storage.Internal."],
        storage_internal=["10.0.0.5", "fd00::5"],
        other_internal=["10.0.0.5"],
    )
    destination = await g.check("http://storage.internal:9000/bucket/a.png")
    assert [str(a) for a in destination.addresses] == ["10.0.0.5", "fd00::5"]
    await g.check("http://STORAGE.internal./a.png")
    # The name is allowed, not its address: another name there stays refused.
    assert "private address (10.0.0.5" in await refusal(g, "http://other.internal/a.png")
    assert "private address (10.0.0.5)" in await refusal(g, "http://10.0.0.5/a.png")


async def test_the_allow_list_admits_networks_by_cidr() -> None:
    g = guard(
        ["10.20.0.0/16", "127.0.0.1", "fd00::/8"],
        laravel_lan=["10.20.3.4"],
        half_lan=["10.20.3.4", "10.21.0.1"],
        v6_lan=["fd12::1"],
        mapped_lan=["::ffff:10.20.3.5"],
    )
    await g.check("http://laravel.lan/storage/a.png")
    await g.check("http://10.20.255.255/a.png")
    await g.check("http://127.0.0.1:8080/a.png")
    await g.check("http://v6.lan/a.png")
    await g.check("http://mapped.lan/a.png")  # the IPv4 inside counts
    assert "10.21.0.1 for half.lan" in await refusal(g, "http://half.lan/a.png")
    assert "127.0.0.2" in await refusal(g, "http://127.0.0.2/a.png")
    assert "169.254.169.254" in await refusal(g, "http://169.254.169.254/")


def test_allow_entries_are_validated_as_a_setting() -> None:
    settings = Settings.from_mapping({"SIDECAR_FETCH_ALLOW": " storage.internal , 10.0.0.0/8,"})
    assert settings.fetch_allow == ("storage.internal", "10.0.0.0/8")
    assert Settings.from_mapping({}).fetch_allow == ()
    allow = AllowList.parse(settings.fetch_allow)
    assert allow.hosts == {"storage.internal"}
    assert [str(n) for n in allow.networks] == ["10.0.0.0/8"]
    for bad in ("10.0.0.0/33", "2130706433", "0x7f.1", "bad host", "http://x/"):
        with pytest.raises(ConfigError, match="SIDECAR_FETCH_ALLOW"):
            Settings.from_mapping({"SIDECAR_FETCH_ALLOW": bad})


# --- the pinned connection --------------------------------------------------------------------


def test_the_request_goes_to_the_checked_address_with_the_real_name() -> None:
    target = parse_target("https://Files.Example.com:8443/a/b.png?x=1#frag")
    v4, v6 = ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("2606:4700::1111")
    destination = Destination(target, (v4, v6))
    url, headers, extensions = destination.request_target(v6)
    assert str(url) == "https://[2606:4700::1111]:8443/a/b.png?x=1"
    assert headers == {"Host": "files.example.com:8443"}
    assert extensions == {"sni_hostname": "files.example.com"}
    plain = Destination(parse_target("http://a.example/x"), (v4,))
    url, headers, extensions = plain.request_target(v4)
    assert (str(url), headers, extensions) == ("http://93.184.215.14/x", {"Host": "a.example"}, {})
    with pytest.raises(ValueError, match="not checked"):
        destination.request_target(ipaddress.ip_address("127.0.0.1"))


@dataclass
class FileHost:
    base: str
    port: int
    hits: list[tuple[str, str]]  # (path, Host header)


def file_host_app(hits: list[tuple[str, str]]) -> Starlette:
    async def record(request: Request) -> None:
        hits.append((request.url.path, request.headers.get("host", "")))

    async def doc(request: Request) -> Response:
        await record(request)
        return Response(PDF, media_type="application/pdf")

    async def secret(request: Request) -> Response:
        await record(request)
        return Response(b"internal secret", media_type="text/plain")

    async def redirect(request: Request) -> Response:
        await record(request)
        where = request.query_params["to"].replace("PORT", str(request.url.port))
        return RedirectResponse(where, status_code=302)

    async def loop(request: Request) -> Response:
        await record(request)
        return RedirectResponse("/loop", status_code=307)

    return Starlette(
        routes=[
            Route("/doc.pdf", doc),
            Route("/secret", secret),
            Route("/redirect", redirect),
            Route("/loop", loop),
        ]
    )


@pytest.fixture
def file_host() -> Iterator[FileHost]:
    hits: list[tuple[str, str]] = []
    with serve_app(file_host_app(hits)) as base:
        yield FileHost(base, int(base.rsplit(":", 1)[1]), hits)


def fetcher(g: NetGuard, ssl_context: ssl.SSLContext | None = None) -> MediaFetcher:
    return MediaFetcher(g, 1024 * 1024, 5, ssl_context=ssl_context)


async def media_error(f: MediaFetcher, url: str) -> str:
    with pytest.raises(ValidationFailed) as caught:
        await f.fetch(url)
    assert caught.value.details == {"field": "media.url"}
    return caught.value.message


async def test_a_refused_url_is_a_media_url_422_and_nothing_is_fetched(file_host: FileHost) -> None:
    f = fetcher(guard())
    message = await media_error(f, f"{file_host.base}/doc.pdf")
    assert message == (
        "media.url: points to a loopback address (127.0.0.1); allow it with SIDECAR_FETCH_ALLOW"
    )
    message = await media_error(f, "http://10.0.0.5/a.png")
    assert "private address (10.0.0.5)" in message
    message = await media_error(f, f"http://2130706433:{file_host.port}/doc.pdf")
    assert "unusual numeric form" in message
    message = await media_error(f, f"http://user:pw@127.0.0.1:{file_host.port}/doc.pdf")
    assert "credentials" in message and "pw" not in message
    assert file_host.hits == []


async def test_an_allowed_host_is_fetched_at_the_pinned_address(file_host: FileHost) -> None:
    # The first answer is checked and used; a later, different answer (DNS rebinding) must
    # not matter, and the name must never go to the system resolver (.invalid never resolves).
    dns = FakeDns({"files.invalid": ["127.0.0.1"]}, later={"files.invalid": ["127.0.0.2"]})
    f = fetcher(NetGuard(AllowList.parse(["127.0.0.1/32"]), dns))
    body, mimetype = await f.fetch(f"http://files.invalid:{file_host.port}/doc.pdf")
    assert (body, mimetype) == (PDF, "application/pdf")
    assert dns.calls == ["files.invalid"]
    assert file_host.hits == [("/doc.pdf", f"files.invalid:{file_host.port}")]
    # Each fetch checks again: now the name answers 127.0.0.2, which is not allowed.
    message = await media_error(f, f"http://files.invalid:{file_host.port}/doc.pdf")
    assert "loopback address (127.0.0.2 for files.invalid)" in message
    assert len(file_host.hits) == 1


async def test_a_redirect_to_a_host_that_is_not_allowed_is_refused(file_host: FileHost) -> None:
    dns = FakeDns({"files.example.test": ["127.0.0.1"]})
    f = fetcher(NetGuard(AllowList.parse(["files.example.test"]), dns))
    base = f"http://files.example.test:{file_host.port}"
    message = await media_error(f, f"{base}/redirect?to=http://127.0.0.1:PORT/secret")
    assert message.startswith(
        f"media.url: was redirected to http://127.0.0.1:{file_host.port}/secret, which points "
        "to a loopback address (127.0.0.1)"
    ), message
    for to, words in (
        ("http://169.254.169.254/latest/meta-data/", "link-local address (169.254.169.254)"),
        ("http://2130706433:PORT/secret", "unusual numeric form"),
        ("http://u:p@files.example.test:PORT/secret", "***@files.example.test"),
        ("ftp://files.example.test/secret", "not an http or https URL"),
        ("http://elsewhere.example.test/secret", "does not resolve"),
        ("http://[::1/secret", "could not be fetched"),
    ):
        assert words in await media_error(f, f"{base}/redirect?to={quote(to, safe='')}")
    assert "/secret" not in [path for path, _ in file_host.hits]
    # A redirect that stays on the allowed host is followed, and checked again on the way.
    body, _ = await f.fetch(f"{base}/redirect?to=/doc.pdf")
    assert body == PDF
    assert "more than 5" in await media_error(f, f"{base}/loop")
    assert [path for path, _ in file_host.hits].count("/loop") == 6
    assert all(host == f"files.example.test:{file_host.port}" for _, host in file_host.hits)


# --- https with a pinned address --------------------------------------------------------------


@dataclass
class TlsHost:
    port: int
    ca: Path
    sni: list[str | None]
    hosts: list[str]


def make_certificates(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netguard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@contextmanager
def tls_file_host(tmp: Path, name: str) -> Iterator[TlsHost]:
    """An https server on 127.0.0.1 whose certificate names only `name`; it records the
    SNI of each handshake and the Host of each request."""
    ca, cert, key = make_certificates(tmp, name)
    sni: list[str | None] = []
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers.get("Host", ""))
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(PDF)))
            self.end_headers()
            self.wfile.write(PDF)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, server_name, ctx: sni.append(server_name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsHost(server.server_address[1], ca, sni, hosts)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


async def test_https_to_a_pinned_address_verifies_the_certificate_for_the_name(
    tmp_path: Path,
) -> None:
    with tls_file_host(tmp_path, "files.example.test") as host:
        trust = ssl.create_default_context(cafile=str(host.ca))
        dns = FakeDns({"files.example.test": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
        allow = AllowList.parse(["files.example.test", "other.example.test"])
        f = fetcher(NetGuard(allow, dns), ssl_context=trust)
        body, mimetype = await f.fetch(f"https://files.example.test:{host.port}/doc.pdf")
        assert (body, mimetype) == (PDF, "application/pdf")
        assert host.sni == ["files.example.test"]
        assert host.hosts == [f"files.example.test:{host.port}"]
        # Same address, another name: the certificate does not name it, so no fetch.
        message = await media_error(f, f"https://other.example.test:{host.port}/doc.pdf")
        assert message == "media.url: could not be fetched: its TLS certificate did not verify"
        assert host.hosts == [f"files.example.test:{host.port}"]


# --- webhook URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.1.1:8080/hooks",
        "http://[fe80::1]/hooks",
        "http://[::ffff:169.254.169.254]/hooks",
        "http://[fd00:ec2::254]/latest",
        "http://100.100.100.200/latest",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://Metadata.Google.Internal./computeMetadata/v1/",
        "http://metadata/computeMetadata/v1/",
        "http://instance-data/latest",
        "http://2852039166/latest",  # 169.254.169.254 as one number
        "http://0xa9.0xfe.0xa9.0xfe/latest",
    ],
)
def test_webhook_urls_never_go_to_link_local_or_metadata_hosts(url: str) -> None:
    assert webhook_url_problem(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/webhooks/whatsapp",
        "http://10.0.0.5/webhooks/whatsapp",
        "http://laravel.internal/hooks",
        "https://hook-user:hook-pass@crm.example.test/hooks?tenant=café",
        "http://[fd12::5]:8080/hooks",
    ],
)
def test_webhook_urls_may_go_to_private_hosts(url: str) -> None:
    assert webhook_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254:80",
        "socks5://[fe80::1]:1080",
        "http://[::ffff:169.254.169.254]:3128",
        "https://[fd00:ec2::254]:443",
        "http://100.100.100.200:80",
        "http://Metadata.Google.Internal.:80",
        "socks5://instance-data:1080",
        "http://2852039166:80",
    ],
)
def test_proxies_are_never_on_link_local_or_metadata_hosts(url: str) -> None:
    with pytest.raises(Refused, match=r"never on a link-local or metadata address|numeric"):
        proxy_server(url)


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("http://127.0.0.1:3128", "http://127.0.0.1:3128"),
        ("HTTP://Proxy.LAN:3128/", "http://proxy.lan:3128"),
        ("socks5://10.0.0.5:1080", "socks5://10.0.0.5:1080"),
        ("https://[FD12::5]:08443", "https://[fd12::5]:8443"),
    ],
)
def test_proxies_may_be_on_private_hosts(url: str, server: str) -> None:
    assert proxy_server(url) == server


async def test_a_proxy_name_that_resolves_to_a_metadata_address_is_caught_at_launch() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"proxy.lan": ["10.0.0.5"], "sneaky.lan": ["10.0.0.6", "169.254.169.254"]}[host]

    assert await proxy_host_problem("http://proxy.lan:3128", resolver) is None
    problem = await proxy_host_problem("socks5://sneaky.lan:1080", resolver)
    assert problem is not None and "169.254.169.254 for sneaky.lan" in problem
    assert await proxy_host_problem("http://10.0.0.7:3128", resolver) is None


def test_redaction_hides_credentials_only() -> None:
    assert redact_url("https://u:p%40ss@crm.test:8443/h?x=1") == "https://***@crm.test:8443/h?x=1"
    assert redact_url("http://token@crm.test/h") == "http://***@crm.test/h"
    assert redact_url("http://crm.test/h?email=a@b.c") == "http://crm.test/h?email=a@b.c"
    assert redact_url("http://crm.test/a@b") == "http://crm.test/a@b"


def test_webhook_url_rules_through_the_api(api: httpx.Client) -> None:
    def error(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 422, response.text
        body: dict[str, Any] = response.json()["error"]
        return body

    for n, url in enumerate(
        (
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/hooks",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://2852039166/hooks",
        )
    ):
        body = {"workspace_id": "acme", "session_id": f"bad-{n}", "start": False}
        refused = error(api.post("/api/sessions", json={**body, "webhook_url": url}))
        assert refused["details"] == {"field": "webhook_url"}
        assert refused["message"].startswith("webhook_url: ")
    assert api.get("/api/sessions").json()["data"] == []

    private = "http://10.0.0.5:8080/webhooks/whatsapp"
    created = api.post(
        "/api/sessions",
        json={"workspace_id": "acme", "session_id": "ok-1", "start": False, "webhook_url": private},
    )
    assert created.status_code == 201, created.text
    assert created.json()["webhook_url"] == private
    patched = api.patch("/api/sessions/ok-1", json={"webhook_url": "http://169.254.169.254/"})
    assert "link-local" in error(patched)["message"]
    assert api.get("/api/sessions/ok-1").json()["webhook_url"] == private
    loopback = api.patch("/api/sessions/ok-1", json={"webhook_url": "http://127.0.0.1:9/h"})
    assert loopback.status_code == 200 and loopback.json()["webhook_url"] == "http://127.0.0.1:9/h"


def test_webhook_credentials_are_kept_for_delivery_and_never_shown(
    api: httpx.Client, settings: Settings
) -> None:
    with python_receiver() as receiver:
        secret_url = receiver.url.replace("http://", "http://hook-user:s3cret-pw@")
        shown = receiver.url.replace("http://", "http://***@")
        created = api.post(
            "/api/sessions",
            json={
                "workspace_id": "acme",
                "session_id": "cred-1",
                "start": False,
                "webhook_url": secret_url,
            },
        )
        assert created.status_code == 201, created.text
        answers = [
            created,
            api.get("/api/sessions/cred-1"),
            api.get("/api/sessions"),
            api.patch("/api/sessions/cred-1", json={"webhook_url": secret_url}),
        ]
        for answer in answers:
            assert answer.status_code in (200, 201) and "s3cret-pw" not in answer.text
        assert created.json()["webhook_url"] == shown

        async def emit() -> None:
            store = SQLiteStore(settings.store_url)
            await store.open()
            try:
                await store.update_session("cred-1", {}, [NewEvent("test_event", {"n": 1})])
            finally:
                await store.close()

        asyncio.run(emit())
        eventually(lambda: receiver.requests, 30, "the webhook delivery")
        token = base64.b64encode(b"hook-user:s3cret-pw").decode()
        assert receiver.requests[0]["headers"]["authorization"] == f"Basic {token}"

        def delivered() -> dict[str, Any] | None:
            answer = api.get("/api/webhooks/deliveries", params={"session_id": "cred-1"})
            assert "s3cret-pw" not in answer.text
            rows: list[dict[str, Any]] = answer.json()["data"]
            return rows[0] if rows and rows[0]["status"] == "delivered" else None

        assert eventually(delivered, 30, "the delivery to be recorded")["url"] == shown


def test_a_metadata_webhook_url_setting_stops_the_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    bad = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(ConfigError, match=r"SIDECAR_WEBHOOK_URL points to a link-local address"):
        create_app(make_settings(SIDECAR_WEBHOOK_URL=bad), with_browsers=False)
    env = {
        "PATH": "/usr/bin:/bin",
        **base_env(tmp_path / "storage", SIDECAR_WEBHOOK_URL="http://metadata.google.internal/"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "SIDECAR_WEBHOOK_URL points to a cloud metadata host" in done.stderr
    # A private Laravel is fine.
    create_app(make_settings(SIDECAR_WEBHOOK_URL="http://10.0.0.5/hooks"), with_browsers=False)


# --- end to end: a real send on the sandbox -------------------------------------------------


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.mark.browser
def test_a_send_with_a_private_media_url_is_a_422_and_nothing_is_fetched(
    tmp_path: Path, phone: Phone, file_host: FileHost
) -> None:
    from tests.test_messaging import connect, start_sidecar

    car = start_sidecar(tmp_path / "storage", phone, SIDECAR_FETCH_ALLOW="")
    try:
        connect(car, phone)
        for url, words in (
            (f"{file_host.base}/doc.pdf", "loopback address (127.0.0.1)"),
            ("http://169.254.169.254/latest/meta-data/", "link-local address (169.254.169.254)"),
            (f"http://2130706433:{file_host.port}/doc.pdf", "unusual numeric form"),
            (f"http://u:p@127.0.0.1:{file_host.port}/doc.pdf", "credentials"),
        ):
            answer = car.api.post(
                "/api/sessions/m1/messages",
                json={"to": "5511988880002", "type": "document", "media": {"url": url}},
            )
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["details"] == {"field": "media.url"}
            assert words in error["message"]
        assert file_host.hits == []
        assert phone.sent("5511999990001") == []
    finally:
        car.close()
