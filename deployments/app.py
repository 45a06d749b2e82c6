"""The bigEVY Serve application graph, built from `Settings`.

`bigevy up` calls `build_app(settings)`; `serve deploy serve_config.yaml` calls
`app_builder(args)` with the config's `args`, which are Settings fields. Both build the same graph.
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve import Application

from bigevy.config import DeploymentSpec, ModelSpec, Settings
from bigevy.metrics import SWITCH as METRICS_SWITCH
from bigevy.serving.vllm import gpu_placement
from deployments.connectors import open_connectors
from deployments.embedder import open_embedder
from deployments.gateway import Gateway
from deployments.hosted import Hosted
from deployments.knowledge import open_knowledge
from deployments.model import open_model
from deployments.sync import open_sync


def passed_env() -> dict[str, str]:
    """Variables of the process building the app that every replica gets as well: a replica
    on another node, or in a Ray started before, does not share this process's environment."""
    return {name: os.environ[name] for name in (METRICS_SWITCH,) if name in os.environ}


def actor_options(num_cpus: float, same_loop: bool) -> dict[str, Any]:
    actor: dict[str, Any] = {"num_cpus": num_cpus}
    env = passed_env()
    if same_loop:
        # Measured on llama.cpp streaming (benchmarks/RESULTS.md): with the handler on a
        # thread of its own, its event loop and Serve's contend for the GIL on every message.
        env["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] = "0"
    if env:
        actor["runtime_env"] = {"env_vars": env}
    return actor


#: How long a replica replaced by a rolling update keeps serving what it has in flight: long
#: enough for a 2048-token generation, and for the gateway, which relays those generations
#: and waits on the other deployments (a knowledge replica busy re-embedding after a model
#: change takes about 20 s to answer, Serve's default grace).
GRACEFUL_SHUTDOWN_S = 60


def deployment_options(name: str, d: DeploymentSpec, same_loop: bool = False) -> dict[str, Any]:
    """Serve options for a deployment of ours that runs on CPUs (or whole GPUs).

    `same_loop`: the deployment's default for `d.same_loop`."""
    options: dict[str, Any] = {
        "name": name,
        "max_ongoing_requests": d.max_ongoing_requests,
        "max_queued_requests": d.max_queued_requests,
        "max_constructor_retry_count": d.max_constructor_retry_count,
        "health_check_period_s": d.health_check_period_s,
        "health_check_timeout_s": d.health_check_timeout_s,
        "graceful_shutdown_timeout_s": GRACEFUL_SHUTDOWN_S,
    }
    if d.autoscaling is not None:
        options["autoscaling_config"] = d.autoscaling
    else:
        options["num_replicas"] = d.num_replicas
    actor = actor_options(d.num_cpus, same_loop if d.same_loop is None else d.same_loop)
    if d.num_gpus:
        actor["num_gpus"] = d.num_gpus
    if d.accelerator_type:
        actor["accelerator_type"] = d.accelerator_type
    options["ray_actor_options"] = actor
    return options


def model_options(spec: ModelSpec) -> dict[str, Any]:
    """Serve options for one registry entry: vLLM models reserve their GPUs as a group."""
    options = deployment_options(spec.deployment_name, spec.deployment, same_loop=True)
    if spec.engine == "vllm":
        options.update(gpu_placement(spec))
        if env := passed_env():
            options["ray_actor_options"]["runtime_env"] = {"env_vars": env}
    return options


def build_app(settings: Settings) -> Application:
    """Every deployment is `Hosted` over the object its `open_*` builds, but the gateway."""
    retry_after = settings.gateway.retry_after_s
    models = {
        spec.id: serve.deployment(Hosted, **model_options(spec)).bind(open_model, spec, retry_after)
        for spec in settings.models
    }
    # The embedder keeps its own handler thread: on Serve's loop it embedded 0.83x raw vs
    # 0.96x (benchmarks/RESULTS.md). Knowledge keeps LanceDB work on threads, off the loop.
    embedder = serve.deployment(
        Hosted, **deployment_options("embedder", settings.embedder.deployment)
    ).bind(open_embedder, settings.embedder)
    knowledge = serve.deployment(
        Hosted, **deployment_options("knowledge", settings.knowledge.deployment, same_loop=True)
    ).bind(open_knowledge, settings, embedder)
    sync = serve.deployment(Hosted, **deployment_options("sync", settings.sync.deployment)).bind(
        open_sync, settings
    )
    connectors = serve.deployment(
        Hosted, name="connectors", num_replicas=1, ray_actor_options=actor_options(0.1, False)
    ).bind(open_connectors, settings, knowledge)
    g = settings.gateway
    gateway = serve.deployment(
        serve.ingress()(Gateway),
        name="gateway",
        num_replicas=g.num_replicas,
        max_ongoing_requests=g.max_ongoing_requests,
        max_queued_requests=g.max_queued_requests,
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
        ray_actor_options=actor_options(g.num_cpus, g.same_loop),
    )
    return gateway.bind(settings, models, embedder, knowledge, sync, connectors)


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve deploy` / `serve run`: `args` are Settings fields."""
    return build_app(Settings(**(args or {})))
