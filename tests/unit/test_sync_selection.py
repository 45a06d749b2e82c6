"""What a node is given to hold when not everything fits (plain code, no servers)."""

from __future__ import annotations

from bigevy.config import SyncSpec
from bigevy.sync.selection import Entry, Subscription, select


def entry(
    entry_id: str,
    category: str,
    *,
    kb: int = 1,
    priority: str = "normal",
    updated_at: float = 0.0,
    region: str = "home",
    language: str = "en",
) -> Entry:
    return Entry(entry_id, 1, category, region, language, priority, updated_at, kb * 1000)


def subscription(budget: int, **fields: object) -> Subscription:
    return Subscription(
        categories=frozenset(fields.get("categories", ())),  # type: ignore[arg-type]
        regions=frozenset({"home"}),
        languages=frozenset(fields.get("languages", ())),  # type: ignore[arg-type]
        budget_bytes=budget,
        shares=SyncSpec().default_shares,
    )


def test_critical_entries_fit_first_and_the_budget_is_never_exceeded() -> None:
    entries = [entry(f"news-{i}", "news", kb=5, priority="high", updated_at=i) for i in range(20)]
    entries.append(entry("cholera", "healthcare", kb=5, priority="critical"))
    chosen = select(entries, subscription(31_000))
    assert "cholera" in chosen
    assert sum(e.cost for e in chosen.values()) <= 31_000
    # the freshest news fill what is left
    assert {i for i in chosen if i != "cholera"} == {"news-19", "news-18"}


def test_each_group_gets_its_share_before_the_rest_compete() -> None:
    emergency = [entry(f"em-{i}", "emergency", updated_at=i) for i in range(50)]
    weather = [entry(f"wx-{i}", "weather_safety", updated_at=i) for i in range(50)]
    chosen = select(emergency + weather, subscription(40_000))
    held = [e.category for e in chosen.values()]
    # 40 % and 20 % of the budget first, the unspent 40 % to the best of either after.
    assert held.count("emergency") >= 7 and held.count("weather_safety") >= 3
    assert sum(e.cost for e in chosen.values()) <= 40_000


def test_region_category_and_language_filters_and_a_stable_order() -> None:
    entries = [
        entry("here", "community"),
        entry("everywhere", "community", region="global"),
        entry("elsewhere", "community", region="away"),
        entry("french", "community", language="fr"),
        entry("law", "law"),
    ]
    chosen = select(entries, subscription(10**6, categories={"community"}, languages={"en"}))
    assert set(chosen) == {"here", "everywhere"}
    assert select(reversed(entries), subscription(10**6)) == select(entries, subscription(10**6))
