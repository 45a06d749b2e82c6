"""Property-based fuzzing of the live API with schemathesis: every operation of bigEVY's own
OpenAPI document, with an admin key and with a node key, on the embedded defaults. Counts
what a caller must never see: a 5xx, or a response its schema does not describe.

    .venv/bin/python benchmarks/fuzz_api.py [--max-examples N]

The suite runs a short, bounded version of the same (tests/integration/test_fuzz.py); this
is the long run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local_serve import HEADERS, start_serve

from tests.support.fuzzing import fuzz, fuzz_settings, node_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=50)
    args = parser.parse_args()
    settings = fuzz_settings(Path(tempfile.mkdtemp(prefix="bigevy-fuzz-")))
    base_url = start_serve(settings)
    admin = HEADERS["Authorization"].removeprefix("Bearer ")
    print("| key | operations | requests | 5xx | schema violations | other failures |")
    print("| --- | --- | --- | --- | --- | --- |")
    # Both keys first: an admin run may rotate or revoke keys, its own included.
    for role, key in (("node", node_key(base_url, admin)), ("admin", admin)):
        found = fuzz(base_url, key, args.max_examples, Path(tempfile.mkdtemp()))
        print(
            f"| {role} | {found.operations} | {found.requests} | {found.server_errors} | "
            f"{found.schema_violations} | {found.other} |",
            flush=True,
        )
        for line in found.examples[:10]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
