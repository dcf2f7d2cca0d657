"""Prometheus metrics: the API's requests (counted and timed in-process), and, read from the store at scrape time
so every worker's work is included, deployments and executions by status and operation durations."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from tempano.store import Store

OPERATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreCollector(Collector):
    """Gauges and histograms computed from the runtime store on each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        deployments = GaugeMetricFamily("tempano_deployments", "Deployments by status", labels=["status"])
        for (status,), n in self.store.count_by("deployments", "status"):
            deployments.add_metric([status], n)
        yield deployments
        executions = GaugeMetricFamily(
            "tempano_executions", "Executions by workflow and status", labels=["workflow", "status"]
        )
        for (workflow, status), n in self.store.count_by("executions", "workflow", "status"):
            executions.add_metric([workflow, status], n)
        yield executions
        durations = HistogramMetricFamily(
            "tempano_operation_duration_seconds",
            "Duration of plugin operation attempts, by operation and outcome",
            labels=["operation", "outcome"],
        )
        for operation, outcome, cumulative, count, total in self.store.operation_duration_histogram(OPERATION_BUCKETS):
            buckets = [(str(b), float(c)) for b, c in zip(OPERATION_BUCKETS, cumulative, strict=True)]
            buckets.append(("+Inf", float(count)))
            durations.add_metric([operation, outcome], buckets, total)
        yield durations


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tempano_api_requests",
            "API requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tempano_api_request_duration_seconds",
            "API request latency by method and route",
            ["method", "route"],
            registry=self.registry,
        )
        self._store_collector: StoreCollector | None = None

    def watch_store(self, store: Store) -> None:
        if self._store_collector is None:
            self._store_collector = StoreCollector(store)
            self.registry.register(self._store_collector)

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            # Route templates, not raw paths, keep the label set small.
            path = getattr(route, "path", None) or "unmatched"
            self.requests.labels(request.method, path, str(status)).inc()
            self.latency.labels(request.method, path).observe(time.perf_counter() - started)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)
