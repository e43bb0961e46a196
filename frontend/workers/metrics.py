"""Prometheus metrics of the workers, on a registry of the application's own (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.loaded = Gauge("onebox_model_loaded", "1 while the model has a worker", ["model"], registry=r)
        self.resident = Gauge(
            "onebox_model_resident_bytes", "Resident memory of the model's worker tree", ["model"], registry=r
        )
        self.load_seconds = Gauge(
            "onebox_model_load_seconds", "Seconds the last start and load took", ["model"], registry=r
        )
        self.requests = Counter("onebox_requests", "Requests served, by model", ["model"], registry=r)
        self.errors = Counter("onebox_request_errors", "Requests that failed", ["model"], registry=r)
        self.retries = Counter(
            "onebox_request_retries", "Requests served again after their worker left", ["model"], registry=r
        )
        # requests answered with an error before any work, by the limit or rule that refused them
        self.refused = Counter(
            "onebox_requests_refused", "Requests refused at the edge, by limit", ["reason"], registry=r
        )
        self.in_flight = Gauge("onebox_requests_in_flight", "Requests being served", ["model"], registry=r)
        self.ttft = Histogram(
            "onebox_time_to_first_token_seconds",
            "From the generation request to its first token",
            ["model"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.tokens = Counter("onebox_generated_tokens", "Tokens generated, by model", ["model"], registry=r)
        self.evictions = Counter(
            "onebox_evictions", "Workers stopped by the manager, by reason", ["model", "reason"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
