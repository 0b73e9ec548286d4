"""Every registered method passes the conformance suite (``suite.MethodConformance``) on its micro case."""

from __future__ import annotations

import pytest
from cases import CASES, MicroCase
from suite import MethodConformance

from benchbed.registry import METHODS

pytestmark = pytest.mark.slow


def test_every_registered_method_has_a_micro_case() -> None:
    from benchbed.methods import BUILTIN_METHODS

    # the package's methods (plugins and methods other tests register bring their own cases)
    assert set(BUILTIN_METHODS) <= set(METHODS.names())
    missing = sorted(BUILTIN_METHODS - set(CASES))
    assert not missing, (
        f"registered methods without a conformance case in tests/conformance/cases.py: {missing}"
    )


@pytest.fixture(params=sorted(CASES), scope="class")
def case(request: pytest.FixtureRequest) -> MicroCase:
    return CASES[request.param]


class TestRegisteredMethods(MethodConformance):
    pass
