"""What an asker gets when nothing vetted answers the question: that, and where to ask.

Each fits one SMS in its language's encoding (Portuguese's "saúde" makes it UCS-2: 70
characters), and points to people who can help, not to a guess.
"""

from __future__ import annotations

NO_VERIFIED_ANSWER = {
    "en": "No verified answer was found. Ask a local health worker or official service.",
    "fr": "Pas de réponse vérifiée. Demandez à un agent de santé ou à un service officiel "
    "près de chez vous.",
    "es": "No hay una respuesta verificada. Pregunte a un trabajador de salud o a un servicio "
    "oficial cercano.",
    "pt": "Sem resposta verificada. Procure um agente ou posto de saúde.",
    "sw": "Hakuna jibu lililothibitishwa. Uliza mhudumu wa afya au ofisi rasmi iliyo karibu nawe.",
}


def base_language(language: str) -> str:
    """ "pt-BR" -> "pt": the language a tag names, lowercased."""
    return language.lower().replace("_", "-").split("-")[0]


def no_verified_answer(language: str) -> str:
    """The reply in the asker's language, else English."""
    return NO_VERIFIED_ANSWER.get(base_language(language), NO_VERIFIED_ANSWER["en"])
