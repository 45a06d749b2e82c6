"""Emergency alerts from CAP 1.2: XML (one <alert>, or an Atom/RSS feed of them) and NWS GeoJSON.

Each current alert becomes an `AlertIn` for the nodes of its regions, plus a weather_safety
document so answers know about it. An Update or Cancel carries the identifier of the alert it
refers to (its oldest CAP <references> entry), so the alert service updates or withdraws that
alert instead of sending a second one. A source is a mirror of what is active: an alert that
leaves the feed (expired or cancelled) has its document deleted.
"""

from __future__ import annotations

import json
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import httpx
from pydantic import ValidationError

from bigevy.connectors.base import (
    Batch,
    SourceError,
    clip,
    document_id,
    fetch_bytes,
    make_document,
    shown_url,
)
from bigevy.connectors.spec import SourceSpec
from bigevy.connectors.xmlsafe import UnsafeXML, parse_xml
from bigevy.http.alerts.protocol import AlertIn
from bigevy.knowledge.records import DocumentIn

log = logging.getLogger(__name__)

CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")
ATOM = "{http://www.w3.org/2005/Atom}"
_SEVERITIES = {"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
_URGENCIES = {"Immediate", "Expected", "Future", "Past", "Unknown"}
_CERTAINTIES = {"Observed", "Likely", "Possible", "Unlikely", "Unknown"}
_MSG_TYPES = {"Alert", "Update", "Cancel"}


@dataclass
class CapMessage:
    """CAP's fields as both formats give them, before they become bigEVY's models."""

    identifier: str
    sender: str
    sent: float | None
    status: str = "Actual"
    msg_type: str = "Alert"
    references: list[tuple[str, str, float | None]] = field(default_factory=list)
    event: str = ""
    severity: str = "Unknown"
    urgency: str = "Unknown"
    certainty: str = "Unknown"
    headline: str = ""
    description: str = ""
    instruction: str = ""
    areas: list[str] = field(default_factory=list)
    geocodes: list[str] = field(default_factory=list)
    expires: float | None = None
    url: str = ""

    def target(self) -> tuple[str, str]:
        """(sender, identifier) of the alert this message is about: for Update and Cancel, the
        oldest one it references, so a chain of updates keeps one name."""
        if self.msg_type in ("Update", "Cancel") and self.references:
            sender, identifier, _ = min(
                self.references, key=lambda r: r[2] if r[2] is not None else float("inf")
            )
            return sender or self.sender, identifier
        return self.sender, self.identifier


class CapConnector:
    """CAP 1.2 alerts from an XML alert, an Atom or RSS feed of alerts, or NWS alerts GeoJSON."""

    def __init__(self, spec: SourceSpec, *, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.clock = clock

    async def fetch(self, client: httpx.AsyncClient) -> Batch:
        assert self.spec.url is not None
        body = await fetch_bytes(client, self.spec, self.spec.url)
        warnings: list[str] = []
        messages = await self._messages(client, body, self.spec.url, warnings)
        return self._batch(messages, warnings)

    async def _messages(
        self, client: httpx.AsyncClient, body: bytes, url: str, warnings: list[str]
    ) -> list[CapMessage]:
        head = body.lstrip()[:1]
        if head in (b"{", b"["):
            return _from_geojson(body, url, warnings)
        if head != b"<":
            raise SourceError(f"{url} is neither XML nor JSON (starts with {body[:20]!r})")
        root = _xml(body, url)
        if _is_cap(root, "alert"):
            return [_from_cap_xml(root, url, self.spec.language)]
        if root.tag in (f"{ATOM}feed", "rss"):
            return await self._from_feed(client, root, url, warnings)
        raise SourceError(f"{url} is not a CAP alert or a feed of them (root <{root.tag}>)")

    async def _from_feed(
        self, client: httpx.AsyncClient, root: ET.Element, url: str, warnings: list[str]
    ) -> list[CapMessage]:
        """Alerts embedded in the feed's entries, else fetched from each entry's link."""
        entries = root.findall(f"{ATOM}entry") or root.findall("channel/item")
        messages: list[CapMessage] = []
        linked = 0
        for entry in entries[: self.spec.max_items]:
            embedded = next((e for e in entry.iter() if _is_cap(e, "alert")), None)
            if embedded is not None:
                messages.append(_from_cap_xml(embedded, url, self.spec.language))
                continue
            link = urljoin(url, _entry_link(entry))
            if link == url:
                warnings.append(f"feed entry without CAP alert or link skipped ({url})")
                continue
            if linked >= self.spec.max_linked:
                warnings.append(f"more than {self.spec.max_linked} linked alerts; rest skipped")
                break
            linked += 1
            alert = _xml(await fetch_bytes(client, self.spec, link), link)
            if not _is_cap(alert, "alert"):
                raise SourceError(f"{link} is not a CAP alert (root <{alert.tag}>)")
            messages.append(_from_cap_xml(alert, link, self.spec.language))
        return messages

    def _batch(self, messages: list[CapMessage], warnings: list[str]) -> Batch:
        now = self.clock()
        chosen: dict[tuple[str, str], CapMessage] = {}
        skipped: dict[str, int] = {}
        for message in messages:
            if message.status != "Actual" or message.msg_type not in _MSG_TYPES:
                why = message.status if message.status != "Actual" else message.msg_type
                skipped[why] = skipped.get(why, 0) + 1
                continue
            key = message.target()
            if _wins(message, chosen.get(key)):
                chosen[key] = message
        for why, count in sorted(skipped.items()):
            warnings.append(f"{count} {why} message(s) skipped")

        batch = Batch(complete=bool(self.spec.mirror), warnings=warnings)
        for message in chosen.values():
            if message.expires is None:
                message.expires = (message.sent or now) + self.spec.alert_lifetime_s
                warnings.append(
                    f"alert {message.identifier} has no expiry: expires "
                    f"{_iso(message.expires)} (sent + {self.spec.alert_lifetime_s:g}s)"
                )
                log.info("source %s: %s", self.spec.name, warnings[-1])
            if message.msg_type != "Cancel" and message.expires <= now:
                continue
            try:
                alert = self._alert(message)
                if message.msg_type == "Cancel":
                    batch.deleted.append(document_id(self.spec.name, alert.identifier))
                else:
                    batch.documents.append(self._document(message, alert))
            except (ValueError, ValidationError) as exc:
                warnings.append(f"alert {message.identifier} skipped: {_first_line(exc)}")
                continue
            batch.alerts.append(alert)
        return batch

    def _alert(self, m: CapMessage) -> AlertIn:
        sender, identifier = m.target()
        return AlertIn(
            identifier=_identifier(identifier),
            sender=clip(sender or "unknown", 200),
            msg_type=m.msg_type,  # type: ignore[arg-type]
            event=clip(m.event or "Alert", 200),
            severity=m.severity if m.severity in _SEVERITIES else "Unknown",  # type: ignore[arg-type]
            urgency=m.urgency if m.urgency in _URGENCIES else "Unknown",  # type: ignore[arg-type]
            certainty=m.certainty if m.certainty in _CERTAINTIES else "Unknown",  # type: ignore[arg-type]
            headline=clip(m.headline or _default_headline(m), 500),
            description=clip(m.description, 10_000),
            instruction=clip(m.instruction, 2_000),
            area=clip("; ".join(m.areas), 1_000),
            regions=self._regions(m),
            sent=m.sent,
            expires=m.expires,
            source_url=clip(m.url, 2_000),
        )

    def _regions(self, m: CapMessage) -> list[str]:
        """Node regions from the configured mapping of area names and geocodes, else default."""
        mapping = {key.casefold(): regions for key, regions in self.spec.regions.items()}
        parts = [p.strip() for area in m.areas for p in area.split(";")] + m.geocodes
        found: list[str] = []
        for part in parts:
            for region in mapping.get(part.casefold(), []):
                if region not in found:
                    found.append(region)
        return found or [self.spec.region]

    def _document(self, m: CapMessage, alert: AlertIn) -> DocumentIn:
        lines = [alert.headline, alert.description, alert.instruction]
        if alert.area:
            lines.append(f"Areas: {alert.area}")
        lines.append(f"In effect until {_iso(alert.expires)}.")
        return make_document(
            id=document_id(self.spec.name, alert.identifier),
            title=alert.headline,
            text="\n\n".join(line.strip() for line in lines if line.strip()),
            category=self.spec.category,
            source=self.spec.source,
            url=alert.source_url,
            region=alert.regions[0] if len(alert.regions) == 1 else self.spec.region,
            language=self.spec.language,
            priority=self.spec.priority
            or ("critical" if alert.severity in ("Extreme", "Severe") else "high"),
        )


def _wins(new: CapMessage, old: CapMessage | None) -> bool:
    """Of two messages about one alert in the same fetch: a Cancel, else the latest sent."""
    if old is None:
        return True
    if (new.msg_type == "Cancel") != (old.msg_type == "Cancel"):
        return new.msg_type == "Cancel"
    return (new.sent or 0.0) >= (old.sent or 0.0)


def _from_geojson(body: bytes, url: str, warnings: list[str]) -> list[CapMessage]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"invalid JSON from {url}: {exc}") from None
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = {"type": "FeatureCollection", "features": [data]}
    if not (
        isinstance(data, dict)
        and data.get("type") == "FeatureCollection"
        and isinstance(data.get("features"), list)
    ):
        raise SourceError(f"{url} is not a GeoJSON FeatureCollection of alerts")
    messages = []
    for n, feature in enumerate(data["features"]):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict) or not (props.get("id") or props.get("identifier")):
            warnings.append(f"feature {n} has no properties.id; skipped")
            continue
        try:
            messages.append(_from_nws(props, feature))
        except (TypeError, ValueError) as exc:
            warnings.append(f"feature {n} ({props.get('id')}) skipped: {exc}")
    if data["features"] and not messages:
        raise SourceError(f"{url}: none of {len(data['features'])} features is a CAP alert")
    return messages


