"""The campaign endpoints' own helpers, without a server: the CSV export's cells."""

from __future__ import annotations

import pytest

from service.api.campaigns import _cell


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(start: str) -> None:
    assert _cell(start + "SUM(A1)") == "'" + start + "SUM(A1)"


def test_other_cells_stay_as_they_are() -> None:
    assert (_cell("5511999990001@c.us"), _cell(None), _cell(3)) == ("5511999990001@c.us", "", "3")
