"""The environment Chromium starts with: a TMPDIR too long for its singleton socket (a
Unix socket path holds 107 bytes) would keep every browser from starting, with nothing in
the error to say why; the launcher gives Chromium /tmp instead, and leaves the rest alone."""

from __future__ import annotations

from service.browser.launcher import chromium_env


def test_a_short_tmpdir_is_left_alone() -> None:
    assert chromium_env({"TMPDIR": "/tmp/pytest-of-root/pytest-1", "HOME": "/root"}) is None
    assert chromium_env({"HOME": "/root"}) is None


def test_a_tmpdir_too_long_for_chromiums_socket_becomes_tmp() -> None:
    long = "/tmp/pytest-of-root/pytest-777/popen-gw0/test_demo_completes_and_leaves0"
    env = chromium_env({"TMPDIR": long, "HOME": "/root", "LANG": "C.UTF-8"})
    assert env == {"TMPDIR": "/tmp", "HOME": "/root", "LANG": "C.UTF-8"}
    # The socket's own path under the longest TMPDIR kept still fits.
    kept = "/" + "t" * 60
    assert chromium_env({"TMPDIR": kept}) is None
    assert len(kept + "/.org.chromium.Chromium.XXXXXX/SingletonSocket") <= 107
    assert chromium_env({"TMPDIR": kept + "tt"}) is not None