def _from_nws(props: dict[str, Any], feature: dict[str, Any]) -> CapMessage:
    geocode = props.get("geocode") or {}
    references = [
        (str(r.get("sender") or ""), str(r["identifier"]), _time(r.get("sent")))
        for r in props.get("references") or []
        if isinstance(r, dict) and r.get("identifier")
    ]
    return CapMessage(
        identifier=str(props.get("id") or props.get("identifier")),
        sender=str(props.get("sender") or props.get("senderName") or ""),
        sent=_time(props.get("sent")),
        status=str(props.get("status") or "Actual"),
        msg_type=str(props.get("messageType") or "Alert"),
        references=references,
        event=_text(props.get("event")),
        severity=_text(props.get("severity")) or "Unknown",
        urgency=_text(props.get("urgency")) or "Unknown",
        certainty=_text(props.get("certainty")) or "Unknown",
        headline=_text(props.get("headline")),
        description=_text(props.get("description")),
        instruction=_text(props.get("instruction")),
        areas=[_text(props.get("areaDesc"))] if props.get("areaDesc") else [],
        geocodes=[str(v) for values in geocode.values() for v in values or []],
        expires=_time(props.get("expires")) or _time(props.get("ends")),
        url=str(props.get("@id") or feature.get("id") or ""),
    )


