"""Textual scene graphs from a spaCy dependency parse: one cheap walk over the tokens per caption.

Why rules over the parse plus a mined lexicon, not a second neural model: the graph must cost a
small fraction of `nlp.pipe` itself (the benchmark asks for >= 0.85 of bare spaCy throughput), so
it is a handful of list look-ups per token. The rules know English syntax (predicative adjectives,
multiword prepositions, passives, relative clauses, conjunctions); what they cannot know are the
conventions of the FACTUAL annotation ("wood desk" is a wooden desk but "coffee table" is one
object, "leg of the man" is "( man , have , leg )", "lying on" is written "lay on"). Those are
learned from FACTUAL train by `jobs/train_text.py` into `weights/factual_lexicon.json`: a few
thousand counted decisions, looked up here by word. With an empty lexicon the rules still give a
sensible graph.

Every node carries the exact list of its token indices (`SceneNode.tokens`), so that pretraining
can mask exactly its words: objects the head noun with its kept compounds, attributes their
adjective or number words, relations their predicate words only ("in front of", "sitting on", and
for "ride bicycles down a hill" the relation "ride down" is "ride" + "down", not "bicycles").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laitkit.datasets.schema import SceneNode
from laitkit.extractors.factual import NUMBER_WORDS

LEXICON_PATH = Path(__file__).resolve().parent / "weights" / "factual_lexicon.json"

NOUNS = frozenset({"NOUN", "PROPN"})
# Pronouns that name a person or group; FACTUAL writes "he" as "man" and "they" as "people".
PRONOUNS = {
    "he": "man",
    "him": "man",
    "she": "woman",
    "they": "people",
    "them": "people",
    "someone": "person",
    "somebody": "person",
    "everyone": "people",
}
REL_PRONOUNS = frozenset({"who", "that", "which", "whom", "where"})
# Nouns that turn a preposition into a multiword one: "in front of", "on top of", "on the side of".
REL_NOUNS = frozenset(
    {
        "front",
        "top",
        "side",
        "back",
        "middle",
        "edge",
        "bottom",
        "end",
        "corner",
        "center",
        "centre",
        "rear",
        "left",
        "right",
        "inside",
        "outside",
        "base",
        "tip",
        "underside",
        "surface",
        "part",
        "ahead",
    }
)
# Adverbs that head a preposition: "next to", "close to", "out of", "ahead of", "away from".
ADV_PREPS = frozenset({"next", "close", "out", "ahead", "away", "apart", "together", "along", "up", "down", "off"})
KEEP_ADV = frozenset({"next", "close", "out", "ahead"})
# Colour intensifiers that FACTUAL keeps inside the attribute: "dark brown", "navy blue".
SHADES = frozenset({"dark", "light", "bright", "pale", "navy", "deep", "royal", "sky", "baby", "hot", "neon"})
COLOURS = frozenset(
    {
        "white",
        "black",
        "blue",
        "green",
        "red",
        "brown",
        "yellow",
        "gray",
        "grey",
        "orange",
        "pink",
        "purple",
        "tan",
        "silver",
        "gold",
        "beige",
        "maroon",
        "teal",
        "turquoise",
        "golden",
        "colored",
        "coloured",
        "blonde",
    }
)
# Nouns that describe what something is made of (or its pattern, shape): the only noun modifiers
# the miner may turn into attributes ("wood desk" -> wooden); other compounds name one object.
MATERIALS = frozenset(
    {
        "wood", "wooden", "metal", "brick", "stone", "glass", "plastic", "leather", "steel", "iron", "concrete",
        "cement", "marble", "granite", "gravel", "dirt", "straw", "rubber", "paper", "cardboard", "porcelain",
        "ceramic", "copper", "brass", "chrome", "bamboo", "clay", "fabric", "fleece", "foil", "wax", "styrofoam",
        "denim", "wool", "cotton", "silk", "lace", "velvet", "tin", "aluminum", "wire", "rock", "cobblestone",
        "chainlink", "plaid", "stripe", "striped", "polka", "floral", "circle", "oval", "rectangle", "square",
        "round", "triangle", "wicker", "canvas", "tile", "asphalt", "pine", "oak", "birch", "mesh", "vinyl",
        "multi", "multicolor", "khaki", "lavender", "peach", "burgundy",
    }
)  # fmt: skip
SUBJ_DEPS = frozenset({"nsubj", "nsubjpass", "csubj"})
NOUN_SLOTS = frozenset({"pobj", "dobj", "nsubj", "conj", "ROOT", "attr"})
STRAY_DEPS = frozenset({"ROOT", "appos", "conj"})  # where the parser puts a second conjunct it lost
COPULA_DEPS = frozenset({"ROOT", "relcl", "conj", "ccomp", "advcl"})
INHERIT_DEPS = frozenset({"conj", "xcomp", "advcl", "ccomp", "pcomp"})
# "X of Y" with a container or a surface X: FACTUAL's majority writes the content Y "in" / "on" X.
# One table so that "bowl of fruit" and "plate of pasta" come out the same way.
CONTAINERS = frozenset(
    {
        "bowl", "cup", "glass", "mug", "box", "basket", "bottle", "jar", "bag", "bucket", "vase", "pot", "pan",
        "carton", "container", "crate", "can", "jug", "pitcher", "tub", "bin", "barrel", "cart", "sack", "pail",
        "tin", "kettle", "teapot", "thermos", "canister", "dumpster", "truck", "boat", "wagon", "cooler", "fridge",
        "refrigerator", "drawer", "closet",
    }
)  # fmt: skip
SURFACES = frozenset({"plate", "tray", "platter", "dish", "saucer", "board", "pizza", "shelf", "rack", "table"})
# Passive "by": an agent when its noun is animate ("parked by a police officer" -> the officer parks
# the car), a place otherwise ("parked by the curb" -> park by).
ANIMATE = frozenset(
    {
        "person", "people", "man", "woman", "boy", "girl", "child", "kid", "guy", "lady", "officer", "player",
        "worker", "police", "crowd", "dog", "cat", "horse", "cow", "elephant", "bird", "animal", "rider",
        "skier", "surfer", "chef", "driver", "student", "tourist", "couple", "family", "spectator", "fan",
        "baby", "mother", "father", "owner", "farmer", "soldier", "adult", "teenager", "team", "audience",
        "giraffe", "sheep", "zebra", "bear", "passenger", "pedestrian", "skateboarder", "snowboarder",
        "batter", "pitcher", "catcher", "umpire", "cook", "waiter", "vendor", "customer", "someone",
    }
)  # fmt: skip
# Tags of the two words of a split name (`_Walk.split_names`).
SPLIT_POS = frozenset({"NOUN", "PROPN", "VERB", "ADJ", "ADV"})
# The last word of "couch man is sitting on" / "coat man is wearing" (see `_Walk.object_gap`):
# prepositions that want an object, and verbs whose object the caption's first noun is.
GAP_PREPS = frozenset(
    {
        "on", "in", "at", "from", "to", "of", "under", "inside", "near", "by", "into", "onto", "with", "behind",
        "beside", "above", "below", "across", "through", "over", "against", "atop", "upon", "around", "between",
        "along", "toward", "towards", "beneath", "underneath", "within", "for",
    }
)  # fmt: skip
GAP_VERBS = frozenset(
    {"wear", "hold", "carry", "ride", "eat", "use", "drive", "watch", "push", "pull", "fly", "throw", "read"}
)
# Prepositions of a path: "ride bicycles down a hill" is riding down the hill, not bicycles down it.
# Verbs that link a subject to an adjective like "be": "the ground looks muddy" -> ( ground , is , muddy ).
LINKING = frozenset({"look", "seem", "appear", "become", "get", "turn", "remain", "stay", "feel", "grow"})
# Plural nouns that modify a noun without being its owner ("sports car", "glasses case").
PLURAL_MODIFIERS = frozenset({"sports", "clothes", "glasses", "pants", "jeans", "shorts", "goods", "arts", "news"})
# What a bare "-ing" verb may have and still read as an attribute ("two women skiing .").
BARE_VERB_KIDS = frozenset({"nsubj", "aux", "punct", "nummod", "det", "amod", "compound"})
MOTION_PREPS = frozenset({"down", "up", "across", "through", "along", "into", "toward", "towards", "past"})
# FACTUAL's spelling of attribute words that captions spell otherwise (train gold: "blonde" 75
# times and "blond" never, "multi-colored" 45 times and "multicolored" never); without it the
# mined lexicon learns to drop "blond" altogether.
SPELLINGS = {
    "blond": "blonde",
    "multicolored": "multi-colored",
    "multicolor": "multi-colored",
    "multi colored": "multi-colored",
}
# Words that make one attribute with the word before them: "cream colored", "heart shaped"
# (train gold: "light colored" 17, "cream colored" 8, "orange colored" 5, "rainbow colored" 3, ...).
JOINED_ADJ = frozenset({"colored", "coloured", "shaped"})


@dataclass
class Lexicon:
    """Counted FACTUAL conventions mined from train; every table maps a lower-cased key to a decision.

    modifiers: adjective (or participle) attribute text -> the text to write, "" to drop it.
    compounds: noun modifier ("wood" in "wood desk") -> attribute text to write ("wooden"), "" to
        drop it, "@have" for an object of its own that has the head ("clock face" -> ( clock , have ,
        face )), "@P" for one related to it by predicate P ("wall clock" -> "@~on": ( clock , on ,
        wall ); "~": the head is the subject); absent = part of the object name ("coffee table").
    compound_pairs: "modifier|head lemma" -> the same decisions ("=" = part of the name), where a
        pair differs from its modifier's decision ("computer screen" vs "computer desk").
    quantities: noun before "of" that is a quantity ("group", "piece") -> attribute text of the
        noun after "of" ("group of"); the quantity noun is then not an object.
    rewrite: "pred", "pred|obj", "subj|pred" -> [new predicate, swap] or "attr:<text>" or "drop".
    verb_lemmas: inflected verb -> lemma where the rule lemmatiser is wrong ("riding" -> "ride").
    drop_nouns: head nouns FACTUAL almost never keeps as objects ("picture", "view").
    names: object name -> FACTUAL spelling ("side walk" -> "sidewalk").
    verb_forms: "-ing" verb form -> lemma, to repair "leaf laying on ..." tagged as one compound noun.
    adj_names: "adjective noun" pairs FACTUAL writes as one object ("hot dog", "right hand").
    ing_nouns: "-ing" words that are objects ("building", "railing") even when tagged as verbs.
    naming: the learned object-naming tagger (`scene_graph_naming.NamingTagger`), not part of the
        mined file: `TextExtractor` sets it; None = the tables above decide every name alone.
    """

    modifiers: dict[str, str] = field(default_factory=dict)
    compounds: dict[str, str] = field(default_factory=dict)
    compound_pairs: dict[str, str] = field(default_factory=dict)
    quantities: dict[str, str] = field(default_factory=dict)
    rewrite: dict[str, Any] = field(default_factory=dict)
    verb_lemmas: dict[str, str] = field(default_factory=dict)
    drop_nouns: frozenset[str] = frozenset()
    names: dict[str, str] = field(default_factory=dict)
    verb_forms: dict[str, str] = field(default_factory=dict)
    adj_names: frozenset[str] = frozenset()
    ing_nouns: frozenset[str] = frozenset()
    verb_attrs: bool = True
    naming: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Lexicon:
        """The shipped lexicon (or `path`); an empty lexicon when the file is absent."""
        p = Path(path) if path is not None else LEXICON_PATH
        if not p.exists():
            return cls()
        d = json.loads(p.read_text(encoding="utf-8"))
        return cls(
            modifiers=d.get("modifiers", {}),
            compounds=d.get("compounds", {}),
            compound_pairs=d.get("compound_pairs", {}),
            quantities=d.get("quantities", {}),
            rewrite=d.get("rewrite", {}),
            verb_lemmas=d.get("verb_lemmas", {}),
            drop_nouns=frozenset(d.get("drop_nouns", [])),
            names=d.get("names", {}),
            verb_forms=d.get("verb_forms", {}),
            ing_nouns=frozenset(d.get("ing_nouns", [])),
            adj_names=frozenset(d.get("adj_names", [])),
            verb_attrs=bool(d.get("verb_attrs", True)),
        )


class _Walk:
    """State of one caption's walk; built per doc, thrown away after `run`."""

    __slots__ = (
        "lex",
        "n",
        "lower",
        "lemma",
        "pos",
        "tag",
        "dep",
        "head",
        "kids",
        "ws",
        "obj_of",
        "nodes",
        "seen",
        "alias",
        "with_back",
        "skip",
        "nouns",
        "certain",
        "certain_toks",
    )

    def __init__(
        self,
        lex: Lexicon,
        lower: list[str],
        lemma: list[str],
        pos: list[str],
        tag: list[str],
        dep: list[str],
        head: list[int],
        ws: list[str],
        nouns: frozenset[int] = frozenset(),
    ) -> None:
        self.lex = lex
        self.nouns = nouns
        self.n = len(lower)
        self.lower, self.lemma, self.pos, self.tag, self.dep, self.head, self.ws = lower, lemma, pos, tag, dep, head, ws
        self.retag()
        lemma, pos, tag, dep, head = self.lemma, self.pos, self.tag, self.dep, self.head
        kids: list[list[int]] = [[] for _ in range(self.n)]
        for i, h in enumerate(head):
            if h != i:
                kids[h].append(i)
        self.kids = kids
        self.obj_of: dict[int, int] = {}  # token index of an object's head -> node index
        self.alias: dict[int, int] = {}  # quantity noun token -> the noun it quantifies
        self.skip: set[int] = set()  # nouns that are part of a multiword preposition
        # "a lake with cows in it": Y of "X with Y" -> (X, words, tokens) of Y's relation back to X
        self.with_back: dict[int, tuple[int, str, list[int]]] = {}
        self.nodes: list[SceneNode] = []
        self.seen: set[tuple] = set()
        # node indices of the facts of constructions the rules are sure of (containers, animate
        # agents, "with ... in it", possessives): the learned proposer keeps them as they are
        self.certain: set[int] = set()
        self.certain_toks: set[int] = set()  # attribute words whose reading is a sure construction

    def retag(self) -> None:
        """Repair two tagger errors typical of caption fragments, on private copies of the lists.

        "a leaf laying on the ground": "leaf laying" parsed as a compound noun -> "laying" is a verb
        modifying "leaf". "window on building": "building" tagged VBG -> a noun.
        """
        lex = self.lex
        lower, pos, dep, head = self.lower, self.pos, self.dep, self.head
        fix: list[tuple[int, str]] = []
        has_cc = "cc" in dep  # (one C-level scan: most captions coordinate nothing)
        for i in range(self.n):
            w = lower[i]
            h = head[i]
            if (
                (dep[i] == "ROOT" or dep[i] == "appos")
                and i > 1
                and (dep[i - 1] == "dobj" or dep[i - 1] == "pobj")
                and pos[i] in NOUNS
                and self._split_compound(i) is not None
            ):
                fix.append((i, "split"))  # "cat sitting in the bathroom sink" with "sink" the root
                continue
            if dep[i] == "appos" and pos[i] in NOUNS and self._appos_object(i) >= 0:
                fix.append((i, "dobj"))  # "an adult kicking the soccer ball" with "ball" an apposition
                continue
            if has_cc and dep[i] in STRAY_DEPS and pos[i] in NOUNS and self._stray_conjunct(i) is not None:
                fix.append((i, "conj"))  # "post supporting a light and signs": "signs" the root
                continue
            if (
                dep[i] == "nmod"
                and pos[i] in NOUNS
                and i + 2 < self.n
                and (self.tag[i + 1] == "VBG" or lower[i + 1] in lex.verb_forms)
                and dep[i + 1] == "amod"
                and h == head[i + 1]
                and h > i + 1
                and pos[h] in NOUNS
            ):
                fix.append((i, "nmod_acl"))  # "hand touching board": "hand" and "touching" both modifiers of "board"
                continue
            if (
                dep[i] == "nsubj"
                and h == i + 1
                and pos[i] in NOUNS
                and dep[h] == "ROOT"
                and (pos[h] in NOUNS or h in self.nouns)
            ):
                fix.append((i, "compound"))  # "the dogs head on the pillow": the owner read as a subject
                continue
            if w == "to" and pos[i] != "ADP" and self._next_to_object(i):
                fix.append((i, "next_to"))  # "pole next to sign": "to sign" parsed as an infinitive
                continue
            if dep[i] == "npadvmod" and pos[i] in NOUNS and h == i + 1 and self.tag[h] == "VBG":
                # "woman holding kite": the subject parsed as an adverbial noun of "holding"
                fix.append((i, "subj" if dep[h] != "amod" else "acl"))
                continue
            if (
                pos[i] == "VERB"
                and dep[i] == "ROOT"
                and self.tag[i] in ("VB", "VBP")
                and (i == 0 or pos[i - 1] in ("DET", "ADJ"))
                and not any(dep[k] in SUBJ_DEPS or dep[k] == "dobj" for k in range(self.n) if head[k] == i and k != i)
            ):
                fix.append((i, "n"))  # "sign on a post": a caption fragment, not an imperative
                continue
            if (
                pos[i] == "ADJ"
                and dep[i] == "amod"
                and head[i] == i - 1
                and pos[i - 1] == "NOUN"
                and (i + 1 == self.n or pos[i + 1] in ("ADP", "VERB", "PUNCT", "AUX"))
                and (i + 1 == self.n or lower[i + 1] != "of")  # "a cooler full of drinks"
            ):
                fix.append((i, "s"))  # "fire hydrant" parsed as "fire" modified by an adjective "hydrant"
                continue
            if pos[i] == "ADJ" and dep[i] in ("pobj", "dobj", "nsubj", "nsubjpass") and w not in REL_NOUNS:
                fix.append((i, "n"))  # "man on skateboard" with "skateboard" tagged ADJ
                continue
            if i in self.nouns:
                fix.append((i, "noun"))  # the learned noun tagger's verdict (scene_graph_filter.py)
                continue
            if (
                w == "can"
                and self.tag[i] == "MD"
                and i > 0
                and pos[i - 1] in NOUNS
                and (i + 1 == self.n or self.tag[i + 1] not in ("VB", "RB"))
            ):
                fix.append((i, "can"))  # "trash can by the curb": a noun, not a modal
                continue
            if w[-3:] != "ing":
                continue
            if (
                pos[i] == "NOUN"
                and w in lex.verb_forms
                and w not in lex.ing_nouns
                and i > 0
                and (dep[i - 1] == "compound" and head[i - 1] == i and pos[i - 1] in NOUNS)
            ):
                fix.append((i, "v"))
            elif pos[i] == "NOUN" and dep[i] in ("acl", "relcl") and w in lex.verb_forms and w not in lex.ing_nouns:
                fix.append((i, "verb"))  # "a zebra standing under the tree" with "standing" tagged a noun
            elif pos[i] == "VERB" and w in lex.ing_nouns and dep[i] in NOUN_SLOTS:
                fix.append((i, "n"))
        if lex.naming is not None:
            fix.extend((i, "pair") for i in self.split_names(*lex.naming.split_pairs()))
        x = self.object_gap()
        if x >= 0:
            fix.append((x, "gap"))
        else:
            x = self.stranded_acl()
            if x >= 0:
                fix.append((x, "relcl"))
        if not fix:
            return
        self.pos, self.tag, self.dep, self.head, self.lemma = (
            list(pos),
            list(self.tag),
            list(dep),
            list(head),
            list(self.lemma),
        )
        pos, tag, dep, head, lemma = self.pos, self.tag, self.dep, self.head, self.lemma
        for i, kind in fix:
            if kind == "verb":
                self._as_verb(i)
                continue
            if kind == "compound":
                dep[i] = "compound"
                continue
            if kind == "relcl":
                dep[i] = "relcl"
                self._stranded_prep_as_prep()
                continue
            if kind == "split":
                self._repair_split_compound(i)
                continue
            if kind == "dobj":
                v = self._appos_object(i)
                head[i], dep[i] = v, "dobj"
                self._as_verb(v)
                continue
            if kind == "conj":
                self._repair_stray_conjunct(i)
                continue
            if kind == "next_to":
                self._repair_next_to(i)
                continue
            if kind == "s":
                h = i - 1
                pos[i], tag[i], lemma[i] = "NOUN", "NN", lower[i]
                head[i], dep[i] = (head[h], dep[h]) if head[h] != h else (i, "ROOT")
                for k in range(self.n):
                    if head[k] == h and k != h and k != i:
                        head[k] = i
                head[h], dep[h] = i, "compound"
                continue
            if kind == "subj":
                dep[i] = "nsubj"
                continue
            if kind == "can":
                x = i - 1
                pos[i], tag[i], lemma[i] = "NOUN", "NN", "can"
                up, below = head[x], x
                while up != i and head[up] != up:
                    up, below = head[up], up
                if up == i and below != x:  # "bag in trash can" with "can" the root: "bag" is
                    head[below], dep[below] = below, "ROOT"
                    for k in range(self.n):
                        if head[k] == i and k != x and k != below:
                            head[k] = below
                if head[x] == x:
                    head[i], dep[i] = i, "ROOT"
                elif head[x] != i:
                    head[i], dep[i] = head[x], dep[x]  # "garbage can filled with trash": the subject
                h = head[i]
                if h != i and pos[h] == "ADP" and head[h] == h:  # "garbage can in street"
                    head[i], dep[i] = i, "ROOT"
                    head[h], dep[h] = i, "prep"
                for k in range(x + 1, self.n):
                    if head[k] == x and k != i:
                        head[k] = i
                head[x], dep[x] = i, "compound"
                continue
            if kind == "pair":  # "fire hydrant" with "hydrant" an adverb or a stray dependent
                j = i - 1
                for k in (j, i):
                    if pos[k] not in NOUNS:
                        plural = tag[k] in ("VBZ", "NNS") and lower[k][-1:] == "s" and lower[k][-2:] != "ss"
                        pos[k], tag[k] = "NOUN", "NNS" if plural else "NN"
                        lemma[k] = lower[k][:-1] if plural else lower[k]
                if not self._below(head[j], i):  # "i" is not above "j": it takes j's place in the tree
                    head[i], dep[i] = (head[j], dep[j]) if head[j] != j else (i, "ROOT")
                for k in range(self.n):
                    if head[k] == j and k != i:
                        head[k] = i
                head[j], dep[j] = i, "compound"
                continue
            if kind == "gap":  # "couch man is sitting on": the couch that the man is sitting on
                y = head[i]
                if pos[y] in ("VERB", "AUX"):  # "table the sandwich is on": X hung from the verb
                    head[i], dep[i] = i, "ROOT"
                    head[y], dep[y] = i, "relcl"
                    self._stranded_prep_as_prep()
                    continue
                v = head[y]
                for k in range(i):
                    if head[k] == y:
                        head[k] = i
                head[i], dep[i] = i, "ROOT"
                head[v], dep[v] = i, "relcl"
                self._stranded_prep_as_prep()
                continue
            if kind == "noun":
                plural = tag[i] in ("VBZ", "NNS") and lower[i][-1:] == "s" and lower[i][-2:] != "ss"
                pos[i], tag[i] = "NOUN", "NNS" if plural else "NN"
                lemma[i] = lower[i][:-1] if plural else lower[i]
                h = head[i]
                if dep[i] in ("advmod", "npadvmod") and h > i and pos[h] in ("VERB", "AUX"):
                    dep[i] = "nsubj"  # "surfboard leaning on the tree"
                elif dep[i] == "amod" and h > i and pos[h] in NOUNS:
                    dep[i] = "compound"  # "the oven door"
                continue
            if kind == "nmod_acl":  # "metal pole supporting sign": "metal" goes with "pole"
                for k in range(i):
                    if head[k] == head[i]:
                        head[k] = i
                self._as_verb(i + 1)
                kind = "acl"
            if kind == "acl":  # "lady holding baby": holding was an adjective of baby
                v = i + 1
                y = head[v]
                if y <= v or pos[y] not in NOUNS:
                    continue
                head[i], dep[i] = (head[y], dep[y]) if head[y] != y else (i, "ROOT")
                head[v], dep[v] = i, "acl"
                head[y], dep[y] = v, "dobj"
                continue
            if kind == "n":
                pos[i], tag[i] = "NOUN", "NNS" if lower[i][-1:] == "s" and tag[i] == "VBZ" else "NN"
                lemma[i] = lower[i]
                continue
            j = i - 1
            pos[i], tag[i], lemma[i] = "VERB", "VBG", lex.verb_forms[lower[i]]
            y = head[i]
            if dep[i] == "amod" and y > i and pos[y] in NOUNS:  # "silver pole holding sign": Y its object
                for k in range(j):
                    if head[k] == y:
                        head[k] = j
                head[j], dep[j] = (head[y], dep[y]) if head[y] != y else (j, "ROOT")
                head[i], dep[i] = j, "acl"
                head[y], dep[y] = i, "dobj"
                continue
            head[j], dep[j] = (head[i], dep[i]) if head[i] != i else (j, "ROOT")
            for k in range(j):
                if head[k] == i and dep[k] in ("det", "amod", "compound", "nummod", "poss", "quantmod"):
                    head[k] = j
            head[i], dep[i] = j, "acl"

    def _below(self, x: int, a: int) -> bool:
        """Whether `a` is `x` or one of its ancestors in the (repaired) tree."""
        head = self.head
        while x != a and head[x] != x:
            x = head[x]
        return x == a

    def _split_compound(self, y: int) -> int | None:
        """The subject to re-root on (or -1) when noun `y` is the second word of a two-noun name
        whose first word `y - 1` the parser made the object of a verb or preposition while `y`
        became the root ("cat sitting in the bathroom sink": "cat" its subject) or an apposition
        of an ancestor ("fireman using a water hydrant"); else None.

        Why: the name's head then hangs from nothing the relation rules read, so the pair gets no
        relation (held-out train captions: pairs without any candidate although gold relates them).
        """
        pos, dep, head = self.pos, self.dep, self.head
        x = y - 1
        if x < 1 or pos[x] not in NOUNS or dep[x] not in ("dobj", "pobj") or head[x] == y:
            return None
        if pos[y] != "NOUN" or self.lower[y] in self.lex.verb_forms:  # "zebra standing", "the word xcel"
            return None
        if any(head[k] == y for k in range(y + 1, self.n) if dep[k] != "punct" and dep[k] != "prep"):
            return None
        if dep[y] == "appos":
            return -1 if self._below(x, head[y]) else None
        subs = [k for k in range(x) if head[k] == y and dep[k] in ("nsubj", "nsubjpass") and pos[k] in NOUNS]
        if len(subs) != 1:
            return None
        return subs[0] if self._below(x, subs[0]) else None

    def _repair_split_compound(self, y: int) -> None:
        """The repair of `_split_compound`: `y` takes its first word's place, which becomes its
        compound; a root `y`'s subject becomes the root, with `y`'s other dependents before it."""
        s = self._split_compound(y)
        if s is None:
            return
        head, dep = self.head, self.dep
        x = y - 1
        if s >= 0:
            head[s], dep[s] = s, "ROOT"
            for k in range(x):
                if head[k] == y and k != s:
                    head[k] = s
        elif dep[y] == "appos":
            for k in range(y + 1, self.n):
                if head[k] == y and dep[k] == "prep":
                    head[k] = head[y]
        for k in range(self.n):
            if head[k] == x and k != y:
                head[k] = y
        head[y], dep[y] = head[x], dep[x]
        head[x], dep[x] = y, "compound"

    def _appos_object(self, y: int) -> int:
        """The verb whose missing object noun `y` is, when the parser made `y` an apposition of the
        noun the verb modifies ("an adult kicking the soccer ball": "ball" an apposition of
        "adult", "kicking" without an object); -1 otherwise."""
        pos, dep, head = self.pos, self.dep, self.head
        k = y - 1
        while k >= 0 and head[k] == y and pos[k] in ("DET", "ADJ", "NUM", "NOUN", "PROPN"):
            k -= 1
        v = k
        if v < 1 or head[v] != head[y] or dep[v] not in ("acl", "relcl"):
            return -1
        if pos[v] != "VERB" and self.lower[v] not in self.lex.verb_forms:  # "kicking" tagged a noun
            return -1
        if any(head[t] == v and dep[t] in ("dobj", "prep", "prt", "ccomp", "xcomp") for t in range(self.n)):
            return -1
        return v

    def _stray_conjunct(self, y: int) -> tuple[int, int, int] | None:
        """(subject or -1, conjunction, first conjunct) when noun `y`, right after "and"/"or" (and
        its own modifiers), is the second conjunct of an object that the parser attached higher up:
        made the root with the caption's head as its subject ("a post supporting a traffic light
        and signs"), or an apposition/conjunct of an ancestor ("a man wearing a blue shirt and gray
        jacket", "plate holding a sandwich and condiments"); else None. The conjunction's own head
        says which noun the coordination belongs to.

        Why: the second conjunct then gets no relation from the verb or preposition of the first
        (held-out train captions: the commonest pair that had no candidate at all although gold
        relates it, "( man , wear , jacket )").
        """
        pos, dep, head, lower = self.pos, self.dep, self.head, self.lower
        c = y - 1
        while c >= 0 and head[c] == y and pos[c] in ("DET", "ADJ", "NUM", "NOUN", "PROPN") and dep[c] != "nsubj":
            c -= 1
        if c < 2 or dep[c] != "cc" or lower[c] not in ("and", "or"):
            return None
        h = head[c]
        if h >= c or pos[h] not in NOUNS or dep[h] not in ("dobj", "pobj", "conj") or head[y] == h:
            return None
        if dep[y] != "ROOT":  # an apposition or conjunct of an ancestor of the first conjunct
            # (y's head is above h, y itself is not: y would be met first, its head right after)
            return (-1, c, h) if self._below(h, head[y]) and not self._below(h, y) else None
        subs = [k for k in range(h) if head[k] == y and dep[k] in ("nsubj", "nsubjpass") and pos[k] in NOUNS]
        if len(subs) != 1:
            return None
        return (subs[0], c, h) if self._below(h, subs[0]) else None

    def _repair_stray_conjunct(self, y: int) -> None:
        """The repair of `_stray_conjunct`: `y` becomes a conjunct of the first conjunct; a root
        `y`'s subject becomes the root (with `y`'s dependents before the conjunction), an
        apposition's prepositions go back to the noun it hung from ("... and gray pants on a
        skateboard": the boy is on it)."""
        got = self._stray_conjunct(y)
        if got is None:
            return
        s, c, h = got
        head, dep = self.head, self.dep
        if s >= 0:
            head[s], dep[s] = s, "ROOT"
            for k in range(c):
                if head[k] == y and k != s:
                    head[k] = s
        else:
            for k in range(y + 1, self.n):
                if head[k] == y and dep[k] == "prep":
                    head[k] = head[y]
        head[y], dep[y] = h, "conj"

    def _next_to_object(self, i: int) -> bool:
        """Is token `i` the "to" of "X next to Y" that the parser read as an infinitive marker,
        with Y (after only determiners/adjectives/numbers) tagged as a verb or left the root?

        Why: in fragments like "woman next to train" or "plate next to glass" spaCy reads "to train"
        as an infinitive, so Y is no object and the pair gets no relation at all (on held-out train
        captions the commonest "next to" miss); here "to" becomes a preposition and Y its object.
        """
        lower, pos, dep, head = self.lower, self.pos, self.dep, self.head
        if i < 2 or i + 1 >= self.n or lower[i - 1] not in ("next", "close"):
            return False
        y = head[i]
        x = head[i - 1]
        if y <= i or dep[i] not in ("aux", "prep") or pos[y] not in ("VERB", "NOUN", "AUX", "PROPN"):
            return False
        if any(pos[k] not in ("DET", "ADJ", "NUM") for k in range(i + 1, y)):
            return False
        if x >= i - 1 or (pos[x] not in NOUNS and pos[x] != "VERB") or self.tag[y] in ("VBG", "VBN"):
            return False
        return not any(head[k] == y and dep[k] == "dobj" for k in range(self.n))

    def _repair_next_to(self, i: int) -> None:
        """Repair "X next to Y" read as an infinitive (see `_next_to_object`): "to" a preposition
        under "next", Y a noun under "to"; when X hung below Y (Y was the root), X takes Y's place."""
        lower, pos, tag, dep, head, lemma = self.lower, self.pos, self.tag, self.dep, self.head, self.lemma
        t, y = i - 1, head[i]
        x = head[t]
        if self._below(x, y):  # x is below y: x takes y's place in the tree, with y's other dependents
            xx = x
            while head[xx] != y:
                xx = head[xx]
            head[xx], dep[xx] = (head[y], dep[y]) if head[y] != y else (xx, "ROOT")
            for k in range(self.n):
                if head[k] == y and k != i and k != xx and not (i < k < y):
                    head[k] = xx
        if pos[y] not in NOUNS:
            plural = tag[y] in ("VBZ", "NNS") and lower[y][-1:] == "s" and lower[y][-2:] != "ss"
            pos[y], tag[y] = "NOUN", "NNS" if plural else "NN"
            lemma[y] = lower[y][:-1] if plural else lower[y]
        head[y], dep[y] = i, "pobj"
        pos[i], tag[i], dep[i], head[i], lemma[i] = "ADP", "IN", "prep", t, "to"

    def split_names(self, pairs: frozenset[str], first: frozenset[str]) -> list[int]:
        """Second words of two-word object names the parse split ("fire hydrant", "stop sign").

        spaCy often misreads the second word of a frequent two-word name in a caption fragment
        ("fire/NOUN hydrant/ADV", "stop/VERB sign/VERB", "stop light" with "light" a clause), so
        the rules make "fire" an object and "hydrant" another, or none. Where FACTUAL train gold
        writes the pair as one object often and almost never as head + attribute (the naming
        tagger's count table, `NamingTagger.split_pairs`), the pair is re-read as one compound
        noun. `pairs`: those "modifier|head" keys; `first`: their modifiers, looked up first so
        that most word pairs cost one set look-up.
        """
        pos, dep, head, lemma, lower = self.pos, self.dep, self.head, self.lemma, self.lower
        out: list[int] = []
        for i in range(1, self.n):
            j = i - 1
            if lower[j] not in first or (dep[j] == "compound" and head[j] == i):
                continue
            if pos[i] in SPLIT_POS and pos[j] in SPLIT_POS and (not out or out[-1] != j):
                if lemma[j].lower() + "|" + lemma[i].lower() in pairs:
                    out.append(i)
        return out

    def _stranded_verb(self) -> int:
        """The verb of a caption that ends in a preposition without its object ("... is on") or in
        a transitive verb without one ("... is wearing"), else -1."""
        pos, dep, head, lower = self.pos, self.dep, self.head, self.lower
        last = self.n - 1
        while last >= 0 and pos[last] == "PUNCT":
            last -= 1
        if last < 2:
            return -1
        if pos[last] == "ADP" and dep[last] in ("prep", "prt", "advmod") and lower[last] in GAP_PREPS:
            if any(head[k] == last and k != last for k in range(self.n)):
                return -1
            return head[last]
        if pos[last] == "VERB" and self.lemma[last].lower() in GAP_VERBS:
            return last
        return -1

    def _stranded_prep_as_prep(self) -> None:
        """The caption's last word, a stranded preposition the parser made an adverb ("the chair
        the flowers are on"), as the preposition the relation rules read."""
        last = self.n - 1
        while last >= 0 and self.pos[last] == "PUNCT":
            last -= 1
        if last >= 0 and self.pos[last] == "ADP" and self.dep[last] == "advmod":
            self.dep[last] = "prep"

    def stranded_acl(self) -> int:
        """The verb of "X that Y is on" parsed as a clausal modifier of X ("white table that the
        cake is on": "is" an acl of "table"), whose subject Y is a noun, else -1: it is a relative
        clause on X, whose gap the missing object is ("( cake , on , table )")."""
        pos, dep, head = self.pos, self.dep, self.head
        v = self._stranded_verb()
        if v < 0 or dep[v] != "acl" or pos[v] not in ("VERB", "AUX") or not self.is_noun(head[v]):
            return -1
        kids = [k for k in range(self.n) if head[k] == v and k != v]
        if any(dep[k] in ("dobj", "attr", "dative", "ccomp", "xcomp") for k in kids):
            return -1
        return v if any(dep[k] in SUBJ_DEPS and pos[k] in NOUNS for k in kids) else -1

    def object_gap(self) -> int:
        """The object noun X of a caption "X Y is V-ing PREP" / "X Y is wearing", else -1.

        FACTUAL's region captions often name an object by what another does on it, with no
        relative pronoun: "couch man is sitting on", "coat man is wearing", "table fruit is on".
        spaCy reads "couch man" as one compound subject, so the couch is never an object and the
        relation has no object. When the caption ends in a preposition without its object (or a
        transitive verb without one) and the verb's single subject Y has a noun modifier X at its
        left edge, X is the object the clause is about: the walk then reads the clause as a
        relative clause on X, whose gap is the missing object ("( man , sit on , couch )").
        """
        pos, dep, head = self.pos, self.dep, self.head
        v = self._stranded_verb()
        if v < 0 or head[v] != v or pos[v] not in ("VERB", "AUX"):
            return -1
        subs = []
        advs = []
        for k in range(self.n):
            if head[k] == v and k != v:
                if dep[k] in ("dobj", "attr", "dative", "ccomp", "xcomp"):
                    return -1
                if dep[k] in SUBJ_DEPS:
                    subs.append(k)
                elif dep[k] == "npadvmod":
                    advs.append(k)
        if len(subs) == 1 and pos[subs[0]] in NOUNS:
            y = subs[0]
            x = next((k for k in range(y) if head[k] == y and dep[k] == "compound" and pos[k] in NOUNS), -1)
            if x >= 0 and not any(pos[k] not in ("DET", "ADJ", "NUM") and head[k] != x for k in range(x)):
                return x
        # "table the sandwich is on", "the ocean the boat is on": X a dependent of the verb itself
        both = sorted(k for k in subs + advs if pos[k] in NOUNS)
        if len(both) != 2 or len(subs) + len(advs) != 2 or dep[both[1]] not in SUBJ_DEPS:
            return -1
        x, y = both
        if any(pos[k] not in ("DET", "ADJ", "NUM") and head[k] != x for k in range(x)):
            return -1
        return x if all(head[k] == y for k in range(x + 1, y)) else -1

    # --- helpers --------------------------------------------------------------------------------

    def is_noun(self, i: int) -> bool:
        return self.pos[i] in NOUNS or (self.pos[i] == "PRON" and self.lower[i] in PRONOUNS)

    def child(self, i: int, deps: tuple[str, ...] | frozenset[str]) -> list[int]:
        return [k for k in self.kids[i] if self.dep[k] in deps]

    def conj_group(self, i: int) -> list[int]:
        """`i` and the nouns coordinated with it to its right ("trees and bushes")."""
        out = [i]
        stack = [i]
        while stack:
            j = stack.pop()
            for k in self.kids[j]:
                if self.dep[k] == "conj" and self.is_noun(k):
                    out.append(k)
                    stack.append(k)
        return out

    def coord_root(self, i: int) -> int:
        while self.dep[i] == "conj" and self.head[i] != i and self.is_noun(self.head[i]):
            i = self.head[i]
        return i

    def resolve(self, i: int) -> int | None:
        """Node index of the object whose head is token `i` (through quantity aliases)."""
        i = self.alias.get(i, i)
        return self.obj_of.get(i)

    def verb_lemma(self, i: int) -> str:
        return self.lex.verb_lemmas.get(self.lower[i]) or self.lemma[i].lower()

    def add(self, node: SceneNode, key: tuple) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.nodes.append(node)

    # --- objects and their attributes -----------------------------------------------------------

    def prep_phrase(self, p: int) -> tuple[str, int, int, list[int], list[int]]:
        """A preposition's words, last token index, its object, the object's conjuncts, and the
        preposition's own tokens: "in front of X" -> ("in front of", of, X, [X], [in, front, of])."""
        words = [self.lower[p]]
        toks = [p]
        last = p
        cur = p
        for _ in range(4):  # "on the right side of": at most a few hops
            objs = self.child(cur, ("pobj",))
            if objs:
                o = objs[0]
                if self.lemma[o].lower() in REL_NOUNS:
                    ofs = [k for k in self.kids[o] if self.dep[k] == "prep" and self.lower[k] == "of"]
                    if ofs and self.child(ofs[0], ("pobj",)):
                        for k in self.kids[o]:
                            if self.dep[k] in ("amod", "compound") and k < o and self.lower[k] in ("right", "left"):
                                words.append("the")
                                words.append(self.lower[k])
                                toks.append(k)
                                toks.extend(d for d in self.kids[o] if d < k and self.lower[d] == "the")
                        words.append(self.lemma[o].lower())
                        words.append("of")
                        toks.append(o)
                        toks.append(ofs[0])
                        self.skip.add(o)
                        cur = last = ofs[0]
                        continue
                    if not ofs:
                        y = self._bare_of_object(o)
                        if y >= 0:  # "a mirror in front a sink": "of" left out, "sink" an apposition
                            words.append(self.lemma[o].lower())
                            words.append("of")
                            toks.append(o)
                            self.skip.add(o)
                            return " ".join(words), o, y, self.conj_group(y), toks
                return " ".join(words), last, o, self.conj_group(o), toks
            nxt = [k for k in self.kids[cur] if self.dep[k] in ("prep", "pcomp") and self.pos[k] == "ADP"]
            if nxt:
                cur = last = nxt[0]
                words.append(self.lower[cur])
                toks.append(cur)
                continue
            break
        return " ".join(words), last, -1, [], toks

    def _as_verb(self, v: int) -> None:
        """Token `v`, an "-ing" form the tagger read as an adjective or noun, as the verb it is."""
        if self.pos[v] != "VERB" and self.lower[v] in self.lex.verb_forms:
            self.pos[v], self.tag[v], self.lemma[v] = "VERB", "VBG", self.lex.verb_forms[self.lower[v]]

    def _bare_of_object(self, o: int) -> int:
        """The noun after relation noun `o` ("front", "top", "side") that the parser made an
        apposition because the caption left out "of" ("a mirror in front a sink", "a board on top
        a store"), when only its own modifiers stand between them; -1 otherwise."""
        k = o + 1
        while k < self.n and self.pos[k] in ("DET", "ADJ", "NUM", "NOUN", "PROPN") and self.dep[k] != "appos":
            k += 1
        if k >= self.n or self.dep[k] != "appos" or not self.is_noun(k):
            return -1
        return k if all(self.head[t] == k for t in range(o + 1, k)) else -1

    def find_objects(self) -> None:
        lower, lemma, dep, head = self.lower, self.lemma, self.dep, self.head
        lex = self.lex
        # Quantities first: "a group of birds" makes "group of" an attribute of "birds".
        for i in range(self.n):
            if self.pos[i] in NOUNS and lemma[i].lower() in lex.quantities:
                for k in self.kids[i]:
                    if dep[k] == "prep" and lower[k] == "of":
                        objs = self.child(k, ("pobj",))
                        if objs and self.is_noun(objs[0]):
                            self.alias[i] = objs[0]
        self.with_pronouns()
        # Nouns inside multiword prepositions are not objects.
        for i in range(self.n):
            if self.dep[i] == "prep" and (self.pos[head[i]] != "ADP" or head[i] == i):
                self.prep_phrase(i)
        for i in range(self.n):
            if not self.is_noun(i) or i in self.alias or i in self.skip:
                continue
            if lower[i] in SHADES and i + 1 < self.n and lower[i + 1] in COLOURS:
                continue  # "navy blue": part of an attribute
            if dep[i] == "compound" and head[i] != i and self.is_noun(head[i]):
                root = i
                while dep[root] == "compound" and head[root] != root and self.is_noun(head[root]):
                    root = head[root]
                if (self.compound(i, root) or "")[:1] != "@":
                    continue  # part of the name, an attribute or dropped: not an object of its own
            if self.pos[i] == "PRON":
                name = PRONOUNS[lower[i]]
                start = i
            else:
                start = i
                j = i - 1
                naming = lex.naming
                while j >= 0:
                    if lower[j] == "-" and j > 0 and self.ws[j - 1][-1:] != " " and self.ws[j][-1:] != " ":
                        start = j - 1  # "t-shirt": a hyphenated word is one word
                        j -= 2
                    elif naming is not None and (rule := self.name_rule(j, i, start)) is not None:
                        if not naming.keep(j, i, start, rule, self):
                            break
                        if rule == "own":  # its object node is the last one made: it joins this name
                            del self.obj_of[j]
                            self.nodes.pop()
                        start = j  # the learned tagger: "tennis racket" one object, "wooden table" not
                        j -= 1
                    elif dep[j] == "compound" and self._in_compound(j, i) and self.compound(j, i) in (None, "="):
                        start = j
                        j -= 1
                    elif j == start - 1 and f"{lower[j]} {lower[start]}" in lex.adj_names:
                        start = j  # "hot dog", "teddy bear", "right hand": lexicalised adjective + noun
                        j -= 1
                    else:
                        break
                hl = lemma[i].lower()
                name = ("".join(self.ws[start:i]).lower() + hl) if start < i else hl
                name = lex.names.get(name, name)
                if name in lex.drop_nouns:
                    continue
                if naming is not None and naming.drop_object(i, name, self):
                    continue  # the object gate: "in the background", "taking a picture"
            count = 1
            if self.tag[i] in ("NNS", "NNPS"):
                count = 2
            node_idx = len(self.nodes)
            self.obj_of[i] = node_idx
            self.nodes.append(SceneNode(kind="object", lemma=name, span=(start, i + 1), count=count))

    def with_pronouns(self) -> None:
        """ "X with Y in it", "X with Y hanging from it", "X with Y on top": Y's relation is to X.

        "it"/"them" inside the "with" phrase becomes an alias of X, so Y's own preposition or verb
        yields ( Y , in , X ); a bare "on top" gives ( Y , on top of , X ). `noun_relations` then
        skips the vaguer ( X , with , Y ).
        """
        lower, dep = self.lower, self.dep
        for p in range(self.n):
            if lower[p] != "with" or dep[p] != "prep" or not self.is_noun(self.head[p]):
                continue
            x = self.head[p]
            bare = None  # "X with Y on top": "on top" hangs off X in spaCy's parse
            for t in self.kids[x]:
                objs = self.child(t, ("pobj",)) if t > p and dep[t] == "prep" else []
                if len(objs) == 1 and lower[objs[0]] in REL_NOUNS and not self.kids[objs[0]]:
                    bare = (t, objs[0])
            for y in self.child(p, ("pobj",)):
                if not self.is_noun(y):
                    continue
                if bare is not None:
                    t, r = bare
                    self.skip.add(r)
                    self.with_back[y] = (x, f"{lower[t]} {lower[r]} of", [t, r])
                stack = list(self.kids[y])
                while stack:
                    t = stack.pop()
                    if lower[t] in ("it", "them") and dep[t] == "pobj":
                        self.alias[t] = x
                        self.with_back[y] = (x, "", [])
                    elif dep[t] == "prep" and self.head[t] == y:
                        objs = self.child(t, ("pobj",))
                        if len(objs) == 1 and lower[objs[0]] in REL_NOUNS and not self.kids[objs[0]]:
                            self.skip.add(objs[0])  # "on top": no "of", its object is X
                            self.with_back[y] = (x, f"{lower[t]} {lower[objs[0]]} of", [t, objs[0]])
                            continue
                    stack.extend(self.kids[t])

    def compound(self, j: int, i: int) -> str | None:
        """The lexicon's decision for noun modifier `j` of head noun `i` (None: part of the name)."""
        lex = self.lex
        if lex.compound_pairs:
            d = lex.compound_pairs.get(f"{self.lower[j]}|{self.lemma[i].lower()}")
            if d is not None:
                return d
        d = lex.compounds.get(self.lower[j])
        w = self.lower[j]
        if d is None and self.tag[j] == "NNS" and w[-1:] == "s" and w[-2:] != "ss" and w not in PLURAL_MODIFIERS:
            return "@have"  # "the birds wings": a possessive without its apostrophe
        if d is None and self.lower[j] in COLOURS and f"{self.lower[j]} {self.lemma[i].lower()}" not in lex.adj_names:
            return self.lower[j]  # "brown box" with "brown" tagged a noun: still a colour
        return d

    def name_rule(self, j: int, i: int, start: int) -> str | None:
        """What the rules alone would make of word `j` left of the name `start..i` of head `i`, when
        the naming tagger may decide it; None when the rules keep the decision (see
        `scene_graph_naming`): a word that is no adjective or noun modifier inside the name, an
        "@have" compound, a number.

        "name": a compound the lexicon keeps in the name; "attr": one it writes as an attribute;
        "drop": one it drops; "adjname": an adjective + noun pair it keeps ("hot dog"); "no": an
        adjective the rules write as an attribute; "own": a noun modifier the rules made an object
        of its own (its node is the last one made, so it can be taken back).
        """
        pos, dep = self.pos, self.dep
        d = dep[j]
        if pos[j] not in ("NOUN", "PROPN", "ADJ") or d not in ("compound", "amod", "nmod"):
            return None
        if d == "compound":
            if not (start <= self.head[j] <= i or self._in_compound(j, i)):
                return None
            got = self.compound(j, i)
            if got is not None and got[:1] == "@":
                return None
            return "name" if got in (None, "=") else "drop" if got == "" else "attr"
        if not start <= self.head[j] <= i or self.lower[j] in NUMBER_WORDS:
            return None
        if self.is_noun(j):  # "vw bug", "jogging pants": a noun the rules made an object of its own
            return "own" if self.obj_of.get(j, -1) == len(self.nodes) - 1 >= 0 else None
        return "adjname" if f"{self.lower[j]} {self.lower[start]}" in self.lex.adj_names else "no"

    def _in_compound(self, j: int, i: int) -> bool:
        while self.dep[j] == "compound" and self.head[j] != j:
            j = self.head[j]
            if j == i:
                return True
        return False

    def attributes(self) -> None:
        lower, dep, lex = self.lower, self.dep, self.lex
        for i, oi in list(self.obj_of.items()):
            obj = self.nodes[oi]
            mods = [k for k in self.kids[i] if dep[k] in ("amod", "nummod", "compound", "quantmod")]
            for k in list(mods):  # "a muddy dirt road": "muddy" hangs off "dirt" but describes the road
                if dep[k] == "compound":
                    lifted = [c for c in self.kids[k] if dep[c] in ("amod", "compound") and c < k]
                    mods.extend(lifted)
                    self.certain_toks.update(lifted)
            for a, qn in self.alias.items():  # "group of birds": "group of" describes the birds
                if qn == i and self.lemma[a].lower() in lex.quantities:  # (not "it" of with_pronouns)
                    txt = lex.quantities[self.lemma[a].lower()]
                    if txt != "-":  # "-": a quantity FACTUAL leaves unwritten ("a lot of")
                        self.add_attr(oi, txt, range(a, a + 1 + txt.count(" ")))
                    mods.extend(k for k in self.kids[a] if dep[k] in ("amod", "nummod", "quantmod"))
            for k in mods:
                if k >= obj.span[0]:
                    continue  # part of the name
                if dep[k] in ("nummod", "quantmod") or self.pos[k] == "NUM":
                    num = NUMBER_WORDS.get(lower[k], lower[k] if lower[k].isdigit() and k < i else "")
                    if num and 1 < int(num) <= 20:  # counts, not "number 170" or "1950s"
                        self.add_attr(oi, num, (k,))
                        obj.count = int(num)
                    continue
                if self.pos[k] in ("DET", "PRON", "PUNCT", "ADP"):
                    continue
                if dep[k] == "compound":
                    got = self.compound(k, i) or ""
                    if got[:2] == "@~":  # "train station" -> ( station , for , train )
                        self.rel(i, got[2:], k, (k,), certain=True)
                    elif got[:1] == "@":  # "clock face" -> ( clock , have , face )
                        self.rel(k, got[1:], i, (k,), certain=True)
                    elif got and got != "=":
                        self.add_attr(oi, got, (k,))
                    continue
                self.modifier(oi, k)
                for c in self.conjuncts(k):
                    self.modifier(oi, c)

    def conjuncts(self, k: int) -> list[int]:
        out = []
        stack = [k]
        while stack:
            j = stack.pop()
            for c in self.kids[j]:
                if self.dep[c] == "conj" and self.pos[c] in ("ADJ", "VERB", "NOUN", "PROPN"):
                    out.append(c)
                    stack.append(c)
        return out

    def joins_next(self, k: int) -> bool:
        """Is token `k` the first word of "cream colored" / "heart shaped" (one attribute)?

        spaCy hangs the first word off "colored" or off the noun, as a noun, adjective or adverb.
        A colour is not joined: train gold writes "red colored walls" as "red" (44 against 5).
        """
        j = k + 1
        return (
            j < self.n
            and self.lower[j] in JOINED_ADJ
            and self.lower[k] not in COLOURS
            and self.head[k] in (j, self.head[j])
            and self.head[j] != j
            and self.pos[k] in ("NOUN", "PROPN", "ADJ", "ADV")
            and self.dep[k] in ("amod", "nmod", "npadvmod", "compound", "advmod")
        )

    def modifier(self, oi: int, k: int) -> None:
        """An adjective or noun modifier of object `oi`: an attribute unless the lexicon drops it."""
        lower = self.lower
        if self.joins_next(k):
            return  # emitted with the "colored" / "shaped" that follows
        start = k
        if k > 0 and lower[k] in JOINED_ADJ and self.joins_next(k - 1):
            start = k - 1  # "orange colored liquid" -> ( liquid , is , orange colored )
        # "dark brown", "navy blue", "multi-colored": keep intensifiers and hyphenated parts.
        colour = lower[k] in COLOURS
        for c in self.kids[k]:
            if (
                c < k
                and self.dep[c] in ("advmod", "npadvmod", "amod", "compound", "punct")
                and ((colour and lower[c] in SHADES) or lower[c] == "-" or (c + 1 < self.n and lower[c + 1] == "-"))
            ):
                start = min(start, c)
        if start == k and k > 0 and colour and lower[k - 1] in SHADES and self.head[k - 1] in (k, self.head[k]):
            start = k - 1
        if start == k and k + 1 < self.n and lower[k] in SHADES and lower[k + 1] in COLOURS:
            return  # emitted with the colour that follows
        txt = "".join(self.ws[start:k]).lower() + lower[k] if start < k else lower[k]
        toks = list(range(start, k + 1))
        if self.pos[k] == "VERB":  # "crumbled up cheese": the particle belongs to the participle
            prts = [c for c in self.kids[k] if self.dep[c] == "prt" and c > k]
            txt = " ".join([txt, *(lower[c] for c in prts)])
            toks.extend(prts)
        txt = SPELLINGS.get(txt, txt)
        got = self.lex.modifiers.get(txt, txt)
        if got in ("", "="):
            return
        self.add_attr(oi, got, toks)

    def add_attr(self, oi: int, txt: str, toks: Iterable[int]) -> None:
        if txt.strip():
            toks = tuple(toks)
            key = ("a", oi, txt)
            if key not in self.seen and any(t in self.certain_toks for t in toks):
                self.certain.add(len(self.nodes))
            self.add(SceneNode(kind="attribute", lemma=txt, tokens=toks, subject=oi), key)

    # --- relations ------------------------------------------------------------------------------

    def subjects(self, v: int, depth: int = 0) -> tuple[list[int], bool]:
        """Token indices of the subjects of verb `v`, and whether `v` is passive."""
        dep, kids = self.dep, self.kids
        subs: list[int] = []
        passive = False
        for k in kids[v]:
            d = dep[k]
            if d in SUBJ_DEPS:
                passive = passive or d == "nsubjpass"
                if self.lower[k] in REL_PRONOUNS and dep[v] == "relcl" and self.is_noun(self.head[v]):
                    subs.extend(self.conj_group(self.head[v]))
                elif self.is_noun(k) or k in self.alias:
                    subs.extend(self.conj_group(k))
            elif d == "expl":
                for a in kids[v]:
                    if dep[a] == "attr" and self.is_noun(a):
                        subs.extend(self.conj_group(a))
        if subs:
            return subs, passive
        d = dep[v]
        h = self.head[v]
        if d in ("acl", "relcl") and self.is_noun(h):
            if d == "acl" and (box := self.container_of(h)) is not None:
                return [box], self.tag[v] == "VBN"  # "cup of coffee sitting on a saucer"
            root = self.coord_root(h)
            group = self.conj_group(root)
            if root != h or (len(group) > 1 and v > max(group)):
                return group, self.tag[v] == "VBN"
            return [h], self.tag[v] == "VBN"
        if d in INHERIT_DEPS and h != v and depth < 3 and self.pos[h] in ("VERB", "AUX"):
            s, _ = self.subjects(h, depth + 1)
            return s, self.tag[v] == "VBN" and d == "conj" and passive
        if d == "amod" and self.tag[v] in ("VBN", "VBG") and self.is_noun(h):
            return [h], self.tag[v] == "VBN"
        return [], passive

    def rel(
        self,
        s: int,
        pred: str,
        o: int,
        toks: Iterable[int],
        raw: bool = False,
        same: bool = False,
        certain: bool = False,
    ) -> None:
        """Add relation `pred` between the objects of tokens `s` and `o` (after the lexicon's rewrites).

        `raw` skips the mined rewrites (and marks the fact certain); `same` allows one object with
        itself ("each other"); `certain` marks a construction the learned proposer must keep.
        """
        si, oi = self.resolve(s), self.resolve(o)
        if si is None or oi is None or (si == oi and not same):
            return
        rw = self.lex.rewrite
        if pred in ("of", "full of"):
            head = self.nodes[si].lemma.split(" ")[-1]
            if head in CONTAINERS or head in SURFACES:
                pred, raw = ("in" if head in CONTAINERS else "on"), True
                si, oi = oi, si  # "bowl of fruit" -> ( fruit , in , bowl )
            elif pred == "full of":
                pred, raw = "have", True  # "a shelf full of oranges" -> ( shelf , have , oranges )
        if rw and not raw:
            sl, ol = self.nodes[si].lemma, self.nodes[oi].lemma
            dec = rw.get(f"{pred}|{ol}") or rw.get(f"{sl}|{pred}") or rw.get(pred)
            if dec is not None:
                if dec == "drop":
                    return
                if isinstance(dec, str) and dec.startswith("attr:"):
                    self.add_attr(oi, dec[5:], toks)
                    return
                pred, swap = dec[0], dec[1]
                if swap:
                    si, oi = oi, si
        if not pred.strip():
            return
        toks = tuple(toks)
        certain = certain or len(toks) > 2  # "sit on the right side of", "in front of": exact words
        node = SceneNode(kind="relation", lemma=pred, tokens=tuple(toks), subject=si, object=oi)
        key = ("r", si, pred, oi)
        if (raw or certain) and key not in self.seen:
            self.certain.add(len(self.nodes))
        self.add(node, key)

    def verb_relations(self, v: int) -> None:
        dep, kids, lower = self.dep, self.kids, self.lower
        copula = self.lemma[v] == "be"
        subs, passive = self.subjects(v)
        if not subs:
            return
        gap = -1
        if dep[v] == "relcl" and self.is_noun(self.head[v]):
            if not any(self.lower[k] in REL_PRONOUNS for k in kids[v] if dep[k] in SUBJ_DEPS):
                gap = self.head[v]
        vl = "" if copula else self.verb_lemma(v)
        prts = [k for k in kids[v] if dep[k] == "prt"]
        vpred = vl + "".join(" " + lower[k] for k in prts) if vl else ""
        vtoks = [v, *prts]
        made = False
        objs: list[int] = []
        preps: list[tuple[int, int]] = []  # (prep token, span start)
        for k in kids[v]:
            d = dep[k]
            if d == "dobj" and self.reciprocal(k) and vpred:
                for s in subs:  # "two bears admiring each other"
                    self.rel(s, vpred, s, vtoks, same=True)
                made = True
            elif d in ("dobj", "attr", "oprd") and self.is_noun(k) and not copula:
                objs.extend(self.conj_group(k))
            elif d in ("prep", "agent", "dative") and self.pos[k] == "ADP":
                preps.append((k, k))
            elif d in ("advmod", "npadvmod") and lower[k] in ADV_PREPS:
                for p in kids[k]:
                    if dep[p] == "prep":
                        preps.append((p, k))
            elif d == "acomp" and copula and lower[k] in KEEP_ADV and self.child(k, ("prep",)):
                preps.extend((p, k) for p in self.child(k, ("prep",)))
            elif d == "acomp" and copula and lower[k] == "full" and self.child(k, ("prep",)):
                preps.extend((p, k) for p in self.child(k, ("prep",)) if lower[p] == "of")
            elif d == "acomp" and (copula or self.lemma[v] in LINKING):
                if not copula:  # "the ground looks muddy": a sure reading, kept by the proposer
                    self.certain_toks.add(k)
                for s in subs:
                    si = self.resolve(s)
                    if si is not None:
                        self.modifier(si, k)
                        for c in self.conjuncts(k):
                            self.modifier(si, c)
                made = True
        if gap >= 0 and not objs and not copula and not any(not self.child(p, ("pobj",)) for p, _ in preps):
            objs.append(gap)
        motion: set[int] = set()
        for o in objs:  # "ride bicycles down a hill": the path belongs to the verb
            if dep[o] == "dobj":
                motion.update(p for p in kids[o] if dep[p] == "prep" and lower[p] in MOTION_PREPS)
        preps.extend((p, p) for p in sorted(motion))
        for s in subs:
            for o in objs:
                self.rel(s, vpred, o, vtoks)
                made = True
        for p, start in preps:
            words, last, o, group, ptoks = self.prep_phrase(p)
            if start != p and (lower[start] in KEEP_ADV or lower[start] == "full"):
                words = lower[start] + " " + words
                ptoks = [start, *ptoks]
            if o < 0:
                if gap < 0:
                    continue
                group = [gap]
            elif self.reciprocal(o):
                pred, toks = (words, ptoks) if copula else (f"{vpred} {words}", vtoks + ptoks)
                for s in subs:  # "two cars parked next to each other" -> ( car , park next to , car )
                    self.rel(s, pred, s, toks, same=True)
                made = True
                continue
            elif not (self.is_noun(o) or o in self.alias):
                continue
            is_agent = dep[p] == "agent" or (passive and lower[p] == "by")
            for s in subs:
                for o2 in group:
                    if is_agent:
                        # an animate agent is certain: no mined rewrite ("park" -> "park by") applies
                        animate = self.lemma[o2].lower() in ANIMATE or self.lower[o2] in PRONOUNS
                        self.rel(o2, vl or "be", s, [v], raw=animate)
                    elif copula:
                        self.rel(s, words, o2, ptoks)
                    else:
                        self.rel(s, f"{vpred} {words}", o2, vtoks + ptoks, certain=p in motion)
                    made = True
        if (
            not made
            and not copula
            and self.lex.verb_attrs
            and self.pos[v] == "VERB"
            and (
                dep[v] in ("acl", "amod")
                or (passive and not objs and not preps)
                or (  # "two women skiing": a bare -ing verb describes its subject
                    self.tag[v] == "VBG"
                    and not objs
                    and not preps
                    and not prts
                    and all(dep[k] in BARE_VERB_KIDS for k in kids[v])
                )
            )
        ):
            txt = lower[v] + "".join(" " + lower[k] for k in prts)
            txt = self.lex.modifiers.get(txt, txt)
            for s in subs:
                si = self.resolve(s)
                if si is not None:
                    self.add_attr(si, txt, vtoks)

    def noun_relations(self, i: int) -> None:
        """Prepositions and possessives hanging off a noun: "cat on the mat", "man 's head"."""
        dep, kids = self.dep, self.kids
        subs_all: list[int] | None = None
        for k in kids[i]:
            d = dep[k]
            preps: list[int] = []
            if d == "prep" and self.pos[k] == "ADP":
                preps = [k]
            elif d in ("advmod", "amod") and self.lower[k] in KEEP_ADV:
                preps = [p for p in kids[k] if dep[p] == "prep"]
            elif d == "amod" and self.lower[k] == "full":  # "a shelf full of oranges"
                preps = [p for p in kids[k] if dep[p] == "prep" and self.lower[p] == "of"]
            for p in preps:
                if self.lower[p] == "of" and i in self.alias:
                    continue
                if self.lower[p] in MOTION_PREPS and dep[i] == "dobj" and self.pos[self.head[i]] == "VERB":
                    continue  # the verb's path (see verb_relations)
                words, last, o, group, ptoks = self.prep_phrase(p)
                if p != k:
                    words = f"{self.lower[k]} {words}"
                    ptoks = [k, *ptoks]
                if o >= 0 and self.reciprocal(o):  # "two ovens next to each other"
                    self.rel(i, words, i, ptoks, same=True)
                    continue
                if o < 0 or not (self.is_noun(o) or o in self.alias):
                    continue
                if self.lower[p] == "with" and all(o2 in self.with_back for o2 in group):
                    for o2 in group:  # "a lake with cows in it": ( cows , in , lake ) instead
                        _, w2, t2 = self.with_back[o2]
                        if w2:
                            self.rel(o2, w2, i, t2, certain=True)
                    continue
                subj = i
                if self.lower[p] == "with" and (content := self.content_of(i)) is not None and content < p:
                    subj = content  # "a plate of pasta with tomatoes": the pasta is with the tomatoes
                elif self.lower[p] not in ("with", "of") and (box := self.container_of(i)) is not None:
                    subj = box  # "a mug of coffee on the table": the mug is on the table
                if subs_all is None:
                    root = self.coord_root(i)
                    g = self.conj_group(root)
                    subs_all = g if (len(g) > 1 and k > max(g)) else [i]
                for s in subs_all if subj == i else [subj]:
                    for o2 in group:
                        # "cows in it": "it" is the X of "X with Y", a construction the rules are sure of
                        sure = subj != i or (o2 in self.alias and self.lower[o2] in ("it", "them"))
                        self.rel(s, words, o2, ptoks, certain=sure)
            if d == "poss" and self.is_noun(k) and self.pos[k] != "PRON":
                self.rel(k, "have", i, [k, *(c for c in kids[k] if dep[c] == "case")], certain=True)

    def reciprocal(self, o: int) -> bool:
        """Is token `o` the "other" of "each other" / "one another" (or the misspelt "eachother")?"""
        w = self.lower[o]
        if w == "eachother":
            return True
        return w in ("other", "another") and any(self.lower[c] in ("each", "one") for c in self.kids[o])

    def container_of(self, y: int) -> int | None:
        """The container or surface X of content noun `y` in "X of Y" ("mug of coffee" -> mug), else None."""
        p = self.head[y]
        if self.dep[y] != "pobj" or self.lower[p] != "of" or self.dep[p] != "prep":
            return None
        x = self.head[p]
        lem = self.lemma[x].lower()
        return x if (lem in CONTAINERS or lem in SURFACES) and self.is_noun(x) else None

    def content_of(self, i: int) -> int | None:
        """The Y of a container or surface noun `i` in "X of Y" ("plate of pasta" -> pasta), else None."""
        lem = self.lemma[i].lower()
        if lem not in CONTAINERS and lem not in SURFACES:
            return None
        for k in self.kids[i]:
            if self.dep[k] == "prep" and self.lower[k] == "of":
                objs = self.child(k, ("pobj",))
                if objs and self.is_noun(objs[0]):
                    return objs[0]
        return None

    def run(self) -> list[SceneNode]:
        # "cream colored", "dragon shaped": the first word is part of an attribute, not an object
        self.skip.update(k for k in range(self.n - 1) if self.joins_next(k) and self.pos[k] in NOUNS)
        self.find_objects()
        self.attributes()
        pos = self.pos
        for i in range(self.n):
            p = pos[i]
            if p == "VERB" or (p == "AUX" and self.lemma[i] == "be" and self.dep[i] in COPULA_DEPS):
                self.verb_relations(i)
            elif i in self.obj_of or i in self.alias:
                self.noun_relations(i)
        return self.nodes


