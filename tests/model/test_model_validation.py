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
