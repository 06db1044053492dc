"""Every invalid setting is refused with the exact error text a user will read."""

from __future__ import annotations

import pytest

from tests.model.model_cases import CASES, Case
from viridian.model import settings_from_dict


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_settings_are_refused_with_their_message(case: Case) -> None:
    with pytest.raises(case.error) as caught:
        settings_from_dict({"name": "vm", **case.data})
    assert str(caught.value) == case.message
    assert caught.value.details["setting"] == case.setting


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_limit_below_reserve_names_the_limit_and_the_rule() -> None:
    from viridian.model.validation import limit_below_reserve

    error = limit_below_reserve(0, 20)
    assert error.details["setting"] == "processor.limit_pct"
    assert str(error) == (
        "invalid value 0 for processor.limit_pct; allowed: 20..100 (the limit may not be "
        "below processor.reserve_pct, which is 20; lower the reserve first to go lower)"
    )


def test_names_with_inner_spaces_are_fine() -> None:
    assert settings_from_dict({"name": "web server 1"}).name == "web server 1"
