"""XML from the internet, read without trusting it: no DTDs, so no entities and no XXE.

Every feed bigEVY reads is fetched from third parties. A DOCTYPE could declare entities that
read local files or fetch URLs (XXE) or expand exponentially ("billion laughs": 13 KB of RSS
became 10 MB in feedparser's lenient parser, in the actor that runs every source, CAP alerts
included). No feed needs one, so any document declaring a DOCTYPE or an entity is refused
before anything parses it: CAP through `parse_xml`, RSS and Atom through `refuse_dtd` before
feedparser. Built on expat directly (what defusedxml does), since the C ElementTree parser
exposes no such hook.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import NoReturn
from xml.parsers import expat

#: A declaration, as any parser would read it, in bytes expat could not read itself.
_DECLARATION = re.compile(r"<!\s*(doctype|entity)\b", re.IGNORECASE)


class UnsafeXML(ValueError):
    """The document declares a DTD or entities, which bigEVY never accepts."""


def _refuse(*_: object) -> NoReturn:
    raise UnsafeXML("XML declares a DOCTYPE or entities, which are refused (XXE)")


def _guarded_parser() -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    return parser


def refuse_dtd(data: bytes) -> None:
    """`UnsafeXML` if `data` declares a DOCTYPE or entities. A document expat cannot read
    (malformed, or in an encoding it lacks) is refused if such a declaration appears anywhere
    in it: a lenient parser downstream would read it anyway."""
    try:
        _guarded_parser().Parse(data, True)
    except expat.ExpatError:
        texts = (data.decode(codec, "ignore") for codec in ("latin-1", "utf-16-le", "utf-16-be"))
        if any(_DECLARATION.search(text) for text in texts):
            _refuse()


def parse_xml(data: bytes) -> ET.Element:
    """The root element of `data`; `ValueError` for malformed XML, `UnsafeXML` for DTDs."""
    builder = ET.TreeBuilder()
    parser = _guarded_parser()
    parser.buffer_text = True
    parser.StartElementHandler = lambda name, attrs: builder.start(
        _qname(name), {_qname(k): v for k, v in attrs.items()}
    )
    parser.EndElementHandler = lambda name: builder.end(_qname(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ValueError(f"invalid XML: {exc}") from None
    return builder.close()


def _qname(name: str) -> str:
    """expat's 'uri}local' as ElementTree's '{uri}local'."""
    return "{" + name if "}" in name else name