def build_graph(
    lex: Lexicon,
    lower: list[str],
    lemma: list[str],
    pos: list[str],
    tag: list[str],
    dep: list[str],
    head: list[int],
    ws: list[str],
    nouns: frozenset[int] = frozenset(),
    fact_filter: Any = None,
    proposer: Any = None,
) -> list[SceneNode]:
    """The scene graph of one parsed caption, from its per-token lists (see module docstring).

    `nouns`: tokens to read as nouns whatever their tag (the learned noun tagger's verdicts).
    `fact_filter`: a `scene_graph_filter.FactFilter`, applied to the graph with the repaired tags
    and dependencies the walk used (so that it sees what the rules saw).
    `proposer`: a `scene_graph_proposer.Proposer`; when given it replaces the fact filter and
    chooses the relations and attributes among the rules' and its own candidates.
    """
    if not lower:
        return []
    nodes, ctx = rule_graph(lex, lower, lemma, pos, tag, dep, head, ws, nouns)
    return finish_graph(nodes, ctx, fact_filter, proposer)


def finish_graph(nodes: list[SceneNode], ctx: Any, fact_filter: Any = None, proposer: Any = None) -> list[SceneNode]:
    """The learned pass over the rules' graph `nodes` (see `build_graph`), with the walk's context
    `ctx` (`walk_context`: the repaired tags and dependencies the rules saw). One place for the
    per-caption path and the batch path (`TextExtractor.annotate_docs`)."""
    if proposer is not None:
        return proposer.apply(nodes, ctx)
    if fact_filter is not None:
        return fact_filter.apply(nodes, ctx.lower, ctx.tag, ctx.dep, ctx.head)
    return nodes


