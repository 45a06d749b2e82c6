"""schemathesis against a live bigEVY: the suite's short run (tests/integration/test_fuzz.py)
and the long one (benchmarks/fuzz_api.py) share this.

schemathesis runs from an environment of its own (`.venv-tools`, made by scripts/setup): the
project's pulls urllib3-future (grafana-client -> niquests), whose .pth file replaces urllib3
at every interpreter start, and schemathesis's requests transport fails on it.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bigevy.config import FleetSpec, RateLimit, Settings

REPO = Path(__file__).resolve().parents[2]
SCHEMATHESIS = REPO / ".venv-tools" / "bin" / "st"
#: What a caller must never see: a 5xx, or a response the schema does not describe.
CHECKS = "not_a_server_error,response_schema_conformance"
#: A stream never ends: schemathesis would wait on it for ever.
EXCLUDED = ("/v1/alerts/stream",)


def fuzz_settings(data_dir: Path) -> Settings:
    """The embedded defaults, with rate limits out of the way: fuzzing a wall of 429s would
    test the rate limiter and nothing behind it."""
    high = RateLimit(per_second=10_000, burst=100_000)
    limits = {role: high for role in FleetSpec().rate_limits}
    return Settings(data_dir=data_dir, fleet=FleetSpec(rate_limits=limits))


@dataclass
class Found:
    operations: int = 0
    requests: int = 0
    server_errors: int = 0
    schema_violations: int = 0
    other: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.server_errors or self.schema_violations or self.other)


def node_key(base_url: str, admin_key: str) -> str:
    """A node enrolled for the run: its own key."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    made = httpx.post(f"{base_url}/v1/enrollment-tokens", json={}, headers=admin)
    assert made.status_code == 201, made.text
    enrolled = httpx.post(
        f"{base_url}/v1/nodes/enroll", json={"token": made.json()["token"], "name": "fuzz"}
    )
    enrolled.raise_for_status()
    return enrolled.json()["node_key"]


def fuzz(base_url: str, key: str, max_examples: int, work: Path, seed: int = 1) -> Found:
    """One schemathesis run over every operation with `key`; what it found."""
    report = work / "junit.xml"
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "120",
        "--seed",
        str(seed),
        "--generation-deterministic",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        *(a for path in EXCLUDED for a in ("--exclude-path", path)),
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=3600, cwd=work
    )
    found = Found()
    if not report.exists():
        found.other = 1
        found.examples.append(run.stdout[-2000:] + run.stderr[-2000:])
        return found
    for case in ET.parse(report).getroot().iter("testcase"):
        found.operations += 1
        for failure in [*case.iter("failure"), *case.iter("error")]:
            text = f"{failure.get('message', '')}\n{failure.text or ''}"
            if "Server error" in text or "status code 5" in text.lower():
                found.server_errors += 1
            elif "schema" in text.lower():
                found.schema_violations += 1
            else:
                found.other += 1
            found.examples.append(f"{case.get('name')}: {text.strip()[:300]}")
    found.requests = _requests(run.stdout)
    return found


def _requests(output: str) -> int:
    """The count of test cases schemathesis reports ("N generated")."""
    for line in output.splitlines():
        if "generated" in line:
            digits = line.strip().split()[0]
            if digits.isdigit():
                return int(digits)
    return 0
