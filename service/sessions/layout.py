"""Where a session lives on disk: storage/sessions/{workspace_id}/{session_id}/."""

from __future__ import annotations

import shutil
from pathlib import Path

from service.validation import is_valid_id


def session_dir(sessions_root: Path, workspace_id: str, session_id: str) -> Path:
    """The session's directory; refuses any id that could step outside the root."""
    if not (is_valid_id(workspace_id) and is_valid_id(session_id)):
        raise ValueError("refusing an unvalidated id as a path component")
    root = sessions_root.resolve()
    path = (root / workspace_id / session_id).resolve()
    if path.parent.parent != root:
        raise ValueError("session directory escapes the storage root")
    return path


def profile_dir(sessions_root: Path, workspace_id: str, session_id: str) -> Path:
    return session_dir(sessions_root, workspace_id, session_id) / "profile"


def ensure_session_dir(sessions_root: Path, workspace_id: str, session_id: str) -> Path:
    path = session_dir(sessions_root, workspace_id, session_id)
    for directory in (path.parent.parent, path.parent, path):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
    return path


def private_dir(path: Path) -> Path:
    """Create `path` and every missing parent owner-only (0700).

    `Path.mkdir(parents=True, mode=...)` gives the mode to the last component only; the
    parents it makes get the umask's 0755, and they hold messages and logins too.
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
    return path


def remove_tree(path: Path) -> None:
    """Delete a session (or profile) directory; a missing one is already gone."""
    shutil.rmtree(path, ignore_errors=True)