_CONTEXT: Any = None  # the proposer's Context class, imported on first use


def walk_context(w: _Walk) -> Any:
    """The proposer's view of a finished walk: its repaired lists and the verb lemma table.

    (The class is looked up once: an import statement here cost ~1 µs per caption.)"""
    global _CONTEXT
    context = _CONTEXT
    if context is None:
        from laitkit.extractors.scene_graph_proposer import Context

        context = _CONTEXT = Context
    return context(w.lower, w.lemma, w.pos, w.tag, w.dep, w.head, w.lex.verb_lemmas, frozenset(w.certain))


def rule_graph(
    lex: Lexicon,
    lower: list[str],
    lemma: list[str],
    pos: list[str],
    tag: list[str],
    dep: list[str],
    head: list[int],
    ws: list[str],
    nouns: frozenset[int] = frozenset(),
) -> tuple[list[SceneNode], Any]:
    """The rules' whole graph and the proposer's context for it (what training labels)."""
    w = _Walk(lex, lower, lemma, pos, tag, dep, head, ws, nouns)
    return w.run(), walk_context(w)


def repaired_lists(
    lex: Lexicon,
    lower: list[str],
    lemma: list[str],
    pos: list[str],
    tag: list[str],
    dep: list[str],
    head: list[int],
    ws: list[str],
    nouns: frozenset[int] = frozenset(),
) -> tuple[list[str], list[str], list[str], list[int]]:
    """(lower, tag, dep, head) after the walk's tag repairs: what the fact filter's features read."""
    w = _Walk(lex, lower, lemma, pos, tag, dep, head, ws, nouns)
    return w.lower, w.tag, w.dep, w.head
