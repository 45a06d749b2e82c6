"""The SMS an alert becomes on phones: written here, once, and signed with the alert (its `sms`
field), so the text an operator previews is the text every node broadcasts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bigevy.answers.sms import Encoding, as_sent, encoding_of, segment_count


@dataclass(frozen=True)
class AlertSms:
    text: str
    encoding: Encoding
    segments: int


def alert_sms(content: dict[str, Any]) -> AlertSms:
    """Severity and event first (what a glance must catch), then the headline, what to do,
    and until when. Never cut: the operator sees the segment count and shortens it."""
    if content.get("msg_type") == "Cancel":
        parts = [f"CANCELLED: {content['event']}: {content['headline']}"]
    else:
        until = time.strftime("%d %b %H:%M", time.gmtime(content["expires"]))
        parts = [
            f"{content['severity'].upper()} {content['event'].upper()}: {content['headline']}",
            content.get("instruction") or "",
            f"Until {until} UTC.",
        ]
    text = as_sent(" ".join(" ".join(p.split()) for p in parts if p.strip()))
    return AlertSms(text=text, encoding=encoding_of(text), segments=segment_count(text))
