"""The SMS an alert becomes: what a glance must catch first, never cut, counted in segments as
phones count them, and signed with the alert so every node sends the text that was previewed."""

from __future__ import annotations

import json

from bigevy.alerts.service import AlertService
from bigevy.alerts.sms import alert_sms
from bigevy.fleet.service import FleetService
from bigevy.http.alerts.protocol import AlertIn
from tests.support.fleet import Clock, clock, enroll, fleet
from tests.support.postgres import database_url

FIXTURES = (database_url, clock, fleet)
EXPIRES = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def content(**fields: object) -> dict:
    return {
        "msg_type": "Alert",
        "event": "Flash Flood",
        "severity": "Severe",
        "headline": "River Kafue rising fast",
        "instruction": "Move to high ground now.",
        "expires": EXPIRES,
        **fields,
    }


def test_severity_and_event_come_first_then_what_to_do_and_until_when() -> None:
    sms = alert_sms(content())
    assert sms.text == (
        "SEVERE FLASH FLOOD: River Kafue rising fast Move to high ground now. "
        "Until 15 Jan 08:00 UTC."
    )
    assert (sms.encoding, sms.segments) == ("GSM-7", 1)


def test_a_long_or_non_gsm_alert_is_counted_not_cut() -> None:
    long = alert_sms(content(instruction="Leave the valley by the north road. " * 6))
    assert long.segments > 1 and long.text.count("north road") == 6
    amharic = alert_sms(content(headline="የጎርፍ አደጋ"))
    assert amharic.encoding == "UCS-2" and "የጎርፍ አደጋ" in amharic.text


def test_a_cancel_says_so() -> None:
    assert alert_sms(content(msg_type="Cancel")).text.startswith("CANCELLED: Flash Flood:")


def test_nodes_receive_the_previewed_sms_signed_with_the_alert(
    fleet: FleetService, clock: Clock
) -> None:
    enroll(fleet, region="valley")
    alerts = AlertService(fleet, clock=clock)
    body = AlertIn(
        identifier="flood-1",
        event="Flash Flood",
        severity="Severe",
        urgency="Immediate",
        headline="River Kafue rising fast",
        instruction="Move to high ground now.",
        regions=["valley"],
        expires=clock.now + 3600,
    )
    assert alerts.reach(["valley"]) == 1 and alerts.reach(["elsewhere"]) == 0
    posted, _ = alerts.post(body, None)
    signed = json.loads(alerts.signed([posted.id])[0].alert)
    assert signed["sms"] == alert_sms(body.model_dump(mode="json")).text
    cancelled = alerts.cancel(posted.id)
    signed = json.loads(alerts.signed([cancelled.id])[0].alert)
    assert signed["sms"].startswith("CANCELLED: Flash Flood")
