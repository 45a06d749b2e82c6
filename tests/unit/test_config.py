"""Settings, the Serve configs and the cluster config: what operators edit must be valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from pydantic import ValidationError
from ray.serve._private.build_app import build_app as build_graph

from bigevy.config import Settings
from deployments.app import app_builder, build_app
from tests.support.cluster import REPO


def graph(app: Any) -> dict[str, dict[str, Any]]:
    """Each deployment of an app with the options Serve will run it with."""
    built = build_graph(app, name="bigevy")
    return {
        d.name: {
            "config": d._deployment_config.model_dump(exclude={"user_config"}),
            "actor": d.ray_actor_options,
            "placement": d._replica_config.placement_group_bundles,
            "args": repr(d.init_args),
        }
        for d in built.deployments
    }


def serve_args(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    (application,) = config["applications"]
    assert application["import_path"] == "deployments.app:app_builder"
    return application["args"]


def test_defaults_run_on_a_laptop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings()
    assert settings.data_dir == tmp_path / "bigevy"
    assert settings.default_model == "smollm2-135m-instruct"
    assert [m.engine for m in settings.models] == ["llama_cpp"]
    assert settings.base_url == "http://127.0.0.1:8000"


def test_env_overrides_yaml_overrides_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "bigevy.yaml"
    config.write_text(
        yaml.safe_dump(
            {"port": 9001, "gateway": {"num_replicas": 3}, "data_dir": str(tmp_path / "d")}
        )
    )
    monkeypatch.setenv("BIGEVY_CONFIG", str(config))
    assert Settings().port == 9001 and Settings().gateway.num_replicas == 3
    monkeypatch.setenv("BIGEVY_PORT", "9002")
    monkeypatch.setenv("BIGEVY_GATEWAY__NUM_REPLICAS", "2")
    settings = Settings()
    assert (settings.port, settings.gateway.num_replicas) == (9002, 2)
    assert settings.data_dir == tmp_path / "d"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"default_model": "nope"}, "default_model"),
        ({"models": []}, "models"),
        ({"prot": 1}, "prot"),
        ({"models": [{"id": "a", "source": "x"}, {"id": "a", "source": "y"}]}, "duplicate"),
        ({"models": [{"id": "a", "source": "x", "engine": "tensorrt"}]}, "engine"),
        ({"models": [{"id": "all-minilm-l6-v2", "source": "x"}]}, "also a chat model's"),
        ({"models": [{"id": "a b", "source": "x"}]}, "id"),
        ({"models": [{"id": "a", "source": "x", "sampling": {"max_tokens": 4096}}]}, "max_tokens"),
    ],
)
def test_bad_settings_fail_loudly(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**change)


def test_the_tls_serve_config_is_the_same_app_served_over_https() -> None:
    plain = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    tls = yaml.safe_load((REPO / "serve_config.tls.yaml").read_text())
    assert tls["applications"] == plain["applications"]
    assert {"ssl_certfile", "ssl_keyfile"} <= set(tls["http_options"])
    # Serve's own schema takes them (a typo would be dropped silently otherwise).
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(tls)
    with pytest.raises(ValidationError, match="go together"):
        Settings(tls_certfile="cert.pem")


def test_serve_config_builds_the_same_app_as_bigevy_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    from_up = graph(build_app(Settings()))
    from_serve_config = graph(app_builder(serve_args(REPO / "serve_config.yaml")))
    assert from_up == from_serve_config
    assert set(from_up) == {
        "gateway",
        "embedder",
        "knowledge",
        "sync",
        "connectors",
        "model-smollm2-135m-instruct",
    }
    # Deployments whose handlers never block run them on Serve's own loop.
    same_loop = {
        name
        for name, d in from_up.items()
        if d["actor"].get("runtime_env", {}).get("env_vars", {})
        == {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
    }
    assert same_loop == {"gateway", "knowledge", "model-smollm2-135m-instruct"}


def test_gpu_serve_config_reserves_gpus_without_importing_vllm(tmp_path: Path) -> None:
    args = serve_args(REPO / "serve_config.gpu.yaml")
    settings = Settings(**args, data_dir=tmp_path)
    deployments = graph(app_builder({**args, "data_dir": str(tmp_path)}))
    for spec in settings.models:
        options = deployments[spec.deployment_name]
        if spec.engine == "vllm":
            tp = spec.engine_kwargs.get("tensor_parallel_size", 1)
            gpus = [b for b in options["placement"] if b.get("GPU")]
            assert len(gpus) == tp
            assert all("accelerator_type:A10G" in b for b in gpus)
        else:
            assert options["placement"] is None
    mistral = deployments["model-mistral-7b-instruct"]["config"]["autoscaling_config"]
    assert mistral["max_replicas"] == 4


def test_gpu_models_are_valid_ray_serve_llm_configs(tmp_path: Path) -> None:
    """Checked against Ray's own LLMConfig model (its public import needs vLLM)."""
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig

    from bigevy.serving.vllm import llm_config_dict

    settings = Settings(**serve_args(REPO / "serve_config.gpu.yaml"), data_dir=tmp_path)
    vllm_models = [m for m in settings.models if m.engine == "vllm"]
    assert len(vllm_models) >= 4
    for spec in vllm_models:
        config = LLMConfig(**llm_config_dict(spec))
        assert config.model_id == spec.id
        assert config.engine_kwargs["max_model_len"] == spec.context_length


def test_ray_cluster_yaml_matches_rays_launcher_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((REPO / "ray_cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert any(t["resources"].get("GPU") for t in types.values())
    assert any(not t["resources"].get("GPU") and name != "head" for name, t in types.items())


def test_every_node_of_the_shipped_cluster_starts_ray_with_token_auth() -> None:
    """Whoever reaches a Ray's GCS or dashboard without a token can submit a job, which runs
    next to the signing key and the database."""
    config = yaml.safe_load((REPO / "ray_cluster.yaml").read_text())
    token_path = "$HOME/bigevy/ray_auth_token"
    assert config["file_mounts"]["~/bigevy/ray_auth_token"] == "./ray_auth_token"
    starts = [
        c
        for key in ("head_start_ray_commands", "worker_start_ray_commands")
        for c in config[key]
        if "ray start" in c
    ]
    assert len(starts) == 2
    for command in starts:
        assert "RAY_AUTH_MODE=token" in command and f"RAY_AUTH_TOKEN_PATH={token_path}" in command
        assert "0.0.0.0" not in command  # the dashboard on loopback: reached through SSH
    assert "--dashboard-host=127.0.0.1" in starts[0]
    assert "ray_auth_token" in (REPO / ".gitignore").read_text().split()
