"""Which knowledge a node should hold: its subscription, cut to its storage budget.

Order of filling: `critical` entries first (newest first) while any budget is left; then each
share group gets its share of what remains (best priority, then freshest); then whatever is
still unspent goes to the remaining candidates of any category in the same order. Ties break
on the id, so the same catalogue and subscription always give the same selection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: The seed's budget groups: which categories each share pays for. Other categories (the
#: encyclopaedic ones) are filled from what the groups leave unspent.
SHARE_GROUPS: dict[str, frozenset[str]] = {
    "emergency": frozenset({"emergency"}),
    "weather_safety": frozenset({"weather_safety"}),
    "healthcare": frozenset({"healthcare", "medicine"}),
    "essential_services": frozenset({"government", "utilities", "transportation"}),
    "community": frozenset({"community", "local_business"}),
}
PRIORITY_RANK = {"critical": 0, "high": 1, "normal": 2, "low": 3}
#: Bytes an entry costs on a node beyond its text: the row's metadata and its FTS5 postings
#: (which take about as much again as the text; see `cost`).
ENTRY_OVERHEAD = 256


@dataclass(frozen=True)
class Entry:
    """A live knowledge entry as selection sees it (no text: the catalogue stays small)."""

    id: str
    revision: int
    category: str
    region: str
    language: str
    priority: str
    updated_at: float
    text_bytes: int  # UTF-8 bytes of title + text + url

    @property
    def cost(self) -> int:
        """Estimated bytes on the node: the text stored once, indexed once, plus metadata."""
        return 2 * self.text_bytes + ENTRY_OVERHEAD


@dataclass(frozen=True)
class Subscription:
    categories: frozenset[str]  # empty: every category
    regions: frozenset[str]  # entries of these regions (an entry's "global" always matches)
    languages: frozenset[str]  # empty: every language
    budget_bytes: int
    shares: Mapping[str, float]

    def wants(self, entry: Entry) -> bool:
        return (
            (not self.categories or entry.category in self.categories)
            and (entry.region == "global" or entry.region in self.regions)
            and (not self.languages or entry.language in self.languages)
        )


def order(priority: str, updated_at: float, entry_id: str) -> tuple[int, float, str]:
    """Selection order: best priority, then freshest, then id."""
    return (PRIORITY_RANK.get(priority, 9), -updated_at, entry_id)


def select(
    catalogue: Iterable[Entry], subscription: Subscription, ordered: bool = False
) -> dict[str, Entry]:
    """The entries the node should hold, by id. `ordered`: the catalogue already is in
    `order` (the cached catalogue is), so no sort per node."""
    wanted = (e for e in catalogue if subscription.wants(e))
    if ordered:
        candidates = list(wanted)
    else:
        candidates = sorted(wanted, key=lambda e: order(e.priority, e.updated_at, e.id))
    chosen: dict[str, Entry] = {}
    used = 0

    def fill(entries: Iterable[Entry], allowance: int) -> int:
        """Take entries in order while they fit `allowance` (smaller later ones may still
        fit after a big one did not); what was spent."""
        nonlocal used
        spent = 0
        for entry in entries:
            if entry.id in chosen or spent + entry.cost > allowance:
                continue
            chosen[entry.id] = entry
            spent += entry.cost
        used += spent
        return spent

    fill((e for e in candidates if e.priority == "critical"), subscription.budget_bytes)
    remaining = subscription.budget_bytes - used
    for group, share in subscription.shares.items():
        members = SHARE_GROUPS.get(group, frozenset())
        fill((e for e in candidates if e.category in members), int(share * remaining))
    fill(candidates, subscription.budget_bytes - used)
    return chosen
