"""schemathesis against the exported spec (``openapi/openapi.json``), over real HTTP.

The server is a real uvicorn on 127.0.0.1 with API keys on (so the auth checks mean
something) and delivery off (the fuzzer invents subscription URLs; nothing may be sent to
them). Every operation gets a bounded number of generated requests, positive and negative.

Checks: no 5xx; every status, content type, header and body matches the spec; data the
spec forbids is refused; a missing or wrong key is refused; 405s name the allowed methods.
``positive_data_acceptance`` is off on purpose: some rules cannot be written in JSON
Schema (a URL must parse, a condition must be valid CEL, ``delay_ms`` is bounded by
``limits.max_delay_ms`` from the config, the SSRF guard), so schema-valid requests may
rightly get a 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from tests.security.live_api import live_api

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "fuzz-admin-key-0123"
EXAMPLES_PER_OPERATION = 15
REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 415, 422, 428, 429, "5xx"]
"""schemathesis' default statuses for a refused schema-violating request."""

config = SchemathesisConfig.from_dict(
    {
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "allow-extra-parameters": False},
        "auth": {"openapi": {"HTTPBearer": {"bearer": ADMIN_KEY}}},
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            # A body over the size limit is refused before its content is looked at.
            "negative_data_rejection": {"expected-statuses": [*REJECTIONS, 413, 431]},
        },
        "suppress-health-check": ["all"],
    }
)
schema = schemathesis.openapi.from_path(ROOT / "openapi" / "openapi.json", config=config)


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """One live server for every operation (state accumulates, as in real use)."""
    with live_api(api_keys=f"{ADMIN_KEY}:admin", auth={"protect_metrics": True}) as api:
        yield api.url


@schema.parametrize()
def test_api_matches_its_spec(case: schemathesis.Case, api_url: str) -> None:
    case.call_and_validate(base_url=api_url)
