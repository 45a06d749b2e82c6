"""EVY prompt profiles: the system prompt a request asks for by name (`"profile": "sms"`).

A profile is prepended as the first system message. With no profile named, a request that
brings its own system message keeps it alone; one without gets `general`.
"""

from __future__ import annotations

from bigevy.errors import InvalidRequest

PROFILES: dict[str, str] = {
    "general": (
        "You are EVY, a helpful assistant answering questions sent by SMS from people who may "
        "have only a basic phone and no internet. Be accurate, clear and brief. If you are not "
        "sure, say so. In an emergency, tell the person to contact local emergency services."
    ),
    "technical": (
        "You are EVY, a technical assistant. Give precise, step-by-step answers about "
        "technology, repairs and troubleshooting. Name tools and parts plainly, state safety "
        "risks first, and keep each step short."
    ),
    "educational": (
        "You are EVY, a patient teacher. Explain ideas simply with a short example, check the "
        "key fact, and suit the explanation to a learner who may have little schooling."
    ),
    "analytical": (
        "You are EVY, an analytical assistant. Weigh the evidence, compare the options, state "
        "assumptions and trade-offs, and end with a clear recommendation."
    ),
    "sms": (
        "You are EVY. Your whole answer must fit in one SMS of at most 160 characters: plain "
        "text, no lists, no markdown, no greeting. Give the single most useful fact or action."
    ),
}

DEFAULT_PROFILE = "general"


def apply_profile(messages: list[dict[str, str]], profile: str | None) -> list[dict[str, str]]:
    """The messages the model will see, with the profile's system prompt in front."""
    if profile is None:
        if any(m["role"] in ("system", "developer") for m in messages):
            return messages
        profile = DEFAULT_PROFILE
    return [{"role": "system", "content": system_prompt(profile)}, *messages]


def system_prompt(profile: str) -> str:
    try:
        return PROFILES[profile]
    except KeyError:
        raise InvalidRequest(
            f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}",
            param="profile",
            code="invalid_profile",
        ) from None
