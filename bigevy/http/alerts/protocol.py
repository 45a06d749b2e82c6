"""Wire models of emergency alerts: CAP 1.2's core fields, as operators and connectors post them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bigevy.http.knowledge.protocol import NonBlank

#: CAP 1.2 <severity>, <urgency>, <certainty>, <msgType> values.
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
MessageType = Literal["Alert", "Update", "Cancel"]


class AlertIn(BaseModel):
    """An emergency alert to push to the nodes of the affected regions.

    `identifier` + `sender` name the alert at its source (CAP's pair): posting the same pair
    again updates that alert instead of sending a second one; `msg_type: "Cancel"` withdraws it.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    identifier: str = Field(min_length=1, max_length=200, pattern=r"^[^\s,<&]+$")
    sender: str = Field("bigevy", min_length=1, max_length=200)
    msg_type: MessageType = "Alert"
    event: NonBlank = Field(max_length=200, description="What happens, e.g. 'Flash Flood'.")
    severity: Severity
    urgency: Urgency
    certainty: Certainty = "Unknown"
    headline: NonBlank = Field(max_length=500)
    description: str = Field("", max_length=10_000)
    instruction: str = Field("", max_length=2_000, description="What people should do.")
    area: str = Field("", max_length=1_000, description="CAP <areaDesc>: the area in words.")
    regions: list[NonBlank] = Field(
        min_length=1,
        max_length=200,
        description="Node regions that receive it; 'global' reaches every node.",
    )
    sent: float | None = Field(None, ge=0, description="Unix seconds; default: when received.")
    expires: float = Field(gt=0, description="Unix seconds; required: alerts never linger.")
    source_url: str = Field("", max_length=2_000)


class SignedAlert(BaseModel):
    """What a node receives: verify `signature` (Ed25519, base64) over the UTF-8 bytes of
    `alert`, bigEVY's exact JSON text, then parse it (as package manifests)."""

    alert_id: str
    version: int
    alert: str
    signature: str


class AlertAck(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    version: int = Field(ge=1, description="The version the node now shows.")


class Delivery(BaseModel):
    node_id: str
    region: str
    status: Literal["pending", "sent", "acked"] = Field(
        description="pending: not handed to the node yet; sent: handed over, no ack; "
        "acked: the node acknowledged the current version."
    )
    via: str | None
    sends: int
    first_sent_at: float | None
    acked_at: float | None


class AlertOut(BaseModel):
    id: str
    version: int
    status: Literal["active", "cancelled", "expired"]
    identifier: str
    sender: str
    origin: str = Field(description="operator, or source:<name> for a connector.")
    event: str
    severity: Severity
    urgency: Urgency
    headline: str
    regions: list[str]
    sent: float
    expires: float
    created_at: float
    updated_at: float
    nodes: int = Field(description="Enrolled nodes in the alert's regions.")
    acked: int
    deliveries: list[Delivery] | None = Field(
        None, description="Per node; in GET /v1/alerts/{id} and with ?detail=true."
    )


class AlertList(BaseModel):
    data: list[AlertOut]
    total: int
