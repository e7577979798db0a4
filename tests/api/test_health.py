"""/health and /metrics on a real server."""

from __future__ import annotations


def test_health_answers_ok_with_the_projected_position(server) -> None:
    with server.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_metrics_are_prometheus_text(server) -> None:
    with server.client() as client:
        text = client.get("/metrics").text
    for name in ("ledgerflow_ingested_points_total", "ledgerflow_projector_lag_offsets", "ledgerflow_projector_lag_events",
                 "ledgerflow_projector_lag_seconds", "ledgerflow_dead_letters"):
        assert f"\n{name} " in "\n" + text


def test_unknown_endpoints_get_the_error_shape(server) -> None:
    with server.client() as client:
        response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert set(response.json()) == {"error_code", "message"}
