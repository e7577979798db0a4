"""``lf.Client(url)``: query (and write to) a ledgerflow server from Python, stdlib HTTP only.

The tracking SDK (``lf.log_metric`` ...) writes; this client reads: search and compare runs,
metric histories, lineage, audit timelines, SQL. Every answer is the server's JSON; with
``as_frame=True`` the tabular ones come back as a pandas DataFrame (``pip install ledgerflow[pandas]``).
A server error raises :class:`ServerError` carrying the server's ``error_code`` and ``message``.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ledgerflow.errors import ConfigurationError, LedgerflowError
from ledgerflow.ingest.log.http import AVRO_CONTENT_TYPE, frame_events

__all__ = ["Client", "ServerError", "ServerUnavailableError"]


class ServerError(LedgerflowError):
    """The server answered with an error: ``status`` (HTTP), ``error_code`` and ``message`` as it sent them."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{error_code} (HTTP {status}): {message}")
        self.status, self.error_code, self.message = status, error_code, message
        self.transient = status in (502, 503, 504)


class ServerUnavailableError(LedgerflowError):
    """The server cannot be reached (refused, reset, timed out); retrying may succeed."""

    transient = True


class Page(list):
    """One page of results (a list) and the token of the next page, None on the last one."""

    def __init__(self, items: Iterable[Any], next_page_token: str | None) -> None:
        super().__init__(items)
        self.next_page_token = next_page_token


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("as_frame=True needs pandas, which is not installed: pip install ledgerflow[pandas]") from None
    return pandas


def _runs_frame(runs: Sequence[Mapping[str, Any]]) -> Any:
    """MLflow's search_runs layout: info columns, then metrics.<key>, params.<key>, tags.<key>."""
    rows = []
    for run in runs:
        row = dict(run.get("info", {}))
        data = run.get("data", {})
        for key, point in data.get("metrics", {}).items():
            value = point.get("value") if isinstance(point, Mapping) else point
            row[f"metrics.{key}"] = float(value) if isinstance(value, str) else value  # "NaN" -> nan
        row.update({f"params.{k}": v for k, v in data.get("params", {}).items()})
        row.update({f"tags.{k}": v for k, v in data.get("tags", {}).items()})
        rows.append(row)
    return _pandas().DataFrame(rows)


