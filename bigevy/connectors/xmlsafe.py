"""XML from the internet, parsed without trusting it: no DTDs, so no entities and no XXE.

CAP feeds are fetched from third parties. A DOCTYPE could declare entities that read local files
or fetch URLs (XXE) or expand exponentially ("billion laughs"); CAP never needs one, so any
document declaring a DOCTYPE or an entity is refused outright. Built on expat directly (what
defusedxml does), since the C ElementTree parser exposes no such hook.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import NoReturn
from xml.parsers import expat


class UnsafeXML(ValueError):
    """The document declares a DTD or entities, which bigEVY never accepts."""


def parse_xml(data: bytes) -> ET.Element:
    """The root element of `data`; `ValueError` for malformed XML, `UnsafeXML` for DTDs."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True

    def refuse(*_: object) -> NoReturn:
        raise UnsafeXML("XML declares a DOCTYPE or entities, which are refused (XXE)")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
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
