"""/docs: the API viewer's page and assets over real HTTP, and the page in a real Chromium,
where "Try it out" is signed in the browser (WebCrypto) and the service accepts it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Request, expect, sync_playwright

from service import apidocs
from service.app import create_app
from service.browser.flags import chromium_args
from service.settings import Settings
from tests.conftest import API_SECRET, base_env
from tests.support.server import ROOT, serve_app
from tests.support.signing import SidecarAuth

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def _settings(tmp: Path, **extra: str) -> Settings:
    return Settings.from_mapping(base_env(tmp / "storage", **extra))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(_settings(tmp_path_factory.mktemp("apidocs")), with_browsers=False)
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args())
        yield chromium
        chromium.close()


def test_the_page_names_only_its_own_assets_under_a_self_only_policy(base: str) -> None:
    response = httpx.get(f"{base}/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    referenced = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert "/docs/assets/swagger-ui-bundle.js" in referenced
    assert "/docs/assets/docs.js" in referenced
    assert all(url.startswith("/") for url in referenced), referenced


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
        ("favicon-32x32.png", "image/png"),
        ("docs.js", "text/javascript; charset=utf-8"),
        ("docs.css", "text/css; charset=utf-8"),
    ],
)
def test_every_asset_is_served_with_its_type(base: str, name: str, content_type: str) -> None:
    response = httpx.get(f"{base}/docs/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    folder, _ = apidocs.ASSETS[name]
    assert response.content == (folder / name).read_bytes()


def test_the_viewer_is_the_version_package_json_pins() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["swagger-ui-dist"]
    installed = json.loads((apidocs.SWAGGER_DIST / "package.json").read_text())["version"]
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", pinned), "pin an exact version"
    assert installed == pinned


@pytest.mark.parametrize(
    "path",
    ["/docs/assets/package.json", "/docs/assets/..%2Fpackage.json", "/docs/assets/index.html"],
)
def test_nothing_else_under_assets_is_served(base: str, path: str) -> None:
    response = httpx.get(base + path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_without_its_files_the_page_says_how_to_install_them(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(apidocs.ASSETS, "swagger-ui-bundle.js", (tmp_path, "text/javascript"))
    for path in ("/docs", "/docs/assets/swagger-ui-bundle.js"):
        response = httpx.get(base + path)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "docs_unavailable"
        assert "npm ci" in error["message"]
        assert error["details"] == {"missing": ["swagger-ui-bundle.js"]}


def test_switched_off_docs_answer_404_and_the_document_stays(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, SIDECAR_API_DOCS="false"), with_browsers=False)
    with serve_app(app) as url:
        assert httpx.get(f"{url}/docs").status_code == 404
        assert httpx.get(f"{url}/docs/assets/docs.js").status_code == 404
        assert httpx.get(f"{url}/openapi.json").status_code == 200


@pytest.fixture
def page(browser: Browser, base: str) -> Iterator[Page]:
    """/docs in a fresh context, with every request it makes and every CSP violation noted."""
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    requested: list[str] = []
    sent: list[str] = []

    def note(request: Request) -> None:
        requested.append(request.url)
        sent.append(f"{request.url} {request.headers} {request.post_data or ''}")

    page.on("request", note)
    page.goto(f"{base}/docs")
    page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/sessions$")).first.wait_for()
    yield page
    assert page.evaluate("window.__violations") == []
    assert [url for url in requested if not url.startswith(base + "/")] == []
    # Only signatures leave the page, never the secret itself.
    assert not [line for line in sent if API_SECRET in line]
    context.close()


def test_the_page_lists_the_operations_of_the_document(page: Page) -> None:
    assert page.locator(
        ".opblock-summary-path", has_text="/api/sessions/{session_id}/start"
    ).count()
    assert page.locator(".opblock-summary-path", has_text="/openapi.json").count() == 1


def test_the_page_signs_as_the_service_does(page: Page) -> None:
    """The worked example of the signing section (and docs/api.md), computed by WebCrypto."""
    signature = page.evaluate(
        """() => waSidecarDocs.sign("s3cret", "1795315066", "post", "/api/sessions",
                                   '{"workspace_id":"acme"}')"""
    )
    assert signature == "4b21af60a3ba89946f68b3bc591f67df09f9efa2e9929d5af28c169c4d06e8c7"


def _try(page: Page, method: str, path: str) -> Locator:
    """Open an operation and press Try it out."""
    block = page.locator(f".opblock-{method}").filter(
        has=page.locator(".opblock-summary-path", has_text=re.compile(f"^{re.escape(path)}$"))
    )
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    return block


def _execute(block: Locator) -> int:
    """Press Execute; the status of the answer, once the page shows it."""
    with block.page.expect_response(lambda r: "/api/" in r.url) as answer:
        block.locator("button.execute").click()
    status = answer.value.status
    expect(block.locator(".live-responses-table tbody .response-col_status")).to_have_text(
        str(status)
    )
    return status


def test_try_it_out_is_refused_unsigned_and_accepted_signed(page: Page, base: str) -> None:
    block = _try(page, "get", "/api/sessions")
    block.locator("input[placeholder='workspace_id']").fill("acme")
    assert _execute(block) == 401

    page.fill("#secret", API_SECRET)
    page.click("#signing button[type=submit]")
    assert page.input_value("#secret") == ""
    stored = page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert API_SECRET not in stored
    assert _execute(block) == 200

    # A write signs its body: a session created through the page is there afterwards.
    create = _try(page, "post", "/api/sessions")
    create.locator("textarea.body-param__text").fill(
        '{"workspace_id": "acme", "session_id": "from-docs"}'
    )
    assert _execute(create) == 201
    listed = httpx.get(f"{base}/api/sessions/from-docs", auth=SidecarAuth(API_SECRET))
    assert listed.status_code == 200
    assert listed.json()["workspace_id"] == "acme"

    page.click("#forget")
    assert _execute(block) == 401
