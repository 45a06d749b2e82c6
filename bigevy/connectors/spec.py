"""What a connector fetches and how often: one `SourceSpec` per source, validated when loaded.

Defaults follow how fast each kind of local information goes stale: weather alerts every
5 minutes, transportation every 30, healthcare, utilities and community events hourly,
government every 4 hours, local businesses daily.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bigevy.knowledge.taxonomy import Category, Priority, Source

SourceKind = Literal["cap", "rss", "json", "directory"]

#: Seconds between fetches of a source, by the category of what it brings.
DEFAULT_INTERVALS: dict[Category, float] = {
    Category.weather_safety: 5 * 60,
    Category.emergency: 5 * 60,
    Category.transportation: 30 * 60,
    Category.healthcare: 60 * 60,
    Category.utilities: 60 * 60,
    Category.community: 60 * 60,
    Category.government: 4 * 60 * 60,
    Category.local_business: 24 * 60 * 60,
}
#: For categories not listed above (news, reference, ...).
FALLBACK_INTERVAL_S = 60 * 60

_DEFAULT_CATEGORY: dict[SourceKind, Category] = {
    "cap": Category.weather_safety,
    "rss": Category.news,
}
_DEFAULT_SOURCE: dict[SourceKind, Source] = {
    "cap": Source.weather,
    "rss": Source.news,
    "json": Source.local,
    "directory": Source.local,
}
#: The fields of a knowledge document a JSON item can fill.
DOCUMENT_FIELDS = frozenset(
    ("id", "title", "text", "category", "source", "url", "region", "language", "priority")
)


class _Strict(BaseModel):
    """Unknown keys fail loudly: a typo in a source's config must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class RetryPolicy(_Strict):
    """Exponential backoff after failed fetches, with jitter so sources do not retry in step."""

    base_s: float = Field(30.0, gt=0, description="Wait after the first failure.")
    factor: float = Field(2.0, ge=1.0, description="Each further failure multiplies the wait.")
    max_s: float = Field(900.0, gt=0, description="The wait never exceeds this, jitter included.")
    jitter: float = Field(
        0.25, ge=0.0, le=1.0, description="Waits vary by up to this fraction either way."
    )

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after `failures` consecutive failures (1 = the first)."""
        raw = min(self.max_s, self.base_s * self.factor ** max(0, failures - 1))
        spread = raw * self.jitter * (2.0 * rng.random() - 1.0)
        return max(0.0, min(self.max_s, raw + spread))


class SourceSpec(_Strict):
    """One source: where it is, what kind, how often, and how its items become knowledge."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Unique; prefixes the ids of the documents it brings.",
    )
    kind: SourceKind
    url: str | None = Field(None, description="cap, rss, json: the http(s) URL fetched.")
    path: Path | None = Field(None, description="directory: the folder watched.")
    enabled: bool = True
    interval_s: float | None = Field(
        None, gt=0, description="Seconds between fetches; default by category (see above)."
    )
    category: Category | None = Field(
        None, description="Of its documents; default weather_safety (cap), news (rss)."
    )
    source: Source | None = Field(
        None, description="Of its documents; default weather (cap), news (rss), else local."
    )
    region: str = Field(
        "global", min_length=1, max_length=100, description="Region of its items by default."
    )
    regions: dict[str, list[str]] = Field(
        default_factory=dict,
        description="cap: an areaDesc part or geocode value (SAME, UGC, ...) -> node regions. "
        "Alerts matching none go to `region`.",
    )
    language: str = Field("en", min_length=2, max_length=16)
    priority: Priority | None = Field(
        None, description="Of its documents; default normal (cap: by severity)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Sent with each request (API keys, Accept, ...)."
    )
    follow_hosts: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Hosts besides the url's own that links and redirects may lead to (a "
        "CAP feed linking its alerts on a CDN); never a private or loopback address.",
    )
    timeout_s: float = Field(20.0, gt=0, description="Per HTTP request.")
    max_bytes: int = Field(20 * 2**20, ge=1024, description="Larger responses are refused.")
    max_items: int = Field(1000, ge=1, description="Items taken from one fetch, at most.")
    retry: RetryPolicy = RetryPolicy()
    mirror: bool | None = Field(
        None,
        description="The source lists everything current, so what disappears from it is "
        "deleted from the knowledge base. Default: true for cap and directory.",
    )
    alert_lifetime_s: float = Field(
        6 * 60 * 60, gt=0, description="cap: alerts without an expiry expire this after sent."
    )
    max_linked: int = Field(
        50, ge=0, description="cap: CAP documents fetched from one feed's entry links, at most."
    )
    items_path: str = Field(
        "", description="json: dotted path to the list of items ('data.items'); '' = the root."
    )
    fields: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="json: document field -> dotted path in an item (a list of paths is "
        "joined by blank lines). Needs id and text; constants come from the fields above.",
    )

    @model_validator(mode="after")
    def _complete(self) -> SourceSpec:
        if self.kind == "directory":
            if self.path is None:
                raise ValueError(f"source {self.name!r}: kind 'directory' needs a path")
        elif not self.url or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"source {self.name!r}: kind {self.kind!r} needs an http(s) url")
        if self.kind == "json":
            unknown = sorted(set(self.fields) - DOCUMENT_FIELDS)
            if unknown:
                raise ValueError(
                    f"source {self.name!r}: unknown fields {unknown}; "
                    f"allowed: {sorted(DOCUMENT_FIELDS)}"
                )
            missing = sorted({"id", "text"} - set(self.fields))
            if missing:
                raise ValueError(f"source {self.name!r}: fields must map {missing}")
        if self.category is None:
            self.category = _DEFAULT_CATEGORY.get(self.kind)
            if self.category is None and "category" not in self.fields:
                raise ValueError(f"source {self.name!r}: kind {self.kind!r} needs a category")
        if self.source is None:
            self.source = _DEFAULT_SOURCE[self.kind]
        if self.interval_s is None:
            self.interval_s = DEFAULT_INTERVALS.get(self.category, FALLBACK_INTERVAL_S)  # type: ignore[arg-type]
        if self.mirror is None:
            self.mirror = self.kind in ("cap", "directory")
        return self


class ConnectorsSpec(_Strict):
    """All sources of one bigEVY, and where the runner keeps what it has delivered."""

    sources: list[SourceSpec] = Field(default_factory=list)
    state_file: Path | None = Field(
        None, description="Delivered items and health, kept across restarts; None = memory."
    )
    max_concurrency: int = Field(4, ge=1, description="Sources fetched at once.")
    user_agent: str = Field(
        "bigEVY-connectors/0.1", description="api.weather.gov refuses requests without one."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ConnectorsSpec:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source names: {dupes}")
        return self
