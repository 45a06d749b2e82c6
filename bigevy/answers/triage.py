"""Emergency triage of escalated SMS: is someone in danger right now, and who should respond?

Rules, not a model: a message is an emergency when a hazard term (what is happening) plus cues
of an ongoing situation (help, now, trapped, shouting in capitals) outweigh cues of ordinary
context (questions about a topic, past events, forecasts, drills, maintenance, idioms). Lexicons
cover English, French, Spanish, Portuguese and Swahili; text is folded to lowercase ASCII, SMS
abbreviations are expanded and small typos in lexicon words are corrected before matching.

Decisions worth knowing:
- A hazard is required: "help please come now" alone has no kind, so it is not an emergency.
- Asking for an emergency number is not an emergency unless the message also says what is
  happening ("what is the ambulance number my father collapsed" is).
- Road crashes with casualties are "medical" (the injured need care first); a crime in progress
  or a threat to a person is "police"; a building or land collapse or a flood is "disaster".
- Past events ("last year", "ago"), plans ("tomorrow", "drill", "test") and topic questions
  ("how to", "what causes", "homework") subtract from the score; a strong acute cue can still
  win over them.

Lexicon syntax: terms are separated by commas, a word may end with `*` (any ending) or start
with `*` (any beginning). Terms are matched on whole words, longest first, without overlap.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Literal

EmergencyKind = Literal["medical", "fire", "police", "disaster"]

# What is happening, by kind and weight. 1.0: acute on its own; 0.7: strong; 0.5: the topic;
# 0.3: weak. Weight 0 names an institution or a device, so the hazard word in it does not
# count ("fire station", "smoke alarm").
HAZARDS: dict[EmergencyKind, dict[float, str]] = {
    "medical": {
        1.0: """
            not breathing, stopped breathing, cant breath*, no breath*, unconscious, collapsed,
            fainted, passed out, not waking, wont wake, not moving, no pulse, heart attack,
            seizure*, having fits, convulsion*, convulsing, choking, bleeding, blood wont stop,
            overdose, snake bit, bitten by a snake, swallowed, drowning, not responding,
            drank poison, took poison, swallowed poison,
            ne respire, respire plus, respire pas, inconscient*, evanoui*, se reveille pas,
            bouge plus, saigne*, crise cardiaque, a avale, empoisonn*,
            no respira, desmay*, inconsciente, no despierta, no responde, no se mueve, sangrando,
            sangra, ataque al corazon, infarto, envenen*, se ahoga*, ahogando,
            nao esta respirando, nao respira, desmai*, nao acorda, nao se mexe, convulsao,
            afogando, hapumui, hasogei, hajitambui, amezimia, amepoteza fahamu, anatoka damu,
            *vuja damu, degedege, amekunywa sumu, anazama
            """,
        0.7: """
            poison*, drank paraffin, burning with fever, is burning with fever, scalded,
            badly burned, severe burns, chest pain, stroke, injured, injuries, wounded,
            overturned, dying, fell from, labour, labor, giving birth, miscarriage, fits, blood,
            mordu, avale, blesse*, accouch*, mordio, veneno, herido*, mordeu, ferido*, picad*,
            amemuuma, ameumwa, ameungua, sumu, majeruhi, *jeruhiwa, damu, kujifungua
            """,
        0.5: """
            ambulance, accident, crash, snake, bite, swelling, drank, paraffin, fell, cant talk,
            cant speak, vomit*, malaise, serpent, accidente, se cayo, culebra, serpiente, vibora,
            ambulancia, caiu, inchando, cobra, ajali, ameanguka, *vimba, uchungu, nyoka
            """,
        0.3: "fever, sweating, sick, pain, doctor, hospital, hopital, medecin, hospitali, daktari",
    },
    "fire": {
        1.0: """
            on fire, is burning, are burning, burning, in flames, house fire, bush fire,
            bushfire, wildfire, exploded, explosion, there is a fire, theres a fire,
            en feu, au feu, brule, brulent, flammes,
            se quema, quemando, en llamas, llamas, se incendia, incendiando,
            pegando fogo, queimando, chamas, incendiou, *naungua, moto nyumbani
            """,
        0.8: "smoke coming, smoke everywhere, full of smoke",
        0.7: "fire, fires, incendi*, feu, fuego, fogo, queimada, gas leak, fuite de gaz",
        0.5: "smoke, fumee, humo, fumaca, moto, moshi, firefighters, pompiers",
        0.3: "bomberos, bombeiros, zima moto",
        0.0: """
            fire station, fire brigade, fire extinguisher, fire drill, fire alarm, smoke alarm,
            smoke detector, detecteur de fumee, alarma de humo, alarme de fumaca, kizima moto,
            kengele ya moshi, maji ya moto
            """,
    },
    "police": {
        1.0: """
            knife, gun, guns, gunshot*, gun shots, shooting, armed, robbed, robbing, being robbed,
            broke in, breaking in, break in, beating, kidnap*, abduct*, raping, raped, stabbed,
            intruder*, threatening, grabbed my, attacking, stabbing, poignard*, acuchill*, apunal*,
            esfaque*,
            couteau, arme, armes, cambriol*, frappe, me frappe, coups de feu, enleve*, agress*,
            machette*, cuchillo, armado*, pistola, robando, asaltando, asalto, disparos,
            balacera, tiroteo, pegando, golpeando, secuestr*, violando,
            faca, roubando, assaltando, tiroteio, tiros, batendo, espancando, sequestr*,
            ameacando, kisu, bunduki, risasi, wananipiga, ananipiga, wanampiga, anampiga,
            wanatupiga, wamevunja, wanavunja, majambazi, jambazi, ametekwa, amebakwa,
            wanashambulia
            """,
        0.7: """
            attack*, thieves, thief, burglar*, kill, kill me, murder*, robbery, rape, threaten*,
            voleurs, voleur, attaqu*, tuer, viol, ladron*, asalt*, robo, matar, amenaz*,
            violacion, ladroes, ladrao, assalt*, arma, ameac*, estupr*, wezi, mwizi, kuua,
            kuniua, panga, machete, wanaiba
            """,
        0.5: "hiding, police, policia, polisi, gendarmerie, stolen, robaron, roubaram, vole",
    },
    "disaster": {
        1.5: """
            building collapsed, house collapsed, houses collapsed, roof collapsed,
            collapsed building, se cayo el edificio, la maison s est effondree, o predio desabou
            """,
        1.0: """
            water rising, water is rising, rising water, flooding, flash flood, landslide,
            mudslide, burst its banks, burst banks, buried, water everywhere, water entered,
            water inside, water in our house, water in the house, buildings falling,
            houses falling, tearing roofs, roofs off, ground is shaking, ground shaking,
            houses cracking,
            l eau monte, eau monte, glissement de terrain, eboulement, effondr*,
            el agua esta subiendo, agua subiendo, derrumbe, deslave, deslizamiento,
            a agua esta subindo, agua subindo, alagamento, desab*, soterr*,
            maji yanaongezeka, maji yanapanda, maporomoko, *poromoka, zimeanguka
            """,
        0.7: """
            flood, floods, flooded, earthquake, tsunami, cyclone, hurricane, typhoon, tornado,
            inondation*, tremblement de terre, seisme, ouragan, inundacion*, inundado,
            terremoto, sismo, temblor, huracan, ciclon, enchente, inundacao, tremor de terra,
            ciclone, furacao, mafuriko, tetemeko, kimbunga
            """,
        0.5: "on the roof, on roofs, sur le toit, en el techo, no telhado, juu ya paa",
        0.3: "storm, tempete, tormenta, tempestade, dhoruba, techos, telhado",
    },
}

# Cues of an ongoing situation, whatever the hazard: a call for help, now, people at risk, a
# named person affected.
URGENCY: dict[float, str] = {
    0.6: """
        please help, help us, help me, sos, right now, trapped, people inside, kids inside,
        children inside, au secours, aidez moi, aidez nous, sont dedans, coinces, bloques,
        auxilio, socorro, ayudenme, ahora mismo, gente adentro, gente dentro, atrapados,
        atrapado, gente la dentro, presos, sasa hivi, tusaidie*, tuokoe, *kwama, *naswa,
        watu ndani
        """,
    0.4: """
        help, just now, hurry, quick*, come, rescue, stuck, emergency, secours, aidez, vite,
        venez, urgence, ayuda, vengan, ajuda, venham, msaada, nisaidie*, haraka, dharura
        """,
    0.3: """
        now, fast, urgent, inside, maintenant, dedans, rapido, adentro, dentro,
        agora, sasa, ndani, watu,
        my son, my daughter, my baby, my child, my kid, my father, my dad, my mother, my mum,
        my mom, my wife, my husband, my brother, my sister, my grandmother, my granny,
        my grandfather, my uncle, my aunt, mon fils, ma fille, mon bebe, mon enfant, mon pere,
        ma mere, ma femme, mon mari, mon frere, ma soeur, mi hijo, mi hija, mi bebe, mi nino,
        mi papa, mi mama, mi esposa, mi esposo, mi hermano, mi hermana, mi abuela, mi abuelo,
        meu filho, minha filha, meu bebe, meu pai, minha mae, minha mulher, meu marido,
        meu irmao, minha irma, minha avo, meu avo, mwanangu, mtoto, mke wangu, mume wangu,
        baba, mama, kaka, dada, bibi, babu
        """,
    0.2: "send, manden, envoyez, mandem, tuma",
}

# Ordinary context: a question about a topic, another time, a plan, a device, an idiom.
CONTEXT: dict[float, str] = {
    1.0: """
        what causes, homework, history, drill, forecast, low battery, poem, lol, laughter,
        contracep*, devoirs, histoire, pile faible, rire, exercice, simulacro, tarea,
        pronostico, bateria baja, risa, jaja*, dever de casa, simulado, previsao,
        bateria fraca, kkk*, haha*, hehe*, kicheko, kazi ya nyumbani, husababisha, historia
        """,
    0.8: """
        how to, how do, how does, how much, what to do if, tomorrow, next week, last year,
        last week, last month, last night, years ago, ago, test, testing, story, movie, film,
        tips, training, appointment, write, qu est ce qui, comment, demain, semaine prochaine,
        annee derniere, mois dernier, meteo, conseils, rendez vous, que causa, que es, manana,
        semana pasada, ano pasado, hace un ano, prueba, consejos, cuanto cuesta, o que causa,
        o que e, amanha, ano passado, mes passado, semana passada, teste, dicas,
        quanto custa, jinsi ya, kesho, mwaka jana, wiki iliyopita, wiki ijayo, hali ya hewa,
        mazoezi, zoezi, majaribio, vidokezo, bei
        """,
    0.6: """
        what are, what to do, when does, when is, safety, prevent, prepare, kit, symptoms,
        price, prices, cost, become, news, song, season, expected, mild, minor, thanks,
        thank you, should i, in 19*, in 20*, beeping, battery, extinguisher, insurance,
        en cas de, prix, symptomes, securite, devenir, infos, saison, merci, leger,
        porter plainte, faim, como, causa, cual es, noticias, temporada, evitar, precio,
        sintomas, que hacer, cita, gracias, leve, o que fazer, qual e, noticia, epoca,
        seguranca, consulta, obrigad*, prova, ja esta bem, apitando,
        ni nini, ni ipi, ni zipi, lini, msimu, usalama, dalili, nini cha kufanya, asante,
        kuzuia, kuandaa, betri, njaa
        """,
    0.4: """
        tonight, alert, warning, siren, heat, buy, info, que faire, pourquoi, quand, acheter,
        bip, risque de, normal, cuando, por que, alerta, pita, si te, calor, quando, sirene,
        tahadhari, habari za, kidogo, nimpe, dawa gani, akiku*
        """,
    0.3: "what is, whats, which, why, where is, where can, is there, if, quel est, quelle",
}

# What the safety steps are about, as English search words (the safety pack and most of any
# knowledge base are English) -> the words of any language that name it. Only read once a
# message is an emergency, so these terms do not change what is one.
TOPICS: dict[str, str] = {
    "CPR for someone not breathing or unconscious": """
        not breathing, stopped breathing, cant breath*, no breath*, unconscious, collapsed,
        fainted, passed out, not waking, wont wake, not moving, no pulse, heart attack,
        drowning, drowned, not responding, ne respire, respire plus, respire pas, inconscient*,
        evanoui*, se reveille pas, bouge plus, crise cardiaque, noye*, no respira, desmay*,
        inconsciente, no despierta, no responde, no se mueve, ataque al corazon, infarto,
        se ahoga*, ahogando, ahogado, nao esta respirando, nao respira, desmai*, nao acorda,
        nao se mexe, afogando, afogado, parada cardiaca, hapumui, hasogei, hajitambui,
        amezimia, amepoteza fahamu, anazama, amezama
        """,
    "severe bleeding first aid": """
        bleeding, blood wont stop, lots of blood, blood, stabbed, wounded, injured, cut,
        saigne*, sang, blesse*, poignard*, sangrando, sangra, sangre, herido*, acuchill*,
        ferido*, esfaque*, anatoka damu, *vuja damu, damu, majeruhi, *jeruhiwa
        """,
    "choking": "choking, choked, s etouffe, etouffe, atragant*, engasg*, anakabwa, amekabwa",
    "snakebite": """
        snake*, bitten by a snake, serpent, mordu, culebra, serpiente, vibora, mordio, cobra,
        mordeu, nyoka, amemuuma, ameumwa
        """,
    "burns first aid": """
        burned, burnt, burns, scalded, brulure*, brule, quemadura*, quemado, queimadura*,
        queimado, ameungua, kuungua
        """,
    "poisoning": """
        poison*, drank paraffin, overdose, swallowed, empoisonn*, a avale, envenen*, veneno,
        sumu, amekunywa
        """,
    "seizure": "seizure*, fits, convulsion*, convulsing, convulsao, degedege",
    "fire in the home escape the smoke": """
        fire, fires, burning, on fire, in flames, smoke, explosion, exploded, gas leak,
        feu, incendi*, flammes, fumee, fuite de gaz, fuego, llamas, humo, fogo, chamas,
        fumaca, moto, moshi, *naungua
        """,
    "flood safety rising water": """
        flood*, water rising, water is rising, rising water, flash flood, burst its banks,
        water everywhere, water inside, inondation*, l eau monte, eau monte, inundacion*,
        inundado, agua subiendo, enchente, alagamento, agua subindo, inundacao, mafuriko,
        maji yanaongezeka, maji yanapanda
        """,
    "earthquake": """
        earthquake, ground shaking, ground is shaking, building collapsed, house collapsed,
        tremblement de terre, seisme, effondr*, terremoto, sismo, temblor, derrumbe,
        tremor de terra, desab*, tetemeko, *poromoka
        """,
    "landslide": "landslide, mudslide, glissement de terrain, deslizamiento, deslave, maporomoko",
    "cyclone severe storm": """
        cyclone, hurricane, typhoon, tornado, storm, roofs off, tearing roofs, ouragan,
        tempete, huracan, ciclon, tormenta, furacao, ciclone, tempestade, kimbunga, dhoruba
        """,
    "lightning": "lightning, struck by lightning, foudre, rayo, raio, radi",
}

# What ordinary questions ask about, beyond the emergencies above, in the same form. Read only
# by `topics_named`: they do not change what an emergency's steps are looked up by.
QUESTION_TOPICS: dict[str, str] = {
    "malaria": "malaria, paludisme, paludismo",
    "making water safe to drink": """
        drinking water, safe water, clean water, purify water, eau potable, purifier l eau,
        traiter l eau, agua potable, purificar el agua, purificar agua, agua potavel,
        tratar a agua, maji safi, maji ya kunywa, kusafisha maji
        """,
    "diarrhoea and dehydration": """
        diarrhea, diarrhoea, dehydrat*, diarrhee, deshydrat*, diarrea, deshidrat*, diarreia,
        desidrat*, kuhara, *harisha
        """,
    "heat illness": """
        heatstroke, heat stroke, heatwave, heat wave, canicule, coup de chaleur, ola de calor,
        golpe de calor, onda de calor, insolacao, insolacion, joto kali
        """,
    "emergency phone numbers police ambulance fire": """
        numero de la police, numero de police, numero d urgence, numero de la policia,
        numero de urgencia, numero de emergencia, numero da policia, numero de emergencia,
        namba ya polisi, namba ya dharura
        """,
    "emergency kit": """
        kit d urgence, trousse d urgence, kit de emergencia, vifaa vya dharura
        """,
    # The starter pack's topics as people ask about them, not only as emergencies name them:
    # a question in another language finds its passages by these words (bigevy/answers/service.py).
    "CPR chest compressions rescue breaths": """
        cpr, rcp, massage cardiaque, reanimation, reanimacion, reanimacao, compressions,
        compresiones, compressoes, respiracion boca a boca, boca a boca, bouche a bouche,
        huduma ya kwanza ya moyo, kukandamiza kifua
        """,
    "severe bleeding": """
        hemorragie, saignement, hemorragia, sangrado, sangramento, kutokwa na damu
        """,
    "choking": "s etouffe, etouffement, atraganta*, atragantamiento, engasga*, desengasg*, *kabwa",
    "heat illness hot weather": """
        chaleur, forte chaleur, calor, calor extremo, calor forte, joto, jua kali
        """,
    "lightning thunderstorm": """
        orage, orages, tonnerre, tormenta electrica, tormentas, trueno*, trovoada, trovao,
        relampago*, ngurumo, radi, mvua ya radi
        """,
    "earthquake": "terramoto, sismo, tremor, tetemeko la ardhi",
    "flood safety rising water": "crue, cheia, cheias, inundacao, mafuriko",
    "making water safe to drink bleach boil": """
        eau de javel, javel, lixivia, lejia, cloro, agua sanitaria, jik, klorini, eau du puits,
        agua del pozo, agua do poco, maji ya kisima, eau de la riviere, agua del rio,
        agua do rio, maji ya mto, faire bouillir, hervir, ferver, kuchemsha
        """,
    "malaria mosquito net": """
        palu, moustique*, moustiquaire, mosquito*, mosquitero, rede mosquiteira, mbu,
        chandarua, neti
        """,
    "calling for emergency help": """
        appeler les secours, appeler les urgences, llamar a emergencias, llamar emergencias,
        ligar para a emergencia, ligar para emergencia, kupiga simu ya dharura, piga simu
        """,
}

#: More words for the starter pack's topics (and the topics themselves, in English search
#: words), by language: `topic_words.json`, written from the documents and everyday usage,
#: without reading the benchmark's questions. Its `notes` say which words are doubtful.
TOPIC_WORDS: dict[str, list[str]] = {
    topic: [" ".join(w.split()) for key, ws in by.items() if key != "notes" for w in ws]
    for topic, by in json.loads(
        (files("bigevy.answers") / "topic_words.json").read_text(encoding="utf-8")
    ).items()
}

#: When no topic word is found, what each kind's safety steps are about.
KIND_TOPICS: dict[EmergencyKind, str] = {
    "medical": "first aid until help arrives",
    "fire": "fire in the home escape the smoke",
    "police": "calling for emergency help, stay safe",
    "disaster": "calling for emergency help, stay safe",
}

ABBREVIATIONS: dict[str, str] = {
    "pls": "please",
    "plz": "please",
    "pliz": "please",
    "plse": "please",
    "hlp": "help",
    "hlpp": "help",
    "u": "you",
    "bcz": "because",
    "coz": "because",
    "ppl": "people",
    "nw": "now",
    "asap": "right now",
    "2moro": "tomorrow",
    "2mrw": "tomorrow",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "bb": "bebe",
    "xfa": "por favor",
    "xfavor": "por favor",
    "porfa": "por favor",
    "pfv": "por favor",
    "hse": "house",
    "fyr": "fire",
    "thx": "thanks",
}

THRESHOLD = 1.0  # raw score at which a message becomes an emergency (score 0.5)


@dataclass(frozen=True)
class Triage:
    """The verdict, with the matched cues kept for logs (negative cues start with "-")."""

    emergency: bool
    kind: EmergencyKind | None
    score: float
    cues: tuple[str, ...]
    #: For an emergency, what to look the safety steps up by, in English whatever the message's
    #: language (a Swahili "hapumui" must still find the CPR steps).
    topic: str | None = None


def _terms(spec: str) -> list[str]:
    return [t for t in (" ".join(p.split()) for p in spec.split(",")) if t]


def _weights(weighted: dict[float, str]) -> dict[str, float]:
    return {t: w for w, spec in weighted.items() for t in _terms(spec)}


@dataclass(frozen=True)
class _Lexicon:
    """Terms indexed by their first word pattern, so a message is scanned in one pass."""

    weights: dict[str, float]
    by_first: dict[str, list[tuple[str, ...]]]
    seen: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    @classmethod
    def of(cls, weights: dict[str, float]) -> _Lexicon:
        by_first: dict[str, list[tuple[str, ...]]] = {}
        for term in weights:
            words = tuple(term.split())
            by_first.setdefault(words[0], []).append(words)
        return cls(weights, by_first)

    def starting_with(self, token: str) -> list[tuple[str, ...]]:
        """Terms whose first word matches `token`, longest first; remembered per token."""
        if (terms := self.seen.get(token)) is None:
            keys = [token]
            keys += [token[:j] + "*" for j in range(1, len(token) + 1)]
            keys += ["*" + token[j:] for j in range(len(token))]
            terms = [words for key in keys for words in self.by_first.get(key, ())]
            terms.sort(key=lambda w: (-len(w), -len("".join(w))))
            if len(self.seen) < 100_000:
                self.seen[token] = terms
        return terms

    def find(self, tokens: list[str]) -> Iterator[tuple[str, float]]:
        """Longest term at each position, without overlap."""
        i = 0
        while i < len(tokens):
            for words in self.starting_with(tokens[i]):
                n = len(words)
                if i + n <= len(tokens) and all(map(_word_matches, words[1:], tokens[i + 1 :])):
                    term = " ".join(words)
                    yield term, self.weights[term]
                    i += n
                    break
            else:
                i += 1


def _word_matches(pattern: str, token: str) -> bool:
    if pattern.endswith("*"):
        return token.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return token.endswith(pattern[1:])
    return token == pattern


_HAZARD_KIND = {t: k for k, lex in HAZARDS.items() for t in _weights(lex)}
_HAZARD = _Lexicon.of({t: w for lex in HAZARDS.values() for t, w in _weights(lex).items()})
_URGENCY = _Lexicon.of(_weights(URGENCY))
_CONTEXT = _Lexicon.of(_weights(CONTEXT))
_TOPIC_OF = {t: topic for topic, spec in TOPICS.items() for t in _terms(spec)}
_TOPIC = _Lexicon.of(dict.fromkeys(_TOPIC_OF, 1.0))
_ANY_TOPIC_OF = (
    _TOPIC_OF
    | {t: q for q, spec in QUESTION_TOPICS.items() for t in _terms(spec)}
    | {t: q for q, words in TOPIC_WORDS.items() for t in words}
)
_ANY_TOPIC = _Lexicon.of(dict.fromkeys(_ANY_TOPIC_OF, 1.0))

# Words of the lexicons that typos are corrected towards (only plain words of 4+ letters).
_VOCABULARY = frozenset(
    w
    for lex in [*HAZARDS.values(), URGENCY]
    for spec in lex.values()
    for t in _terms(spec)
    for w in t.split()
    if "*" not in w and len(w) >= 4
)
_MISSING_LETTER = {w[:i] + w[i + 1 :]: w for w in _VOCABULARY if len(w) >= 6 for i in range(len(w))}
#: Words one typo away from a lexicon's word that are words themselves, left as written: the
#: topics' own words, and everyday words ("poisson", fish, is not "poison"; "primeiros
#: socorros", first aid, is no cry for "socorro").
_NOT_TYPOS = (
    frozenset(
        {w for term in _ANY_TOPIC_OF for w in term.split() if "*" not in w}
        | {"poisson", "poissons", "quemada", "quemadas", "socorros", "auxilios"}
    )
    - _VOCABULARY
)


@cache
def _correct(token: str) -> str:
    """Fix one swapped pair ("fier") or, in longer words, one missing or extra letter."""
    if token in ABBREVIATIONS:
        return ABBREVIATIONS[token]
    if len(token) < 4 or token in _VOCABULARY or token in _NOT_TYPOS:
        return token
    for i in range(len(token) - 1):
        swapped = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
        if swapped in _VOCABULARY:
            return swapped
    if len(token) >= 5 and token in _MISSING_LETTER:
        return _MISSING_LETTER[token]
    if len(token) >= 7:
        for i in range(len(token)):
            if (shorter := token[:i] + token[i + 1 :]) in _VOCABULARY:
                return shorter
    return token


_NOT_WORD = re.compile(r"[^a-z0-9]+")
_REPEATS = re.compile(r"([a-z])\1{2,}")


def _tokens(message: str) -> list[str]:
    text = message.lower().replace("\u2019", "'").replace("n't", "nt")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    tokens = _NOT_WORD.sub(" ", text).split()
    if _REPEATS.search(text):  # "helppp" -> "help", but keep a laugh like "kkk" whole
        tokens = [t if len(set(t)) == 1 else _REPEATS.sub(r"\1", t) for t in tokens]
    return [w for t in tokens for w in _correct(t).split()]


def triage(message: str) -> Triage:
    """Classify one SMS; cheap and deterministic, so it can run on every escalation."""
    tokens = _tokens(message)
    cues: list[str] = []
    by_kind: dict[EmergencyKind, float] = {}
    for term, weight in _HAZARD.find(tokens):
        if weight:
            kind = _HAZARD_KIND[term]
            by_kind[kind] = by_kind.get(kind, 0.0) + weight
            cues.append(term)
    urgency = 0.0
    for term, weight in _URGENCY.find(tokens):
        urgency += weight
        cues.append(term)
    letters = [c for c in message if c.isalpha()]
    if len(letters) >= 6 and all(c.isupper() for c in letters):
        urgency += 0.4
        cues.append("ALL CAPS")
    if "!" in message:
        urgency += 0.2
        cues.append("!")
    context = 0.0
    for term, weight in _CONTEXT.find(tokens):
        context += weight
        cues.append(f"-{term}")
    if "?" in message:
        context += 0.2
        cues.append("-?")
    if not by_kind:
        return Triage(False, None, 0.0, tuple(cues))
    kind = max(by_kind, key=by_kind.__getitem__)
    # Rounded so that 0.7 + 0.3 reaches the threshold in floating point too.
    raw = round(min(by_kind[kind], 2.0) + min(urgency, 1.0) - context, 6)
    score = round(1.0 / (1.0 + math.exp(-3.0 * (raw - THRESHOLD))), 3)
    if raw < THRESHOLD:
        return Triage(False, None, score, tuple(cues))
    return Triage(True, kind, score, tuple(cues), _topic(tokens, kind))


def topics_named(message: str) -> list[str]:
    """The topics a message names, in English search words, whatever its language: the
    embedding model is English, so a Swahili question about snakes must still find the
    snakebite steps."""
    found = [_ANY_TOPIC_OF[term] for term, _ in _ANY_TOPIC.find(_tokens(message))]
    return list(dict.fromkeys(found))


def _topic(tokens: list[str], kind: EmergencyKind) -> str:
    """The first topic named in the message (the most specific: "fire" in "bleeding after the
    fire" is context); the kind's own when none is."""
    for term, _ in _TOPIC.find(tokens):
        return _TOPIC_OF[term]
    return KIND_TOPICS[kind]
