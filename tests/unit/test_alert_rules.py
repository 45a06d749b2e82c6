"""The alert rules in monitoring/prometheus fire when they should and only then, as
Prometheus's own `promtool` evaluates them over scripted series."""

from __future__ import annotations

import shutil
import subprocess

from tests.support.cluster import REPO

RULES = REPO / "monitoring" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([found, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid_prometheus_rules() -> None:
    checked = promtool("check", "rules", "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


def test_each_rule_fires_on_its_scenario_and_not_before() -> None:
    tested = promtool("test", "rules", "rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_shipped_prometheus_config_is_valid_and_loads_the_rules() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
