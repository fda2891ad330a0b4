"""English detection for captions with lingua, restricted to a few likely languages.

Why restricted: captions are short, and a detector choosing among 75 languages on six words is
noisy; choosing among the languages a crawl realistically meets (EN/FR/DE/ES/IT/PT/NL by default)
is both more accurate and faster. The detector is built once per language set and process (it is
immutable and thread-safe), not once per sample.

Why high-accuracy mode by default: measured on 461 English captions (the synthetic web's scene
captions, stock and NSFW captions) and 50 FR/DE/ES/IT/PT sentences, low-accuracy mode (trigrams
only) rejected 15 English captions and *kept* a French one ("Un cerf-volant rouge au-dessus des
dunes de sable" -> en 0.58); high-accuracy mode rejected 4 (all of them 2-4 word fragments such
as "a purple hexagon") and kept no non-English sentence. It costs ~1 s and ~200 MB to load the
n-gram models once per process, then ~0.07 ms per caption. `low_accuracy=True` stays available.

Measured again against the alternatives in the package lists (issue 11), on 1,000 Visual
Genome region captions (/work/shared/data/factual/dev.csv: 3-8 words, the hardest case) and 30
FR/DE/ES/IT/PT/NL sentences, the same 7 languages, the rule below: lingua high accuracy
rejected 1 English caption and kept no foreign one; lingua low accuracy rejected 83 and kept 1;
py3langid 0.3 (langid.py's model, restricted to the same languages) rejected 40 and kept none
(top-1 == "en": 42). py3langid is ~4x faster per caption, but lingua's cost is mostly loading
its models once per process (~1-2 s on a quiet machine), a few per cent of a crawl shard:
accuracy decides, lingua high accuracy stays.

A caption is English when English's confidence is at least `min_score` and trails the most
likely language by at most `margin`. High-accuracy confidences are spread over all candidate
languages (a clean English caption often scores 0.3-0.8), and 3-word captions with a proper noun
are genuinely ambiguous ("The Globex logo": fr 0.20, nl 0.19, en 0.16), while non-English
sentences give English <= 0.05. On the set above, min_score 0.15 with margin 0.1 rejected no
English caption and kept no non-English one. `Sample.lang`/`lang_score` record "en" and English's
confidence for an English caption, else the most likely language and its confidence.

Short captions get a second opinion from their words (`word_vote`, issue 11). Character n-grams
are little evidence on three words: "a large hexagon" is French to lingua (fr 0.47, en 0.17),
because "a", "large" and the stem "hexagon" are all French spellings too. What does decide a short
caption is which language *uses those words*: a naive-Bayes vote over word frequencies (wordfreq's
"small" lists, 0.07 s and ~25 MB to load for the seven languages) over the caption's words, with
names left out (a capitalised word after the first is a proper noun, shared by every language:
"Ponte Vecchio", "Neuschwanstein"), and words no list knows scoring the same in every language.
It only ever rescues: when lingua gives a caption of at most `vote_words` words to another
language, the caption is kept as English if English's word score beats every other language's;
the verdict detail says so ("... words: en -28.2 > fr -30.1"). A caption lingua calls English
with too little confidence (below `min_score`) is not rescued: that threshold is the user's.

Measured (issue 11) before -> after, English rejected / non-English kept: 1,000 Visual Genome
region captions 1 -> 0 ("a train at a train station"); the synthetic web's 331 distinct English
captions 1 -> 0 ("a large hexagon"); 83 English captions of the real-web corpus 0 -> 0; 30
short English captions full of names and loanwords (datasets/realweb/lang_captions.tsv: "Paella
in a pan", "A croissant and espresso") 17 -> 8; 90 FR/DE/ES/IT/PT/NL captions and sentences of
the same file (60 of them 2-6 words) 0 -> 0 kept, and the synthetic web's foreign captions 0 -> 0.
A vote over simplemma's dictionaries did as well (7 short English rejected) but loads ~400 MB
and 6 s; a vote over every caption length gains nothing (lingua is right on long ones).

Words first (issue 11, speed): most captions are plainly English word by word, and for them
lingua's verdict is known before it is asked — yet asking it costs loading its models, ~1.3-1.5 s
of CPU holding the GIL in every crawl process, more than the rest of the crawl's own work on
2,000 images. So the vote is taken first, and a caption is English without lingua when its words
leave no doubt: at least `FIRST_MIN_WORDS` (3) counted words, every one of them in English's
word list, and on average at least `word_margin` nats (default 1.5: each word ~4.5x likelier in
English than in the next language) per word above every other language. Only the other captions
go to lingua (and to the short-caption rescue above), so lingua is loaded when the first such
caption comes, not before. Measured on captions of known language (written for this check or
taken from the sets above): the largest per-word margin of any non-English caption was -0.07 (a
2-word German one; -2.5 with 3 words or more) over the 90 captions of lang_captions.tsv, the
synthetic web's 24 sentences, and 40 short loanword-heavy FR/DE/ES/IT/PT/NL captions ("Le weekend
shopping à Londres" -2.7, "Das neue Smartphone im Test"); English decided by words at 1.5: 884 of
1,000 Visual Genome captions, 51 of the 83 real-web ones, 7 of the 30 with names. Such a caption
records `lang_score` = English's posterior under the vote (near 1) and a detail saying lingua was
not asked; `min_lang_score` and `lang_margin` are thresholds on lingua's confidences and so apply
to the captions lingua decides. `word_margin=0` turns this off (lingua first, as before).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

DEFAULT_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl")
#: frequency given to a word a language's list does not hold (wordfreq's small lists stop near 1e-6)
WORD_FLOOR = 1e-7
#: fewest counted words for a caption to be English by its words alone, without lingua
FIRST_MIN_WORDS = 3
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


@dataclass(frozen=True)
class LangResult:
    """Most likely language (ISO 639-1, '' if none), its confidence, and English's confidence."""

    lang: str
    score: float
    english: float


