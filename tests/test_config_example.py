"""config/.env.example documents every setting, with the default the code uses."""

from __future__ import annotations

from dataclasses import fields

from dotenv import dotenv_values

from service.settings import _ENV_NAMES, Settings
from tests.support.server import ROOT


def test_every_setting_is_documented_with_its_default() -> None:
    documented = dotenv_values(ROOT / "config" / ".env.example")
    assert set(documented) == set(_ENV_NAMES.values())
    defaults = Settings.from_mapping({})
    parsed = Settings.from_mapping({k: v for k, v in documented.items() if v})
    for f in fields(Settings):
        assert getattr(parsed, f.name) == getattr(defaults, f.name), _ENV_NAMES[f.name]
