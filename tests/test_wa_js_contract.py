"""Every WPP name the bridge uses or the sandbox defines is declared by the pinned wa-js.

The declarations are the .d.ts files shipped in node_modules/@wppconnect/wa-js (installed by
the setup scripts at the version package.json pins).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from service.browser.bridge import bridge_script
from tests.support.sandbox import sandbox_process
from tests.support.server import ROOT

DIST = ROOT / "node_modules" / "@wppconnect" / "wa-js" / "dist"

_NAME = r"[A-Za-z_$][\w$]*"


@cache
def declarations() -> dict[str, str]:
    """Every .d.ts file under dist, by relative path."""
    assert DIST.is_dir(), "run ./scripts/test: it installs the pinned @wppconnect/wa-js"
    return {str(p.relative_to(DIST)): p.read_text() for p in DIST.rglob("*.d.ts")}


def top_level_names() -> set[str]:
    index = declarations()["index.d.ts"]
    names = set(re.findall(rf"export \* as ({_NAME})", index))
    for group in re.findall(r"export \{([^}]*)\}", index):
        names |= {n.strip().split(" as ")[-1] for n in group.split(",") if n.strip()}
    names |= set(re.findall(rf"export declare (?:let|const|function) ({_NAME})", index))
    return names


def declared_in_namespace(namespace: str, name: str) -> bool:
    pattern = re.compile(
        rf"export declare (?:function|let|const|class|enum) {re.escape(name)}\b"
        rf"|export \{{[^}}]*\b{re.escape(name)}\b[^}}]*\}}"
    )
    return any(
        pattern.search(text)
        for path, text in declarations().items()
        if path.startswith(f"{namespace}/")
    )


def declared_events() -> set[str]:
    events: set[str] = set()
    for path, text in declarations().items():
        if path.endswith("eventTypes.d.ts"):
            events |= set(re.findall(r"'([a-z_]+\.[a-z_]+)'\s*:", text))
    return events


def is_declared(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] not in top_level_names():
        return False
    if len(parts) == 1:
        return True
    return len(parts) == 2 and declared_in_namespace(parts[0], parts[1])


def bridge_names() -> set[str]:
    return set(re.findall(rf"\bWPP((?:\.{_NAME})+)", bridge_script()))


def test_the_pinned_version_is_installed() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["@wppconnect/wa-js"]
    installed = json.loads((DIST.parent / "package.json").read_text())["version"]
    assert installed == pinned


def test_the_checker_rejects_names_wa_js_does_not_have() -> None:
    assert is_declared("conn.getAuthCode")
    assert not is_declared("conn.getQrCode")
    assert not is_declared("chat.sendMessage")
    assert not is_declared("noSuchNamespace")
    assert "conn.auth_code_change" in declared_events()
    assert "conn.qr_code" not in declared_events()


def test_every_wpp_name_in_the_bridge_is_declared() -> None:
    names = {n.lstrip(".") for n in bridge_names()}
    assert "conn.getAuthCode" in names and "chat.sendTextMessage" in names
    undeclared = sorted(n for n in names if not is_declared(n))
    assert undeclared == [], f"the bridge uses WPP names wa-js does not declare: {undeclared}"


def test_the_page_operations_are_the_bridges_and_use_declared_names() -> None:
    from adapters.base import PAGE_OPS

    script = bridge_script()
    table = script[script.index("const OPS = {") : script.index("const runOp")]
    assert set(re.findall(r"^    '([a-z]+\.[a-z]+)':", table, re.M)) == set(PAGE_OPS)
    used = {n.lstrip(".") for n in re.findall(rf"\bWPP((?:\.{_NAME})+)", table)}
    assert used == {
        "contact.queryExists",
        "contact.getProfilePictureUrl",
        "contact.getStatus",
        "contact.getPnLidEntry",
        "blocklist.blockContact",
        "blocklist.unblockContact",
        "group.getAllGroups",
        "group.create",
        "group.ensureGroup",
        "group.getParticipants",
        "group.addParticipants",
        "group.removeParticipants",
        "group.promoteParticipants",
        "group.demoteParticipants",
        "group.setSubject",
        "group.setDescription",
        "group.getInviteCode",
        "group.revokeInviteCode",
        "group.join",
        "group.leave",
        "chat.get",
        "chat.list",
        "chat.getMessages",
        "chat.markIsRead",
        "chat.archive",
        "chat.unarchive",
        "chat.delete",
        "chat.markIsComposing",
        "chat.markIsRecording",
        "chat.markIsPaused",
        "contact.subscribePresence",
        "chat.sendReactionToMessage",
        "chat.editMessage",
        "chat.deleteMessage",
        "chat.forwardMessages",
        "call.reject",
    }
    assert all(is_declared(name) for name in used)


def test_every_event_the_bridge_listens_to_is_declared() -> None:
    used = set(re.findall(r"WPP\.on\(\s*'([^']+)'", bridge_script()))
    assert {"conn.auth_code_change", "chat.new_message", "chat.msg_ack_change"} <= used
    assert sorted(used - declared_events()) == []


@pytest.mark.browser
async def test_every_name_the_sandbox_page_defines_is_declared(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    from service.browser.flags import chromium_args

    with sandbox_process() as phone:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium", args=chromium_args()
            )
            try:
                page = await browser.new_page()
                await page.goto(phone.base + "/")
                await page.wait_for_function("() => window.WPP && window.WPP.isReady")
                defined: list[str] = await page.evaluate(
                    """() => {
                        const out = [];
                        for (const [key, value] of Object.entries(window.WPP)) {
                            out.push(key);
                            const isNamespace = value && typeof value === 'object'
                                && !Array.isArray(value);
                            if (isNamespace) {
                                for (const inner of Object.keys(value)) out.push(key + '.' + inner);
                            }
                        }
                        return out;
                    }"""
                )
            finally:
                await browser.close()
    assert "conn.getAuthCode" in defined and "chat.sendTextMessage" in defined
    assert {"contact.queryExists", "blocklist.blockContact", "blocklist.all"} <= set(defined)
    undeclared = sorted(n for n in defined if not is_declared(n))
    assert undeclared == [], f"the sandbox defines WPP names wa-js does not declare: {undeclared}"


BUNDLE = DIST / "wppconnect-wa.js"
SANDBOX_PAGE = ROOT / "sandbox" / "static" / "wpp.js"


@cache
def bundle_error_codes() -> set[str]:
    """Every error code the pinned bundle can throw: WPPError codes (constructed directly or
    by the assert* error classes), plus the two non-WPPError codes it uses."""
    text = BUNDLE.read_text()
    codes = set(re.findall(r'WPPError\("([A-Za-z_]+)"', text))
    codes |= set(re.findall(r'super\("([a-z_]+)"', text))
    # `throw "invalid_data_url"` (a bare string) and downloadMedia's plain error object.
    codes |= {c for c in ("invalid_data_url", "media_not_found") if f'"{c}"' in text}
    return codes


def sandbox_thrown_codes() -> set[str]:
    text = SANDBOX_PAGE.read_text()
    return set(re.findall(r"WPPError\(\s*['\"]([A-Za-z_]+)['\"]", text))


def sandbox_emitted_events() -> set[str]:
    text = SANDBOX_PAGE.read_text()
    return set(re.findall(r"\bemit\(\s*['\"]([a-z_]+\.[a-z_]+)['\"]", text))


def test_the_code_checker_knows_real_codes_from_invented_ones() -> None:
    codes = bundle_error_codes()
    assert {"invalid_wid", "chat_not_found", "msg_not_found", "invalid_data_url"} <= codes
    assert not {"device_offline", "not_authenticated", "not_on_whatsapp"} & codes


def test_the_adapter_classifies_only_codes_the_bundle_throws() -> None:
    from adapters.webjs import CLASSIFIED_CODES

    invented = sorted(CLASSIFIED_CODES - bundle_error_codes())
    assert invented == [], f"adapters/webjs.py classifies codes wa-js never throws: {invented}"


def test_the_sandbox_throws_only_codes_the_bundle_throws() -> None:
    thrown = sandbox_thrown_codes()
    assert thrown, "found no WPPError in the sandbox page: is the pattern still right?"
    invented = sorted(thrown - bundle_error_codes())
    assert invented == [], f"the sandbox throws codes wa-js does not have: {invented}"


def test_the_sandbox_emits_only_declared_events() -> None:
    emitted = sandbox_emitted_events()
    assert {"conn.main_ready", "chat.new_message"} <= emitted
    undeclared = sorted(emitted - declared_events())
    assert undeclared == [], f"the sandbox emits events wa-js does not declare: {undeclared}"
