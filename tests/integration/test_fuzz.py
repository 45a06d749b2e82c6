"""schemathesis against the live OpenAPI document of a real Serve app, with an admin key and
with a node key: no 5xx and no response the schema does not describe. A short, bounded run;
benchmarks/fuzz_api.py is the long one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import API, ServeCluster
from tests.support.fuzzing import fuzz, fuzz_settings, node_key

#: Examples per operation here: with the schema's own boundary cases (the coverage phase),
#: about 3,000 requests per key, a couple of minutes.
MAX_EXAMPLES = 3


@pytest.fixture(scope="module")
def keys(serve_cluster: ServeCluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The app, and a key of each kind made before any fuzzing: an admin run may rotate or
    revoke keys, its own included."""
    base_url = serve_cluster.deploy(fuzz_settings(tmp_path_factory.mktemp("data")))
    return {"base_url": base_url, "admin": API.key, "node": node_key(base_url, API.key)}


@pytest.mark.parametrize("role", ["node", "admin"])
def test_no_input_gets_a_5xx_or_an_undocumented_reply(
    keys: dict, role: str, tmp_path: Path
) -> None:
    found = fuzz(keys["base_url"], keys[role], MAX_EXAMPLES, tmp_path)
    assert found.operations >= 40, found
    assert found.clean, "\n".join(found.examples[:20])
