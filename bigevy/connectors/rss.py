"""News from RSS and Atom feeds (feedparser reads both, and their many dialects).

Each entry becomes one document whose id comes from the entry's id (else its link, else its
title), so the same story keeps its document when the feed is fetched again. Feeds roll old
entries off while the news stays true, so an entry leaving the feed is not a deletion.
"""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser
from typing import Any

import feedparser
import httpx

from bigevy.connectors.base import Batch, SourceError, document_id, fetch_bytes, make_document
from bigevy.connectors.spec import SourceSpec
from bigevy.connectors.xmlsafe import UnsafeXML, refuse_dtd


class RssConnector:
    """RSS 2.0 / Atom entries as documents (category news unless the source says otherwise)."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    async def fetch(self, client: httpx.AsyncClient) -> Batch:
        assert self.spec.url is not None
        body = await fetch_bytes(client, self.spec, self.spec.url)
        try:
            refuse_dtd(body)  # before feedparser, whose lenient parser expands entities
        except UnsafeXML as exc:
            raise SourceError(f"{self.spec.url}: {exc}") from None
        feed = feedparser.parse(body, sanitize_html=True, resolve_relative_uris=False)
        if not feed.get("version") and not feed.entries:
            why = feed.get("bozo_exception") or "no <rss>, <feed> or <rdf> root"
            raise SourceError(f"{self.spec.url} is not an RSS or Atom feed: {why}")
        batch = Batch(complete=bool(self.spec.mirror))
        for entry in feed.entries[: self.spec.max_items]:
            key = entry.get("id") or entry.get("link") or entry.get("title")
            if not key:
                batch.warnings.append("entry without id, link or title skipped")
                continue
            title = _plain(entry.get("title", "")) or "(untitled)"
            text = _plain(_body(entry)) or title
            try:
                batch.documents.append(
                    make_document(
                        id=document_id(self.spec.name, _stable_key(key)),
                        title=title,
                        text=text,
                        category=self.spec.category,
                        source=self.spec.source,
                        url=entry.get("link", ""),
                        region=self.spec.region,
                        language=self.spec.language,
                        priority=self.spec.priority or "normal",
                    )
                )
            except ValueError as exc:
                batch.warnings.append(f"entry {key!r} skipped: {exc}")
        return batch


def _stable_key(key: str) -> str:
    """Entry ids are often whole URLs: a short hash keeps document ids short and valid."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _body(entry: Any) -> str:
    """The fullest text the entry carries: its content, else its summary."""
    contents = [c.get("value", "") for c in entry.get("content", [])]
    longest = max(contents, key=len, default="")
    summary = entry.get("summary", "")
    return longest if len(longest) > len(summary) else summary


class _TextOnly(HTMLParser):
    _BLOCKS = frozenset(("p", "br", "div", "li", "h1", "h2", "h3", "h4", "tr", "blockquote"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _plain(html: str) -> str:
    """Feed HTML as the plain text an SMS answer can quote."""
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