@dataclass(frozen=True)
class WordVote:
    """Log-likelihood of a caption's words per language (names left out) and how many words counted."""

    scores: dict[str, float]
    words: int
    #: counted words English's list does not hold (a word of another language, a typo, a name in lower case)
    unknown_en: int = 0

    def english_wins(self) -> bool:
        en = self.scores.get("en", -math.inf)
        return self.words > 0 and all(en > v for k, v in self.scores.items() if k != "en")

    def margin_per_word(self) -> float:
        """English's log-likelihood lead over the next language, per counted word (-inf: no words)."""
        if self.words == 0:
            return -math.inf
        en = self.scores.get("en", -math.inf)
        return (en - max(v for k, v in self.scores.items() if k != "en")) / self.words

    def decides_english(self, margin: float) -> bool:
        """English beyond doubt by its words alone (module doc: words first); never for margin <= 0."""
        return (margin > 0 and self.words >= FIRST_MIN_WORDS and self.unknown_en == 0
                and self.margin_per_word() >= margin)  # fmt: skip

    def english_posterior(self) -> float:
        """P(English | words) under the vote, with equal priors over its languages."""
        en = self.scores.get("en", -math.inf)
        return 1.0 / sum(math.exp(min(700.0, v - en)) for v in self.scores.values())

    def detail(self) -> str:
        en = self.scores.get("en", -math.inf)
        rival, value = max(((k, v) for k, v in self.scores.items() if k != "en"), key=lambda kv: kv[1])
        sign = ">" if self.english_wins() else "<="
        return f"words: en {en:.1f} {sign} {rival} {value:.1f}"


@lru_cache(maxsize=4)
def detector(languages: tuple[str, ...] = DEFAULT_LANGUAGES, low_accuracy: bool = False) -> Any:
    """The lingua detector for `languages` (cached: building it loads the n-gram models)."""
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    if len(set(languages)) < 2:
        raise ValueError(f"lingua needs at least two languages to choose from, got {languages}")
    langs = [Language.from_iso_code_639_1(IsoCode639_1.from_str(code.lower())) for code in languages]
    builder = LanguageDetectorBuilder.from_languages(*langs)
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    return builder.build()


def detect(text: str, languages: tuple[str, ...] = DEFAULT_LANGUAGES, low_accuracy: bool = False) -> LangResult:
    """Detect the language of `text` among `languages`."""
    values = detector(tuple(languages), low_accuracy).compute_language_confidence_values(text)
    if not values or values[0].value <= 0.0:
        return LangResult("", 0.0, 0.0)
    english = next((v.value for v in values if v.language.iso_code_639_1.name == "EN"), 0.0)
    top = values[0]
    return LangResult(top.language.iso_code_639_1.name.lower(), float(top.value), float(english))


def is_english(result: LangResult, min_score: float = 0.15, margin: float = 0.1) -> bool:
    """English's confidence is >= `min_score` and within `margin` of the most likely language's."""
    return result.english >= min_score and result.english >= result.score - margin


def words(text: str) -> list[str]:
    """The caption's words, lower-cased, without digits and without names (capitalised words
    after the first; the first word is capitalised by position, so it stays)."""
    return [w.lower() for i, w in enumerate(_WORD.findall(text)) if i == 0 or not w[:1].isupper()]


def word_vote(text: str, languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> WordVote:
    """Naive-Bayes vote of the caption's words over `languages` (wordfreq's small frequency lists)."""
    from wordfreq import word_frequency

    ws = words(text)
    scores = {
        code: sum(math.log(max(word_frequency(w, code, wordlist="small"), WORD_FLOOR)) for w in ws)
        for code in languages
    }
    unknown = sum(1 for w in ws if word_frequency(w, "en", wordlist="small") <= 0.0)
    return WordVote(scores, len(ws), unknown)


@dataclass(frozen=True)
class Decision:
    """The language step's answer for one caption: English or not, what to record, and why."""

    english: bool
    lang: str
    score: float
    detail: str


def decide(
    text: str,
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
    low_accuracy: bool = False,
    min_score: float = 0.15,
    margin: float = 0.1,
    vote_words: int = 8,
    word_margin: float = 1.5,
) -> Decision:
    """The words' verdict when they leave no doubt, else lingua's, with the word vote's second
    opinion on short captions (module doc)."""
    vote = word_vote(text, tuple(languages)) if word_margin > 0 else None
    if vote is not None and vote.decides_english(word_margin):
        per_word = f"{vote.margin_per_word():.1f}/word >= {word_margin:g}"
        detail = f"{vote.detail()}; {vote.words} words, {per_word}: lingua not asked"
        return Decision(True, "en", vote.english_posterior(), detail)
    r = detect(text, tuple(languages), low_accuracy)
    detail = f"{r.lang or '?'} {r.score:.2f} (en {r.english:.2f})"
    if is_english(r, min_score, margin):
        return Decision(True, "en", r.english, detail)
    n_words = len(_WORD.findall(text))
    if r.lang not in ("", "en") and 0 < n_words <= vote_words:
        vote = vote or word_vote(text, tuple(languages))
        detail = f"{detail}; {n_words} words, {vote.detail()}"
        if vote.english_wins():
            return Decision(True, "en", r.english, detail)
    return Decision(False, r.lang, r.score, detail)