class Client:
    """A connection to one ledgerflow server, e.g. ``lf.Client("http://127.0.0.1:5000")``.

    ``consistency="read-your-writes"`` (the server's default) makes each read wait until every write
    acknowledged before it is visible; ``"eventual"`` answers at once from whatever is projected.
    Thread-safe: one request at a time per client (use one client per thread for parallel reads).
    """

    def __init__(self, url: str, *, timeout: float = 60.0, actor: str | None = None,
                 consistency: str = "read-your-writes") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"server URL {url!r}: expected http://HOST:PORT or https://HOST:PORT")
        if consistency not in ("read-your-writes", "eventual"):
            raise ConfigurationError(f"consistency must be 'read-your-writes' or 'eventual', not {consistency!r}")
        self.url = url.rstrip("/")
        self.timeout, self.actor, self.consistency = timeout, actor, consistency
        self._https, self._host, self._port = parts.scheme == "https", parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None

    # ---- plumbing ------------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                               context=ssl.create_default_context())
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return self._connection

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            for attempt in (1, 2):
                connection = self._connect()
                try:
                    connection.request(method, self._prefix + path, body=body, headers=headers)
                    response = connection.getresponse()
                    return response.status, response.getheader("content-type") or "", response.read()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                    self.close_connection()  # an idle keep-alive connection the server closed: retry once
                    if attempt == 2:
                        raise ServerUnavailableError(f"{self.url} dropped the connection: {e}") from e
                except (OSError, http.client.HTTPException) as e:
                    self.close_connection()
                    reason = "timed out" if isinstance(e, socket.timeout) else f"{type(e).__name__}: {e}"
                    raise ServerUnavailableError(f"cannot reach the ledgerflow server at {self.url}: {reason}") from e
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, body: bytes | None = None, content_type: str | None = None,
                accept: str | None = None, read: bool = False) -> Any:
        """One API call; returns the decoded JSON (or the raw bytes for a non-JSON answer)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if read and self.consistency != "read-your-writes":
            query["consistency"] = self.consistency
        if query:
            path = f"{path}?{urlencode(query, doseq=True)}"
        headers = {"Accept": accept or "application/json"}
        if self.actor:
            headers["X-Ledgerflow-Actor"] = self.actor
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        status, answer_type, data = self._send(method, path, body, headers)
        is_json = answer_type.split(";")[0].strip() == "application/json"
        if status >= 400:
            try:
                error = json.loads(data)
                raise ServerError(status, str(error["error_code"]), str(error["message"]))
            except (ValueError, KeyError, TypeError):
                raise ServerError(status, "HTTP_ERROR", data[:500].decode("utf-8", "replace")) from None
        return json.loads(data) if is_json else data

    def close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self.close_connection()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- operations ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """/health: {"status": "ok"|"starting", "log", "projected_position"}; does not raise while starting."""
        status, _, data = self._send("GET", "/health", None, {"Accept": "application/json"})
        if status not in (200, 503):
            raise ServerError(status, "HTTP_ERROR", data[:500].decode("utf-8", "replace"))
        return json.loads(data)

    def log_position(self) -> dict[str, Any]:
        """The server log's end position and how far its projection is."""
        return self.request("GET", "/api/v1/log/position")

    def log_events(self, events: Sequence[Any], *, actor: str | None = None) -> dict[str, Any]:
        """Append events, all-or-nothing, and return {"positions", "end_position"} once they are durable.

        ``events``: dicts ``{"type": "RunStarted", "fields": {...}, "envelope": {...}?}`` (the server fills
        the envelope), or :class:`ledgerflow.schemas.Event` objects, sent as Avro exactly as given.
        """
        events = list(events)
        if events and all(hasattr(e, "body") and hasattr(e, "type") for e in events):
            from ledgerflow.schemas import encode

            return self.request("POST", "/api/v1/events", body=frame_events([encode(e) for e in events]),
                                content_type=AVRO_CONTENT_TYPE)
        payload: dict[str, Any] = {"events": events}
        if actor or self.actor:
            payload["actor"] = actor or self.actor
        return self.request("POST", "/api/v1/events", json_body=payload)

    def search_runs(self, experiment_ids: Sequence[str] | str | None = None, filter_string: str = "",
                    run_view_type: str = "ACTIVE_ONLY", max_results: int | None = None,
                    order_by: Sequence[str] | None = None, page_token: str | None = None,
                    as_frame: bool = False) -> Any:
        """Runs matching an MLflow-style filter (``metrics.loss < 0.1 and params.lr = '0.01'``), one page.

        Returns a :class:`Page` of run objects (``.next_page_token``), or a DataFrame with ``as_frame``.
        """
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        body = {"experiment_ids": list(experiment_ids or []), "filter": filter_string,
                "run_view_type": run_view_type, "order_by": list(order_by or [])}
        if max_results is not None:
            body["max_results"] = max_results
        if page_token is not None:
            body["page_token"] = page_token
        answer = self.request("POST", "/api/v1/runs/search", json_body=body, read=True)
        runs = answer.get("runs", [])
        return _runs_frame(runs) if as_frame else Page(runs, answer.get("next_page_token"))

    def search_experiments(self, filter_string: str | None = None, order_by: Sequence[str] | str | None = None,
                           max_results: int | None = None, page_token: str | None = None,
                           view_type: str = "ACTIVE_ONLY", as_frame: bool = False) -> Any:
        """Experiments matching a filter (``name LIKE 'churn%'``), one page; DataFrame with ``as_frame``."""
        if isinstance(order_by, str):
            order_by = [order_by]
        params = {"filter": filter_string, "order_by": list(order_by) if order_by else None,
                  "max_results": max_results, "page_token": page_token, "view_type": view_type}
        answer = self.request("GET", "/api/v1/experiments/search", params=params, read=True)
        experiments = answer.get("experiments", [])
        if as_frame:
            return _pandas().DataFrame(experiments)
        return Page(experiments, answer.get("next_page_token"))

    def get_run(self, run_id: str, as_of: str | None = None) -> dict[str, Any]:
        """One run ({"info", "data", "inputs"}), optionally as it was at ``as_of`` (ISO 8601)."""
        return _unwrap(self._get(f"/api/v1/runs/{_seg(run_id)}", as_of=as_of), "run")

    def get_experiment(self, experiment_id: str, as_of: str | None = None) -> dict[str, Any]:
        return _unwrap(self._get(f"/api/v1/experiments/{_seg(experiment_id)}", as_of=as_of), "experiment")

    def get_registered_model(self, name: str, as_of: str | None = None) -> dict[str, Any]:
        return _unwrap(self._get(f"/api/v1/models/{_seg(name)}", as_of=as_of), "model", "registered_model")

    def get_model_version(self, name: str, version: int | str, as_of: str | None = None) -> dict[str, Any]:
        answer = self._get(f"/api/v1/models/{_seg(name)}/versions/{_seg(str(version))}", as_of=as_of)
        return _unwrap(answer, "model_version", "version")

    def compare_runs(self, run_ids: Sequence[str], metric_keys: Sequence[str] | None = None,
                     max_points: int | None = None) -> dict[str, Any]:
        """Params side by side (with what differs), latest metrics, and metric series aligned by step."""
        body: dict[str, Any] = {"run_ids": list(run_ids)}
        if metric_keys is not None:
            body["metric_keys"] = list(metric_keys)
        if max_points is not None:
            body["max_points"] = max_points
        return self.request("POST", "/api/v1/runs/compare", json_body=body, read=True)

    def metric_history(self, run_id: str, key: str, *, max_points: int | None = None,
                       start_step: int | None = None, end_step: int | None = None, as_frame: bool = False) -> Any:
        """A metric's points (downsampled to ``max_points`` by the server); DataFrame with ``as_frame``."""
        answer = self._get(f"/api/v1/runs/{_seg(run_id)}/metric-history", key=key, max_points=max_points,
                           start_step=start_step, end_step=end_step)
        if not as_frame:
            return answer
        points = next((answer[k] for k in ("points", "metrics", "history") if isinstance(answer.get(k), list)), [])
        frame = _pandas().DataFrame(points)
        if "value" in frame:
            frame["value"] = frame["value"].map(lambda v: float(v) if isinstance(v, str) else v)
        return frame

    def lineage(self, run_id: str | None = None, *, model: str | None = None, version: int | str | None = None,
                as_of: str | None = None) -> dict[str, Any]:
        """The lineage graph of a run, or of a model version (``model=``, ``version=``)."""
        if (run_id is None) == (model is None) or (model is not None and version is None):
            raise ConfigurationError("lineage: pass either run_id, or model and version")
        if run_id is not None:
            return self._get(f"/api/v1/runs/{_seg(run_id)}/lineage", as_of=as_of)
        return self._get(f"/api/v1/models/{_seg(model)}/versions/{_seg(str(version))}/lineage", as_of=as_of)

    def audit(self, entity_type: str, entity_id: str, as_of: str | None = None, *, limit: int | None = None,
              page_token: str | None = None, as_frame: bool = False) -> Any:
        """Who changed what and when: the timeline of an experiment, run, model or model_version ("name/1").

        One page (``limit`` events, ``next_page_token`` in the answer); ``as_frame`` gives the page's events.
        """
        answer = self._get(f"/api/v1/audit/{_seg(entity_type)}/{quote(entity_id, safe='/')}", as_of=as_of,
                           limit=limit, page_token=page_token)
        if not as_frame:
            return answer
        rows = next((answer[k] for k in ("events", "timeline", "entries") if isinstance(answer.get(k), list)), [])
        return _pandas().DataFrame(rows)

    def sql(self, query: str, *, format: str = "json", as_frame: bool = False) -> Any:
        """Run a read-only SQL query on the projected tables (docs/tables.md).

        ``format="json"`` returns the decoded JSON; ``csv``, ``parquet`` and ``arrow`` return the raw
        bytes. ``as_frame=True`` fetches Arrow and returns a pandas DataFrame.
        """
        if as_frame:
            pandas = _pandas()
            import pyarrow

            data = self.request("POST", "/api/v1/sql", json_body={"sql": query, "format": "arrow"}, read=True)
            try:
                table = pyarrow.ipc.open_stream(data).read_all()
            except pyarrow.ArrowInvalid:
                table = pyarrow.ipc.open_file(pyarrow.BufferReader(data)).read_all()
            frame = table.to_pandas()
            assert isinstance(frame, pandas.DataFrame)
            return frame
        return self.request("POST", "/api/v1/sql", json_body={"sql": query, "format": format}, read=True)

    def _get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params, read=True)


def _unwrap(answer: Any, *keys: str) -> Any:
    """The entity inside ``{"run": {...}, "as_of": ...}``-shaped answers (the answer itself otherwise)."""
    if isinstance(answer, dict):
        for key in keys:
            if isinstance(answer.get(key), dict):
                return answer[key]
    return answer


def _seg(value: str) -> str:
    """One URL path segment, escaped."""
    return quote(str(value), safe="")
