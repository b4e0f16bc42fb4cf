"""Schema-driven fuzzing with schemathesis against the served OpenAPI document: valid
and invalid requests generated from the request contract never get a 5xx, and every
response matches what the OpenAPI document declares for its status code."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)
from tests.serving.conftest import Server

pytestmark = pytest.mark.slow

EXAMPLES = 60  # per operation and mode: ~250 requests per server, a few seconds


def fuzz(server: Server, mode: GenerationMode) -> Counter[int]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [
        schema["/predict"]["POST"],
        schema["/predict/columns"]["POST"],
        schema["/health"]["GET"],
        schema["/metadata"]["GET"],
    ]
    strategy = st.one_of([op.as_strategy(generation_mode=mode) for op in operations])
    calls: list[int] = []

    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=server.url, timeout=30)
        calls.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text)
        excluded = []
        if mode is GenerationMode.POSITIVE and response.status_code != 200:
            # Schema-valid requests succeed, except columns of unequal lengths, a rule
            # JSON Schema cannot state.
            kinds = {d["type"] for d in response.json()["detail"]}
            assert (response.status_code, kinds) == (422, {"column_length"}), response.text
            excluded.append(positive_data_acceptance)
        if mode is GenerationMode.NEGATIVE and response.status_code == 413:
            # Too many rows is refused with 413 by design (schemathesis expects 4xx
            # codes such as 400/422 here).
            assert response.json()["detail"][0]["type"] == "too_many_rows", response.text
            excluded.append(negative_data_rejection)
        # Status codes, content types and bodies as the OpenAPI document declares them.
        case.validate_response(response, excluded_checks=excluded)

    check()
    return Counter(calls)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_default_model(served: Server, mode: GenerationMode) -> None:
    statuses = fuzz(served, mode)
    assert statuses.total() >= EXAMPLES
    # Valid input was scored, invalid input refused.
    assert statuses[200 if mode is GenerationMode.POSITIVE else 422] > 0


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_mixed_model(mixed_accept: Server, mode: GenerationMode) -> None:
    """Categorical and nullable features: the cases the default data does not have."""
    statuses = fuzz(mixed_accept, mode)
    assert statuses.total() >= EXAMPLES
    assert statuses[200 if mode is GenerationMode.POSITIVE else 422] > 0
