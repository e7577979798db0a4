"""schemathesis fuzzes every operation of the OpenAPI schema of a real server: client input never yields a 5xx.

Driven programmatically (one hypothesis run per operation) rather than through schemathesis' pytest
fixture loader, which does not work with this pytest.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck

from ledgerflow.ingest.log import open_log
from tests.projector.workload import standard_workload

EXAMPLES_PER_OPERATION = 25


@pytest.mark.slow
def test_no_input_produces_a_server_error(embedded_server) -> None:
    log = open_log(embedded_server.log_uri)
    log.append_batch(standard_workload(points_per_run=1000).entries())  # something for reads to find
    log.close()
    schema = schemathesis.openapi.from_url(f"{embedded_server.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def check(case) -> None:
            response = case.call(base_url=embedded_server.url, timeout=60)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r:.200} -> "
                                f"{response.status_code} {response.text[:300]}")
            elif response.status_code >= 400:
                assert {"error_code", "message"} <= set(response.json()), response.text[:300]

        check()
    assert operations >= 10, f"only {operations} operations in the OpenAPI schema"
    assert failures == [], "\n".join(failures[:20])
