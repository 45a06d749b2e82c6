"""Reading the fleet's Prometheus: the console's overview shows the error replies of every
gateway replica from it (a replica's own counters see only that replica)."""

from __future__ import annotations

from collections import Counter

import httpx

#: Error replies over the last hour, by status (`bigevy_http_errors_total`, as Ray exports it).
ERRORS_LAST_HOUR = "sum by (status) (increase(ray_bigevy_http_errors_total[1h]))"


class PrometheusReader:
    def __init__(self, url: str | None, timeout_s: float = 3.0) -> None:
        self.url = url.rstrip("/") if url else None
        self.timeout_s = timeout_s

    async def errors_last_hour(self) -> dict[str, int] | None:
        """Error replies of the last hour by status class (`5xx`, `429`, `401`, `4xx` for the
        rest); None when no Prometheus is configured or it does not answer (the page says so,
        rather than showing a zero it does not know)."""
        if self.url is None:
            return None
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as http:
                reply = await http.get(
                    f"{self.url}/api/v1/query", params={"query": ERRORS_LAST_HOUR}
                )
                reply.raise_for_status()
                result = reply.json()["data"]["result"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None
        counts: Counter[str] = Counter({"5xx": 0, "429": 0, "401": 0, "4xx": 0})
        for series in result:
            status = series["metric"].get("status", "")
            kind = "5xx" if status.startswith("5") else status if status in counts else "4xx"
            counts[kind] += round(float(series["value"][1]))
        return dict(counts)
