"""Noise with known labels: which kinds exist, what verdict each must get, and where they go.

Why a plan: every main-image candidate gets exactly one noise kind (or "clean"), so its expected
`Reason` is unambiguous, and the plan is made before anything is rendered so duplicates can point
at an earlier clean original. About half of the main candidates are clean, as on the real web
after LAIT's filters; every kind appears at least once once there are ~30 pages.

Ordering conventions the truth relies on (they match the order of `Reason`, which is the order the
pipeline applies its filters): robots_noai beats decoy; a duplicate's "first" copy is the one on
the earliest page (pages are numbered so that URL order is page order), and it stays `keep`;
captions shared by >= 6 images are rejected for every image that carries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from laitkit.datasets.schema import Reason

#: noise kind -> expected verdict. Main-image kinds first, then decoys.
EXPECTED: dict[str, Reason] = {
    "clean": Reason.KEEP,
    "robots_noai": Reason.ROBOTS_NOAI,
    "no_alt": Reason.NO_CAPTION,
    "useless_alt": Reason.USELESS_CAPTION,
    "non_english": Reason.NOT_ENGLISH,
    "nsfw_caption": Reason.NSFW,
    "http_404": Reason.DOWNLOAD_ERROR,
    "http_500": Reason.DOWNLOAD_ERROR,
    "timeout": Reason.DOWNLOAD_ERROR,
    "redirect_loop": Reason.DOWNLOAD_ERROR,
    "truncated_jpeg": Reason.DECODE_ERROR,
    "wrong_content_type": Reason.DECODE_ERROR,
    "decompression_bomb": Reason.DECODE_ERROR,
    "too_small": Reason.TOO_SMALL,
    "bad_aspect": Reason.BAD_ASPECT,
    "unnatural_logo": Reason.UNNATURAL,
    "unnatural_chart": Reason.UNNATURAL,
    "unnatural_text": Reason.UNNATURAL,
    "same_url": Reason.DUP_URL,
    "exact_duplicate": Reason.DUP_SHA256,
    "near_duplicate": Reason.DUP_PHASH,
    "stock_caption": Reason.DUP_CAPTION,
    "shuffled_caption": Reason.LOW_RELEVANCE,
    "decoy_logo": Reason.DECOY,
    "decoy_social": Reason.DECOY,
    "decoy_pixel": Reason.DECOY,
    "decoy_ad": Reason.DECOY,
    "decoy_avatar": Reason.DECOY,
    "decoy_thumb": Reason.DECOY,
}
MAIN_KINDS = tuple(k for k in EXPECTED if not k.startswith("decoy_"))
DECOY_KINDS = tuple(k for k in EXPECTED if k.startswith("decoy_"))
DUPLICATE_KINDS = ("same_url", "exact_duplicate", "near_duplicate")
STOCK_MIN_USES = 6

# One of each, in priority order: when a tiny site cannot hold them all, the first ones win.
_MANDATORY = (
    "non_english",
    "useless_alt",
    "shuffled_caption",
    "too_small",
    "exact_duplicate",
    "near_duplicate",
    "same_url",
    "unnatural_chart",
    "http_404",
    "truncated_jpeg",
    "nsfw_caption",
    "bad_aspect",
    "unnatural_logo",
    "unnatural_text",
    "http_500",
    "timeout",
    "redirect_loop",
    "wrong_content_type",
    "decompression_bomb",
    "no_alt",
)
# Relative frequencies of extra noise on bigger sites; no extra timeouts: each costs the crawler a wait.
_WEIGHTS = {
    "non_english": 4,
    "useless_alt": 3,
    "shuffled_caption": 3,
    "too_small": 3,
    "exact_duplicate": 2,
    "near_duplicate": 2,
    "same_url": 2,
    "unnatural_chart": 1,
    "unnatural_logo": 1,
    "unnatural_text": 1,
    "http_404": 2,
    "http_500": 1,
    "redirect_loop": 0.5,
    "truncated_jpeg": 1,
    "wrong_content_type": 1,
    "nsfw_caption": 1,
    "bad_aspect": 1,
    "no_alt": 1,
    "decompression_bomb": 0.3,
}


@dataclass
class Slot:
    """One main-image candidate: its page, position on the page, noise kind and, for duplicates,
    the (page, position) of the clean original it copies; `stock` indexes the shared caption."""

    page: int
    pos: int
    noise: str
    original: tuple[int, int] | None = None
    stock: int = -1


@dataclass
class PagePlan:
    page: int
    noai: str = ""  # the X-Robots-Tag value when the page opts out of AI use
    slots: list[Slot] = field(default_factory=list)


def plan_site(pages: int, rng: np.random.Generator) -> list[PagePlan]:
    """Assign a noise kind to every main-image slot of a `pages`-page site."""
    if pages < 1:
        raise ValueError("pages must be >= 1")
    plans = [PagePlan(p) for p in range(1, pages + 1)]
    n_noai = 0 if pages < 4 else max(1, round(0.04 * pages))
    for p in sorted(rng.choice(np.arange(2, pages + 1), size=n_noai, replace=False).tolist()):
        plans[p - 1].noai = str(rng.choice(["noai", "noai, noimageai"]))
    for plan in plans:
        n = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
        plan.slots = [Slot(plan.page, k, "robots_noai" if plan.noai else "clean") for k in range(n)]

    free = [s for plan in plans if not plan.noai for s in plan.slots if (s.page, s.pos) != (1, 0)]
    total = sum(len(p.slots) for p in plans)
    budget = max(0, round(0.5 * total) - sum(len(p.slots) for p in plans if p.noai))
    kinds = _noise_kinds(budget, total, rng)
    kinds = kinds[: len(free)]
    stock_ids = _stock_assignment(kinds)
    labels = kinds + ["clean"] * (len(free) - len(kinds))
    order = rng.permutation(len(free))
    for slot, i in zip(free, order, strict=True):
        slot.noise = labels[int(i)]
        slot.stock = stock_ids[int(i)] if int(i) < len(stock_ids) else -1
    _fix_duplicates(plans, rng)
    return plans


def _noise_kinds(budget: int, total: int, rng: np.random.Generator) -> list[str]:
    """`budget` noise kinds: the mandatory ones, then stock-caption groups, then weighted extras."""
    kinds = list(_MANDATORY[:budget])
    for _ in range(max(1, total // 90)):
        uses = min(int(rng.integers(STOCK_MIN_USES, STOCK_MIN_USES + 4)), budget - len(kinds))
        if uses < STOCK_MIN_USES:
            break
        kinds.extend(["stock_caption"] * uses)
    names = sorted(_WEIGHTS)
    w = np.array([_WEIGHTS[n] for n in names], dtype=np.float64)
    max_bombs = max(1, total // 150)
    while len(kinds) < budget:
        k = names[int(rng.choice(len(names), p=w / w.sum()))]
        if k == "decompression_bomb" and kinds.count(k) >= max_bombs:
            continue
        kinds.append(k)
    return kinds


def _stock_assignment(kinds: list[str]) -> list[int]:
    """Which shared caption each stock_caption slot carries: groups of >= STOCK_MIN_USES."""
    n = kinds.count("stock_caption")
    groups = max(1, n // STOCK_MIN_USES)
    ids = [i % groups for i in range(n)]  # every group gets >= STOCK_MIN_USES when n >= 6
    out: list[int] = []
    it = iter(ids)
    for k in kinds:
        out.append(next(it) if k == "stock_caption" else -1)
    return out


def _fix_duplicates(plans: list[PagePlan], rng: np.random.Generator) -> None:
    """Give each duplicate a clean original on an earlier page (swapping it later if needed)."""
    slots = [s for p in plans if not p.noai for s in p.slots]
    for s in slots:
        if s.noise not in DUPLICATE_KINDS:
            continue
        earlier = [o for o in slots if o.page < s.page and o.noise == "clean"]
        if not earlier:
            later = [o for o in slots if o.page > 1 and o.noise == "clean" and o.page > s.page]
            if not later:
                s.noise = "clean"
                continue
            swap = later[int(rng.integers(0, len(later)))]
            swap.noise, s.noise = s.noise, "clean"
            continue  # `swap` is visited later in this loop and gets its original then
        o = earlier[int(rng.integers(0, len(earlier)))]
        s.original = (o.page, o.pos)


# --- texts -------------------------------------------------------------------------------------

NON_ENGLISH: dict[str, tuple[str, ...]] = {
    "fr": (
        "Une photo de formes colorées prise ce matin dans notre atelier.",
        "Voici quelques figures géométriques sur un fond très doux.",
        "Nous avons photographié ces objets près de la fenêtre du salon.",
        "Un cercle et un carré posés sur la table de la cuisine.",
        "Cette image montre des formes simples avec des couleurs vives.",
        "Regardez bien les détails de cette composition lumineuse.",
        "Le triangle rouge est à côté de l'étoile jaune.",
        "Une belle lumière d'automne sur nos petites formes en papier.",
    ),
    "de": (
        "Ein Foto von bunten Formen, das wir heute Morgen aufgenommen haben.",
        "Hier sieht man einige geometrische Figuren vor einem weichen Hintergrund.",
        "Der rote Kreis liegt neben dem blauen Quadrat auf dem Tisch.",
        "Diese Aufnahme zeigt einfache Formen in kräftigen Farben.",
        "Wir haben die Figuren am Fenster im Wohnzimmer fotografiert.",
        "Ein gelber Stern über einem grünen Dreieck, schön beleuchtet.",
        "Schauen Sie sich die Details dieser hellen Komposition genau an.",
        "Kleine Formen aus Papier im warmen Licht des Herbstes.",
    ),
    "es": (
        "Una foto de formas de colores tomada esta mañana en nuestro taller.",
        "Aquí se ven algunas figuras geométricas sobre un fondo muy suave.",
        "El círculo rojo está al lado del cuadrado azul sobre la mesa.",
        "Esta imagen muestra formas sencillas con colores muy vivos.",
        "Hemos fotografiado las figuras junto a la ventana del salón.",
        "Una estrella amarilla encima de un triángulo verde, con buena luz.",
        "Mira con atención los detalles de esta composición luminosa.",
        "Pequeñas formas de papel bajo la cálida luz del otoño.",
    ),
}
STOCK_CAPTIONS = (
    "Click on the image to see it in full size",
    "Product photo from our online catalogue",
    "Photo courtesy of the artist and the gallery",
    "Image used with kind permission of the owner",
    "See the full collection in our online shop",
)
_USELESS_WORDS = ("image", "photo", "picture", "img", "untitled", "Image", "Photo")
_NSFW_TEMPLATES = ("nude art: {c}", "{c} - xxx pics", "xxx {c}", "{c} (porn)", "porn gallery: {c}", "{c}, nude")


def non_english(rng: np.random.Generator, lang: str = "") -> tuple[str, str, str]:
    """(language code, caption, paragraph) in `lang` (French, German or Spanish when "")."""
    lang = lang or str(rng.choice(sorted(NON_ENGLISH)))
    bank = NON_ENGLISH[lang]
    a, b, c = (int(i) for i in rng.choice(len(bank), size=3, replace=False))
    caption = bank[a] if rng.random() < 0.5 else f"{bank[a]} {bank[b]}"
    return lang, caption, bank[c]


def useless_alt(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.35:
        return f"IMG_{int(rng.integers(1000, 9999))}.jpg"
    if roll < 0.55:
        return f"DSC{int(rng.integers(10000, 99999)):05d}.JPG"
    return str(rng.choice(_USELESS_WORDS))


def nsfw(caption: str, rng: np.random.Generator) -> str:
    return str(rng.choice(_NSFW_TEMPLATES)).format(c=caption)