def _from_cap_xml(alert: ET.Element, url: str, language: str) -> CapMessage:
    ns = alert.tag[: alert.tag.index("}") + 1]

    def text(parent: ET.Element, name: str) -> str:
        return (parent.findtext(ns + name) or "").strip()

    identifier = text(alert, "identifier")
    if not identifier:
        raise SourceError(f"CAP alert from {url} has no <identifier>")
    infos = alert.findall(ns + "info")
    info = next(
        (i for i in infos if text(i, "language").lower().startswith(language.lower())),
        infos[0] if infos else None,
    )
    message = CapMessage(
        identifier=identifier,
        sender=text(alert, "sender"),
        sent=_time(text(alert, "sent")),
        status=text(alert, "status") or "Actual",
        msg_type=text(alert, "msgType") or "Alert",
        references=_references(text(alert, "references")),
        url=shown_url(url),  # shipped to nodes with the alert: never the feed's API key
    )
    if info is None:
        return message
    message.event = text(info, "event")
    message.severity = text(info, "severity") or "Unknown"
    message.urgency = text(info, "urgency") or "Unknown"
    message.certainty = text(info, "certainty") or "Unknown"
    message.headline = text(info, "headline")
    message.description = text(info, "description")
    message.instruction = text(info, "instruction")
    message.expires = _time(text(info, "expires"))
    message.url = text(info, "web") or url
    for area in info.findall(ns + "area"):
        if text(area, "areaDesc"):
            message.areas.append(text(area, "areaDesc"))
        message.geocodes += [text(g, "value") for g in area.findall(ns + "geocode")]
    return message


def _references(value: str) -> list[tuple[str, str, float | None]]:
    """CAP <references>: space-separated 'sender,identifier,sent' triples."""
    triples = []
    for item in value.split():
        parts = item.split(",")
        if len(parts) == 3:
            triples.append((parts[0], parts[1], _time(parts[2])))
    return triples


def _xml(body: bytes, url: str) -> ET.Element:
    try:
        return parse_xml(body)
    except UnsafeXML as exc:
        raise SourceError(f"{url}: {exc}") from None
    except ValueError as exc:
        raise SourceError(f"{exc} from {url}") from None


def _is_cap(element: ET.Element, name: str) -> bool:
    return any(element.tag == f"{{{ns}}}{name}" for ns in CAP_NAMESPACES)


def _entry_link(entry: ET.Element) -> str:
    """The entry's link to its CAP document: typed application/cap+xml, else alternate."""
    links = entry.findall(f"{ATOM}link")
    for wanted in ("application/cap+xml", None):
        for link in links:
            if (wanted is None or link.get("type") == wanted) and link.get("href"):
                return link.get("href", "")
    return (entry.findtext("link") or "").strip()


def _time(value: Any) -> float | None:
    """ISO 8601 (CAP's and NWS's) as unix seconds; None when absent or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _identifier(value: str) -> str:
    """AlertIn refuses whitespace, ',', '<' and '&' in identifiers; CAP refuses them too."""
    cleaned = "".join("_" if c.isspace() or c in ",<&" else c for c in value)
    return clip(cleaned, 200)


def _default_headline(m: CapMessage) -> str:
    if m.msg_type == "Cancel":
        return f"{m.event} cancelled" if m.event else "Alert cancelled"
    return m.event or "Alert"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
