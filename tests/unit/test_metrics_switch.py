"""`BIGEVY_METRICS=off`: bigEVY records no metric and makes no Ray metric (no Ray started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ray.serve._private.build_app import build_app as build_graph
from ray.util import metrics as ray_metrics

from bigevy import metrics
from bigevy.config import Settings
from bigevy.http.evy.protocol import EvyAnswer
from bigevy.http.evy.serving import _count
from deployments.app import build_app

MADE: list[str] = []


class _Recorded:
    """Stands for a Ray metric: notes that one was made, records nothing."""

    def __init__(self, name: str, **options: Any) -> None:
        MADE.append(name)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        pass

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        pass

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        pass


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Ray metrics made while the test runs (fresh bigEVY metrics)."""
    MADE.clear()
    for kind in ("Counter", "Gauge", "Histogram"):
        monkeypatch.setattr(ray_metrics, kind, _Recorded)
    for name in ("ESCALATIONS", "ESCALATION_SECONDS"):
        fresh = getattr(metrics, name)
        monkeypatch.setattr(metrics, name, metrics._Metric(fresh.kind, fresh.name, **fresh.options))
    return MADE


def answer() -> EvyAnswer:
    return EvyAnswer.model_validate(
        {
            "sms": "Boil it for one minute.",
            "answer": "Boil it for one minute.",
            "answer_mode": "extractive",
            "model": "knowledge-base",
            "sms_segments": 1,
            "sms_encoding": "GSM-7",
            "citations": [],
            "triage": {"emergency": False},
            "timings": {"retrieval_ms": 4.0, "compose_ms": 1.0, "total_ms": 6.0},
        }
    )


def test_off_makes_no_ray_metric(monkeypatch: pytest.MonkeyPatch, made: list[str]) -> None:
    monkeypatch.setenv(metrics.SWITCH, "off")
    _count(answer(), "KE", "en")  # the escalation path: a counter and three stage timings
    metric = metrics._Metric("Gauge", "bigevy_test_gauge")
    metric.set(3.0, tags={"measure": "x"})
    metric.inc()
    metric.observe(1.0)
    assert made == []
    assert metrics.ESCALATIONS._made is metrics._OFF


def test_on_by_default_makes_each_ray_metric_once(
    monkeypatch: pytest.MonkeyPatch, made: list[str]
) -> None:
    monkeypatch.delenv(metrics.SWITCH, raising=False)
    _count(answer(), "KE", "en")
    _count(answer(), "KE", "en")
    assert made == ["bigevy_escalations_total", "bigevy_escalation_seconds"]


def test_a_wrong_value_is_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(metrics.SWITCH, "false")
    with pytest.raises(ValueError, match="BIGEVY_METRICS must be 'on' or 'off'"):
        metrics.recording()


def test_every_replica_gets_the_switch_of_the_process_building_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(metrics.SWITCH, "off")
    built = build_graph(build_app(Settings(data_dir=tmp_path)), name="bigevy")
    passed = {
        d.name: d.ray_actor_options.get("runtime_env", {}).get("env_vars", {}).get(metrics.SWITCH)
        for d in built.deployments
    }
    assert len(passed) >= 6 and set(passed.values()) == {"off"}, passed
