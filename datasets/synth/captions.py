"""English captions derived from a scene's gold annotations, with varied syntax.

Why from the gold scene: the relevance filter, the spaCy scene-graph parser and pretraining are all
checked against what the image really shows, so every noun, colour, size, count and relation in a
clean caption is true of its image. Varied templates (plain noun phrases, "there is ...", "two X
above a Y", enumerations, "with ... next to it") keep the parser honest and make captions unique.
"""

from __future__ import annotations

import numpy as np

from laitkit.datasets.synth.scenes import Scene, SceneObject

_NUMBERS = {2: "two", 3: "three", 4: "four"}
_PREDICATE_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "just above", "high above"),
    "below": ("below", "under", "beneath"),
    "next to": ("next to", "beside", "right next to"),
    "on": ("on", "on top of", "resting on", "sitting on"),
}
_PREFIXES = ("", "", "", "a photo of ", "there is ", "a picture of ", "close-up of ", "here we see ")
_SCENE_SUFFIXES = ("", "", "", " against a soft background", " against a blurry backdrop", " in soft light")


def plural(label: str) -> str:
    return label + ("es" if label.endswith(("s", "x", "sh", "ch")) else "s")


def article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _adjectives(obj: SceneObject, rng: np.random.Generator, force_colour: bool = False) -> str:
    words = []
    if rng.random() < 0.45:
        words.append(obj.size)
    if force_colour or rng.random() < 0.85:
        words.append(obj.colour)
    return " ".join(words + [obj.label])


def noun_phrase(obj: SceneObject, rng: np.random.Generator, another: bool = False) -> str:
    """ "a large red circle", "an orange star" or, for a repeat of the same thing, "another ..."."""
    core = _adjectives(obj, rng, force_colour=another)
    return f"another {core}" if another else article(core)


def _groups(scene: Scene) -> list[tuple[list[int], str, int]]:
    """Sets of >= 2 identical objects (class, colour, size) in the same relation to the same anchor."""
    by_key: dict[tuple[str, str, str, str, int], list[int]] = {}
    for r in scene.relations:
        o = scene.objects[r.subject]
        by_key.setdefault((o.label, o.colour, o.size, r.predicate, r.object), []).append(r.subject)
    return [(idx, k[3], k[4]) for k, idx in sorted(by_key.items()) if len(idx) >= 2]


def _relation_clause(scene: Scene, rel_idx: int, rng: np.random.Generator) -> str:
    r = scene.relations[rel_idx]
    subj, obj = scene.objects[r.subject], scene.objects[r.object]
    same = (subj.label, subj.colour) == (obj.label, obj.colour)
    s = noun_phrase(subj, rng)
    o = noun_phrase(obj, rng, another=same)
    pred = str(rng.choice(_PREDICATE_PHRASES[r.predicate]))
    if rng.random() < 0.2 and not same:
        # Object-first with a pronoun: "a blue square with a red circle to the left of it".
        return f"{noun_phrase(obj, rng)} with {s} {pred} it"
    return f"{s} {pred} {o}"


def _enumeration(scene: Scene, rng: np.random.Generator) -> str:
    counts: dict[tuple[str, str], int] = {}
    for o in scene.objects:
        counts[(o.colour, o.label)] = counts.get((o.colour, o.label), 0) + 1
    parts = [
        f"{_NUMBERS[n]} {colour} {plural(label)}" if n > 1 else article(f"{colour} {label}")
        for (colour, label), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return str(rng.choice(["", "a photo of ", "a still life with ", "shapes: "])) + listed


def describe(scene: Scene, rng: np.random.Generator) -> str:
    """One English caption true of `scene`; different `rng` states give different wordings."""
    if not scene.objects:
        return "an empty soft background"
    groups = _groups(scene)
    roll = rng.random()
    if groups and roll < 0.7:
        members, pred, anchor = groups[0]
        obj = scene.objects[members[0]]
        core = " ".join(w for w in (obj.size if rng.random() < 0.5 else "", obj.colour, plural(obj.label)) if w)
        text = f"{_NUMBERS[len(members)]} {core} {rng.choice(_PREDICATE_PHRASES[pred])} "
        text += noun_phrase(scene.objects[anchor], rng)
        caption = str(rng.choice(_PREFIXES[:3] + ("there are ",))) + text
    elif not scene.relations:
        caption = str(rng.choice(_PREFIXES)) + noun_phrase(scene.objects[0], rng) + str(rng.choice(_SCENE_SUFFIXES))
    elif roll < 0.2 and len(scene.objects) >= 2:
        caption = _enumeration(scene, rng)
    else:
        order = rng.permutation(len(scene.relations))
        clauses = [_relation_clause(scene, int(order[0]), rng)]
        if len(order) > 1 and rng.random() < 0.5:
            clauses.append(_relation_clause(scene, int(order[1]), rng))
        prefix = str(rng.choice(_PREFIXES))
        caption = prefix + (", and ".join(clauses) if rng.random() < 0.5 else " and ".join(clauses))
    return _finish(caption, rng)


def _finish(caption: str, rng: np.random.Generator) -> str:
    """Alt texts in the wild are sometimes capitalised and sometimes end with a full stop."""
    if rng.random() < 0.4:
        caption = caption[0].upper() + caption[1:]
    if rng.random() < 0.25:
        caption += "."
    return caption
