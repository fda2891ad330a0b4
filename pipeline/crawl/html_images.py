"""Find a page's images in the DOM, tell main images from decoys, and collect every nearby text.

Why a score and not one rule: no single signal separates a post's photo from the logo, avatar,
ad banner, social icons, tracking pixel and related-post thumbnails around it. Each signal is
weak (a main image may lack size attributes; a sidebar may sit inside `<main>`), so each adds or
subtracts a little and the sum decides. The signals that fired are returned as text, so a decoy
verdict says *why* ("in footer; hint 'pixel'; declared 1x1").

Which URL: browsers fetch the lazy-loading attribute (`data-src`, ...) instead of a placeholder
`src`, and the largest `srcset` / `<picture><source>` candidate is the full-size image. URLs are
resolved against `<base href>` (itself resolved against the page URL, as it may be relative).
Only http(s) URLs are returned: a page must not make the crawler read `file://` paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

from lxml import etree
from lxml import html as lhtml

from laitkit.datasets.schema import CaptionSource, TextCandidate

CONTENT_TAGS = frozenset({"article", "main"})
CHROME_TAGS = frozenset({"header", "footer", "nav", "aside"})
CHROME_ROLES = {"banner": "header", "navigation": "nav", "contentinfo": "footer", "complementary": "aside"}
LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
LAZY_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset")
#: words in an image's own class/id/URL that mark page furniture rather than content
IMAGE_HINTS = frozenset(
    {
        "logo", "icon", "icons", "favicon", "avatar", "avatars", "gravatar", "ad", "ads", "advert", "adverts",
        "advertisement", "banner", "banners", "sprite", "sprites", "pixel", "spacer", "tracking", "tracker",
        "beacon", "thumb", "thumbs", "thumbnail", "thumbnails", "related", "badge", "emoji", "emoticon",
        "smiley", "button", "btn", "share", "social", "sponsor", "sponsored", "1x1", "blank", "placeholder",
        "loader", "spinner", "rating", "flag", "chart", "charts", "graph", "infographic", "diagram", "map", "maps",
        "staticmap", "mapbox", "qrcode", "qr",
    }
)  # fmt: skip
#: the same, matched as a prefix/suffix of a token ("sitelogo", "thumbnail2"); short words excluded
IMAGE_HINT_AFFIXES = ("logo", "avatar", "favicon", "sprite", "thumb", "banner", "advert")
#: words in an ancestor's class/id that mark a furniture block
ANCESTOR_HINTS = frozenset(
    {
        "related", "ad", "ads", "advert", "advertisement", "adsbygoogle", "sponsor", "sponsored", "promo",
        "social", "share", "sharing", "sidebar", "widget", "comments", "comment", "byline", "author", "avatar",
        "logo", "banner", "menu", "breadcrumb", "breadcrumbs", "recommendations", "recommended", "suggested",
        "trending", "similar", "map", "signature", "agent", "rating", "payment", "qrcode", "thumbnail", "thumbnails",
    }
)  # fmt: skip
#: ancestors that are ad containers by their tag (AMP)
AD_TAGS = frozenset({"amp-ad", "amp-embed", "amp-sticky-ad"})
#: words in a figcaption child's class that mark a photo credit, not part of the caption
CREDIT_HINTS = frozenset({"credit", "credits", "copyright", "attribution", "photographer", "byline", "source"})
#: words in a background-image element's class that mark a content hero
HERO_HINTS = frozenset({"hero", "cover", "featured", "feature", "masthead", "splash", "lead"})
#: image sizes written into URLs by CMSs and CDNs: -150x150, _2_690x460, /330px-, ?width=720, resize=350,200
_URL_WXH = re.compile(r"(?<![0-9a-z])(?:s)?(\d{2,4})x(\d{2,4})(?![0-9])", re.I)
_URL_PX = re.compile(r"(?:^|/)(\d{2,4})px-")
_URL_QUERY_W = re.compile(r"(?:^|[?&])(?:w|width|imwidth)=(\d{2,4})(?:&|$)", re.I)
_URL_QUERY_H = re.compile(r"(?:^|[?&])(?:h|height)=(\d{2,4})(?:&|$)", re.I)
_URL_RESIZE = re.compile(r"(?:^|[?&])(?:resize|fit)=(\d{2,4})(?:,|%2C)(\d{2,4})", re.I)
_URL_IIIF = re.compile(r"/full/(\d{2,4}),(\d{0,4})/")
_BG_URL = re.compile(r"background(?:-image)?\s*:[^;]*?url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", re.I)
BLOCK_TAGS = frozenset(
    {"p", "div", "figure", "li", "td", "th", "dd", "dt", "blockquote", "section", "article", "main", "body",
     "header", "footer", "aside", "nav", "table", "ul", "ol"}
)  # fmt: skip
BROAD_TAGS = frozenset({"body", "article", "main", "section", "html"})
_TOKEN = re.compile(r"[a-z0-9]+")
_PX = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", re.I)
_STYLE_DIM = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+(?:\.\d+)?)px", re.I)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


@dataclass
class ImageCandidate:
    """One `<img>` of a page: the URL to fetch, main-or-decoy, why, and the texts around it.

    `index` is the element's position among the page's `<img>` elements, so (page URL, index)
    identifies it even when the same image appears twice on a page.
    """

    url: str
    index: int
    is_main: bool
    score: float
    signals: list[str] = field(default_factory=list)
    texts: list[TextCandidate] = field(default_factory=list)
    declared_width: int | None = None
    declared_height: int | None = None
    source_attr: str = "src"  # which markup gave the URL: src, srcset, picture, data-src, ...
    unparsed: str = ""  # why the DOM could not judge it (it is then neither main nor decoy)
    unparsed_reason: str = "bad_html"  # the Reason value for `unparsed`: bad_html or no_base_url

    @property
    def detail(self) -> str:
        return f"score {self.score:+g}: " + ("; ".join(self.signals) if self.signals else "no signal")


def parse_html(text: str) -> etree._Element | None:
    """The document root, or None for an empty/unparseable page (never raises).

    The text is re-encoded as UTF-8 bytes so that an XML encoding declaration in the string does
    not make lxml refuse it.
    """
    if not text or not text.strip():
        return None
    try:
        return lhtml.document_fromstring(text.encode("utf-8"), parser=lhtml.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError):
        return None


def document_base(doc: etree._Element, page_url: str) -> str:
    """The URL relative references resolve against: the first `<base href>`, resolved, else the page."""
    for base in doc.iter("base"):
        href = (base.get("href") or "").strip()
        if href:
            try:
                return urljoin(page_url, href)
            except ValueError:  # a malformed <base href> ("http://[::1"): browsers ignore it too
                return page_url
    return page_url


def resolve_url(base: str, raw: str | None, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """Absolute URL without fragment, or '' for empty, data:, javascript: or non-allowed schemes."""
    raw = re.sub(r"[\t\n\r]", "", (raw or "")).strip()
    if not raw or raw.lower().startswith(_NOT_FETCHED):
        return ""
    try:
        url = urldefrag(urljoin(base, raw))[0]
        return url if urlsplit(url).scheme.lower() in schemes else ""
    except ValueError:  # malformed ("http://[::1", a bad port): see `malformed_source`
        return ""


_NOT_FETCHED = ("data:", "javascript:", "about:", "blob:")


def malformed_source(img: etree._Element, base: str) -> str:
    """The raw src/lazy URL of an image that names one but cannot be parsed ('http://[::1',
    'http://h:99999/a.jpg'), or ''. Such an image gets a verdict instead of vanishing."""
    for attr in ("src", *LAZY_SRC_ATTRS):
        raw = re.sub(r"[\t\n\r]", "", img.get(attr) or "").strip()
        if not raw or raw.lower().startswith(_NOT_FETCHED):
            continue
        try:
            parts = urlsplit(urljoin(base, raw))
            _ = parts.port  # raises on a bad port
        except ValueError:
            return raw[:300]
    return ""


def parse_srcset(value: str | None) -> list[tuple[str, str, float]]:
    """`srcset` → [(url, kind, value)] with kind 'w' (width) or 'x' (density; default 1x).

    A small version of the HTML spec's tokenizer: URLs run to the next whitespace (so commas
    inside data: URIs survive); descriptors run to the next comma.
    """
    s, out, pos = value or "", [], 0
    n = len(s)
    while pos < n:
        while pos < n and (s[pos].isspace() or s[pos] == ","):
            pos += 1
        if pos >= n:
            break
        start = pos
        while pos < n and not s[pos].isspace():
            pos += 1
        url, desc = s[start:pos], ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = pos
            while pos < n and s[pos] != ",":
                pos += 1
            desc = s[start:pos].strip()
        kind, val = "x", 1.0
        for tok in desc.split():
            try:
                if tok[-1:].lower() == "w":
                    kind, val = "w", float(tok[:-1])
                elif tok[-1:].lower() == "x":
                    kind, val = "x", float(tok[:-1])
            except ValueError:
                continue
        if url:
            out.append((url, kind, val))
    return out


def largest_from_srcset(entries: list[tuple[str, str, float]], base: str, schemes: tuple[str, ...]) -> str:
    """The largest candidate: width descriptors beat density ones, then the biggest value wins."""
    return largest_entry(entries, base, schemes)[0]


def largest_entry(
    entries: list[tuple[str, str, float]], base: str, schemes: tuple[str, ...]
) -> tuple[str, str, float]:
    """(URL, kind, value) of the largest candidate (see `largest_from_srcset`); ('', 'x', 1) if none."""
    best, best_key = ("", "x", 1.0), (-1, -1.0)
    for raw, kind, val in entries:
        url = resolve_url(base, raw, schemes)
        key = (1 if kind == "w" else 0, val)
        if url and key > best_key:
            best, best_key = (url, kind, val), key
    return best


def image_url(img: etree._Element, base: str, schemes: tuple[str, ...]) -> tuple[str, str]:
    """(URL a browser would show at full size, which markup gave it), or ('', '') if none."""
    url, how, _, _ = image_source(img, base, schemes)
    return url, how


def image_source(img: etree._Element, base: str, schemes: tuple[str, ...]) -> tuple[str, str, str, float]:
    """(URL, markup that gave it, descriptor kind 'w'/'x', descriptor value) of the full-size image."""
    entries: list[tuple[str, str, float]] = []
    how = "srcset"
    # libxml2 does not know <source> is void: the <img> may end up *inside* it, so look up a few levels
    picture = next((a for _, a in zip(range(3), img.iterancestors(), strict=False) if a.tag == "picture"), None)
    if picture is not None:
        for source in picture.iter("source"):
            for attr in ("srcset", *LAZY_SRCSET_ATTRS):
                entries += parse_srcset(source.get(attr))
        how = "picture" if entries else how
    for attr in ("srcset", *LAZY_SRCSET_ATTRS):
        entries += parse_srcset(img.get(attr))
    lazy = next(((a, img.get(a)) for a in LAZY_SRC_ATTRS if resolve_url(base, img.get(a), schemes)), None)
    if entries:
        if not any(k == "w" for _, k, _ in entries):  # density-only: src (or data-src) is the 1x image
            fallback = lazy[1] if lazy else img.get("src")
            if fallback:
                entries.append((fallback, "x", 1.0))
        url, kind, val = largest_entry(entries, base, schemes)
        if url:
            return url, how, kind, val
    if lazy is not None:
        return resolve_url(base, lazy[1], schemes), lazy[0], "x", 1.0
    url = resolve_url(base, img.get("src"), schemes)
    return (url, "src", "x", 1.0) if url else ("", "", "x", 1.0)


def effective_size(
    declared: tuple[int | None, int | None], url: str, kind: str, value: float
) -> tuple[int | None, int | None]:
    """Pixel size of the image that will be fetched: the declared (display) size scaled by the chosen
    srcset descriptor (a 330x220 slot served at 1.5x is a 495x330 image), else the size in the URL."""
    w, h = declared
    if kind == "w" and value > 0:
        if w and h:
            return int(value), int(round(h * value / w))
        return int(value), h if w is None else None
    if kind == "x" and value > 1 and (w or h):
        return (int(w * value) if w else None), (int(h * value) if h else None)
    if w is None and h is None:
        return url_size(url)
    return w, h


def _dim(value: str | None) -> int | None:
    m = _PX.match(value or "")
    return int(float(m.group(1))) if m else None


def url_size(url: str) -> tuple[int | None, int | None]:
    """The size a CMS/CDN wrote into the URL (`-150x150.jpg`, `/330px-`, `?width=720`, IIIF `/full/600,/`)."""
    parts = urlsplit(url)
    m = _URL_RESIZE.search(parts.query)
    if m:
        return int(m.group(1)), int(m.group(2))
    w = _URL_QUERY_W.search(parts.query)
    h = _URL_QUERY_H.search(parts.query)
    if w or h:
        return (int(w.group(1)) if w else None), (int(h.group(1)) if h else None)
    name = parts.path.rsplit("/", 1)[-1]
    found = _URL_WXH.findall(name) or _URL_WXH.findall(parts.path)
    if found:
        return int(found[-1][0]), int(found[-1][1])
    m = _URL_PX.search(parts.path)
    if m:
        return int(m.group(1)), None
    m = _URL_IIIF.search(parts.path)
    if m:
        return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)
    return None, None


def declared_size(img: etree._Element) -> tuple[int | None, int | None]:
    """Width/height from attributes, else from inline `style` pixels; None where not declared."""
    w, h = _dim(img.get("width")), _dim(img.get("height"))
    for name, val in _STYLE_DIM.findall(img.get("style") or ""):
        if name.lower() == "width" and w is None:
            w = int(float(val))
        elif name.lower() == "height" and h is None:
            h = int(float(val))
    return w, h


def _tokens(*values: str | None) -> set[str]:
    return {t for v in values if v for t in _TOKEN.findall(v.lower())}


def _image_hint(tokens: set[str]) -> str:
    hit = sorted(tokens & IMAGE_HINTS)
    if hit:
        return hit[0]
    for tok in sorted(tokens):
        for affix in IMAGE_HINT_AFFIXES:
            if tok != affix and (tok.startswith(affix) or tok.endswith(affix)):
                return tok
    return ""


def score_image(
    img: etree._Element,
    url: str,
    *,
    min_declared_side: int = 300,
    ancestor_depth: int = 4,
    size: tuple[int | None, int | None] | None = None,
    meta_images: frozenset[str] = frozenset(),
) -> tuple[float, list[str], tuple[int | None, int | None]]:
    """(score, signals that fired, size). Positive evidence for content, negative for furniture.

    `size` is the image's pixel size where known better than its attributes (srcset density, URL);
    `meta_images` are the page's og:image / twitter:image / JSON-LD image URLs (evidence of a main image).
    """
    score, signals = 0.0, []
    ancestors = [a for a in img.iterancestors() if isinstance(a.tag, str)]
    tags = {a.tag for a in ancestors}
    roles = {(a.get("role") or "").strip().lower() for a in ancestors}
    if tags & CONTENT_TAGS or roles & {"main", "article"}:
        score += 2
        signals.append("in content")
    if "figure" in tags:
        score += 1
        signals.append("in figure")
    chrome = sorted((tags & CHROME_TAGS) | {CHROME_ROLES[r] for r in roles if r in CHROME_ROLES})
    if chrome:
        score -= 4
        signals.append(f"in {chrome[0]}")
    # hints the page author wrote on the element weigh more than words in the URL's path, which
    # also name real photos now and then (".../uploads/banner-sunset.jpg")
    w, h = size if size is not None else declared_size(img)
    hint = _image_hint(_tokens(img.get("class"), img.get("id")))
    path_tokens = _tokens(urlsplit(url).path)
    if w is not None and w >= min_declared_side and (h is None or h >= min_declared_side):
        path_tokens -= {"thumb", "thumbs"}  # a resize folder (/thumb/.../880px-...), not a thumbnail
    path_hint = "" if hint else _image_hint(path_tokens)
    furniture = bool(hint or path_hint)
    if hint or path_hint:
        score -= 4 if hint else 3
        signals.append(f"hint '{hint}'" if hint else f"url hint '{path_hint}'")
    if tags & AD_TAGS:
        score -= 4
        signals.append(f"in {sorted(tags & AD_TAGS)[0]}")
    if url in meta_images or _stem(url) in {_stem(m) for m in meta_images}:
        score += 1
        signals.append("page metadata image")
    for a in ancestors[:ancestor_depth]:
        if a.tag in ("body", "html"):
            break
        found = sorted(_tokens(a.get("class"), a.get("id")) & ANCESTOR_HINTS)
        if found:
            score -= 3
            signals.append(f"{a.tag} '{found[0]}'")
            furniture = True
            break
    dims = f"{w if w is not None else '?'}x{h if h is not None else '?'}"
    if (w is not None and w <= 2) or (h is not None and h <= 2):
        score -= 10
        signals.append(f"declared {dims}")
    elif (w is not None and w < min_declared_side) or (h is not None and h < min_declared_side):
        score -= 4
        signals.append(f"declared {dims}")
    elif w is not None and h is not None:
        # a size says "big", not "content": furniture (a recommendation card, a chart) is big too
        score += 0 if furniture else 1
        signals.append(f"declared {dims}")
    if img.get("hidden") is not None or _HIDDEN_STYLE.search(img.get("style") or ""):
        score -= 10
        signals.append("hidden")
    return score, signals, (w, h)


def _stem(url: str) -> str:
    """URL without query and without a size suffix: the same picture at another CDN size."""
    path = urlsplit(url).path
    path = _URL_WXH.sub("", _URL_PX.sub("/", path))
    return re.sub(r"[-_]+(?=\.[a-z0-9]+$)", "", path.lower())


def clean_text(text: str | None) -> str:
    return " ".join((text or "").split())


def _text_without(el: etree._Element, skip: frozenset[str], skip_credits: bool = False) -> str:
    """Text content of `el` without the subtrees whose tag is in `skip` (their tails are kept).

    Iterative, not recursive: a page nested 50,000 elements deep must not exhaust the stack.
    With `skip_credits`, children whose class names a photo credit are left out too.
    """
    parts: list[str] = [el.text or ""]
    stack: list[etree._Element | str] = []
    for child in reversed(el):
        stack += [child.tail or "", child]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        keep = isinstance(item.tag, str) and item.tag not in skip
        if keep and skip_credits and _tokens(item.get("class"), item.get("id")) & CREDIT_HINTS:
            keep = False
        if keep:
            parts.append(item.text or "")
            for child in reversed(item):
                stack += [child.tail or "", child]
    return "".join(parts)


_SKIP_TEXT = frozenset({"figcaption", "script", "style", "noscript", "template"})


def trim_words(text: str, max_chars: int) -> str:
    """At most `max_chars`, cut at a word boundary."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1].rsplit(" ", 1)[0]
    return cut if cut else text[:max_chars]


def surrounding_text(img: etree._Element, max_chars: int = 300) -> str:
    """The nearest paragraph-like text: the image's own block, else an adjacent `<p>`.

    Deliberately short-sighted: a gallery image without text must not borrow the paragraph of the
    figure before it. The container is the image's `<figure>`, else its nearest block element; a
    broad container (article, section, body) is never read whole — only the `<p>` right next to
    the image (or its inline wrapper) is.
    """
    anchor, container = img, img.getparent()
    figure = next((a for a in img.iterancestors() if a.tag == "figure"), None)
    if figure is not None:
        anchor, container = figure, figure.getparent()
        own = clean_text(_text_without(figure, _SKIP_TEXT))
        if own:
            return trim_words(own, max_chars)
    else:
        while container is not None and container.tag not in BLOCK_TAGS:
            anchor, container = container, container.getparent()
        if container is not None and container.tag not in BROAD_TAGS:
            own = clean_text(_text_without(container, _SKIP_TEXT))
            if own:
                return trim_words(own, max_chars)
            anchor = container
    for sib in (anchor.getnext(), anchor.getprevious()):
        if sib is not None and sib.tag == "p":
            text = clean_text(_text_without(sib, _SKIP_TEXT))
            if text:
                return trim_words(text, max_chars)
    return ""


def og_texts(doc: etree._Element, base: str, schemes: tuple[str, ...]) -> tuple[set[str], str]:
    """(resolved og:image URLs, og:description) of the page."""
    images, description = set(), ""
    for meta in doc.iter("meta"):
        prop = (meta.get("property") or meta.get("name") or "").strip().lower()
        if prop in ("og:image", "og:image:url", "og:image:secure_url"):
            url = resolve_url(base, meta.get("content"), schemes)
            if url:
                images.add(url)
        elif prop == "og:description" and not description:
            description = clean_text(meta.get("content"))
    return images, description


def meta_images(doc: etree._Element, base: str, schemes: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """The page's declared share images — og:image, twitter:image, JSON-LD `image` — each with its
    alternative texts as (source label, text): og:image:alt, twitter:image:alt, ImageObject caption."""
    out: dict[str, list[tuple[str, str]]] = {}
    last = ""
    for meta in doc.iter("meta"):
        prop = (meta.get("property") or meta.get("name") or "").strip().lower()
        content = meta.get("content")
        if prop in ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"):
            url = resolve_url(base, content, schemes)
            if url:
                out.setdefault(url, [])
                last = url
        elif prop in ("og:image:alt", "twitter:image:alt") and last and clean_text(content):
            out[last].append((prop, clean_text(content)))
    for script in doc.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json" or not script.text:
            continue
        try:
            data = json.loads(script.text)
        except ValueError:
            continue
        for url, caption in _jsonld_images(data):
            url = resolve_url(base, url, schemes)
            if url:
                out.setdefault(url, [])
                if caption:
                    out[url].append(("json-ld caption", caption))
    return out


def _jsonld_images(data: object, depth: int = 0) -> list[tuple[str, str]]:
    """(url, caption) of every `image` value in a JSON-LD document (string, list or ImageObject)."""
    found: list[tuple[str, str]] = []
    if depth > 6:
        return found
    if isinstance(data, list):
        for item in data:
            found += _jsonld_images(item, depth + 1)
    elif isinstance(data, dict):
        for key, value in data.items():
            if key == "image":
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, str):
                        found.append((v, ""))
                    elif isinstance(v, dict) and isinstance(v.get("url") or v.get("contentUrl"), str):
                        found.append((v.get("url") or v.get("contentUrl"), clean_text(str(v.get("caption") or ""))))
            elif isinstance(value, (dict, list)):
                found += _jsonld_images(value, depth + 1)
    return found


def image_texts(
    img: etree._Element, url: str, og_images: set[str], og_description: str, max_chars: int = 300
) -> list[TextCandidate]:
    """Every candidate caption of one image, in the page's own words (empty texts left out)."""
    out: list[TextCandidate] = []
    for source, text in (
        (CaptionSource.ALT, img.get("alt")),
        (CaptionSource.TITLE, img.get("title")),
    ):
        if clean_text(text):
            out.append(TextCandidate(source, clean_text(text)))
    figure = next((a for a in img.iterancestors() if a.tag == "figure"), None)
    if figure is not None:
        for cap in figure.iter("figcaption"):
            text = clean_text(_text_without(cap, frozenset({"script", "style"}), skip_credits=True))
            if text:
                out.append(TextCandidate(CaptionSource.FIGCAPTION, text))
                break
    around = surrounding_text(img, max_chars)
    if around:
        out.append(TextCandidate(CaptionSource.SURROUNDING, around))
    if og_description and url in og_images:
        out.append(TextCandidate(CaptionSource.OG, og_description))
    return out


def background_url(el: etree._Element, base: str, schemes: tuple[str, ...]) -> str:
    """The URL of an inline `style="background-image: url(...)"`, or ''."""
    m = _BG_URL.search(el.get("style") or "")
    return resolve_url(base, m.group(1), schemes) if m else ""


_RAW_IMG = re.compile(r"<(?:amp-)?img\b", re.I)


class _ImgScanner(HTMLParser):
    """Every `<img>`/`<amp-img>` tag's attributes, from a tokenizer that keeps no tree (no depth limit)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("img", "amp-img"):
            self.tags.append({k: v or "" for k, v in attrs})

    handle_startendtag = handle_starttag


def unparsed_images(
    html: str, doc: etree._Element, page_url: str, base: str, schemes: tuple[str, ...], first_index: int
) -> list[ImageCandidate]:
    """Images the HTML parser dropped (libxml2 gives up below about 2,000 nested elements): found
    by a tokenizer instead, so that each still gets a verdict rather than vanishing."""
    parsed = sum(1 for _ in doc.iter("img", "amp-img"))
    if len(_RAW_IMG.findall(html)) <= parsed:
        return []
    scanner = _ImgScanner()
    try:
        scanner.feed(html)
        scanner.close()
    except Exception:  # noqa: BLE001 - a tokenizer error must not lose the page's other images
        return []
    if len(scanner.tags) <= parsed:
        return []
    known: dict[str, int] = {}
    for img in doc.iter("img", "amp-img"):
        u = image_url(img, base, schemes)[0]
        known[u] = known.get(u, 0) + 1
    out = []
    for attrs in scanner.tags:
        el = etree.Element("img", {k: v for k, v in attrs.items() if re.fullmatch(r"[A-Za-z_][\w.-]*", k)})
        url = image_url(el, base, schemes)[0]
        if not url:
            continue
        if known.get(url, 0) > 0:
            known[url] -= 1
            continue
        texts = [TextCandidate(CaptionSource.ALT, clean_text(attrs["alt"]))] if clean_text(attrs.get("alt")) else []
        why = "the HTML parser dropped this image (markup nested beyond its depth limit); its context is unknown"
        out.append(ImageCandidate(url=url, index=first_index + len(out), is_main=False, score=0.0, signals=[why],
                                  texts=texts, source_attr="tokenizer", unparsed=why))  # fmt: skip
    return out


def _in_noscript(el: etree._Element) -> bool:
    return any(a.tag == "noscript" for a in el.iterancestors())


def _is_fallback_copy(img: etree._Element, shown: set[int]) -> bool:
    """An `<img>` inside `<noscript>` whose block also shows an image candidate (a lazy copy at
    another size, or the `<amp-img>` it belongs to): the same picture, not a second candidate."""
    noscript = next((a for a in img.iterancestors() if a.tag == "noscript"), None)
    parent = noscript.getparent() if noscript is not None else None
    if parent is None:
        return False
    if id(parent) in shown:  # <amp-img><noscript><img>
        return True
    return any(id(el) in shown for el in parent.iter("img", "amp-img") if el is not img)


def extract_images(
    html: str,
    page_url: str,
    *,
    min_declared_side: int = 300,
    main_threshold: float = 0.0,
    surrounding_max_chars: int = 300,
    schemes: tuple[str, ...] = ("http", "https"),
) -> list[ImageCandidate]:
    """Every fetchable image of the page, in document order, marked main (score >= threshold) or decoy.

    Candidates: `<img>` and `<amp-img>` elements; elements with an inline CSS `background-image`
    (a hero), scored like images, less 3 unless they say they are a hero (class) or an image
    (`role="img"`, whose `aria-label` is its alt text); and, only on a page where nothing in the
    markup is a main image (a JavaScript app that renders its content later), the page's declared
    share image (og:image, twitter:image, JSON-LD), whose alternative texts are its alt
    (og:image:alt, twitter:image:alt) or caption (ImageObject caption, as figcaption).

    Images with no http(s) URL at all (only a data: placeholder, say) are left out: with no URL
    there is nothing to record a verdict for. A `<noscript>` copy of an image that the page also
    shows lazily is left out too — it is the same image, not a second candidate.
    """
    doc = parse_html(html)
    if doc is None:
        return []
    base = document_base(doc, page_url)
    og_images, og_description = og_texts(doc, base, schemes)
    metas = meta_images(doc, base, schemes)
    meta_urls = frozenset(metas)
    found: list[tuple[ImageCandidate, etree._Element]] = []
    file_page = urlsplit(base).scheme.lower() == "file"
    for index, img in enumerate(doc.iter("img", "amp-img")):
        url, how, kind, value = image_source(img, base, schemes)
        if not url:
            bad = malformed_source(img, base)
            if bad:  # names an image, but not one any client could fetch: say so
                why = f"malformed image URL {bad[:120]!r}"
                found.append((ImageCandidate(url=bad, index=index, is_main=False, score=0.0, signals=[why],
                                             texts=image_texts(img, bad, og_images, og_description,
                                                               surrounding_max_chars),
                                             source_attr="src", unparsed=why, unparsed_reason="bad_html"), img))
                continue
            local = image_source(img, base, ("file",))[0] if file_page else ""
            if local:  # a relative URL on a saved page with no http(s) URL: say why, do not drop it
                why = f"relative image URL on a page known only as {base[:80]}: set input.base_url"
                found.append((ImageCandidate(url=local, index=index, is_main=False, score=0.0, signals=[why],
                                             texts=image_texts(img, local, og_images, og_description,
                                                               surrounding_max_chars),
                                             source_attr=how, unparsed=why, unparsed_reason="no_base_url"), img))
            continue
        size = effective_size(declared_size(img), url, kind, value)
        score, signals, (w, h) = score_image(
            img, url, min_declared_side=min_declared_side, size=size, meta_images=meta_urls
        )
        cand = ImageCandidate(
            url=url,
            index=index,
            is_main=score >= main_threshold,
            score=score,
            signals=signals,
            texts=image_texts(img, url, og_images, og_description, surrounding_max_chars),
            declared_width=w,
            declared_height=h,
            source_attr=how if img.tag == "img" else f"amp-img {how}",
        )
        found.append((cand, img))
    shown_urls = {c.url for c, el in found if not _in_noscript(el)}
    shown_els = {id(el) for c, el in found if not _in_noscript(el)}
    out = [c for c, el in found if not (_in_noscript(el) and (c.url in shown_urls or _is_fallback_copy(el, shown_els)))]
    next_index = sum(1 for _ in doc.iter("img", "amp-img"))
    seen = {c.url for c in out}
    for el in doc.iter():
        if not isinstance(el.tag, str) or el.tag in ("img", "amp-img") or "background" not in (el.get("style") or ""):
            continue
        url = background_url(el, base, schemes)
        if not url or url in seen:
            continue
        seen.add(url)
        score, signals, (w, h) = score_image(
            el, url, min_declared_side=min_declared_side, size=url_size(url), meta_images=meta_urls
        )
        is_image = (el.get("role") or "").strip().lower() == "img"
        if is_image or _tokens(el.get("class"), el.get("id")) & HERO_HINTS:
            signals.append("css hero" if not is_image else "css background, role=img")
        else:
            score -= 3
            signals.append("css background")
        texts = []
        label = clean_text(el.get("aria-label")) if is_image else ""
        if label:
            texts.append(TextCandidate(CaptionSource.ALT, label))
        if clean_text(el.get("title")):
            texts.append(TextCandidate(CaptionSource.TITLE, clean_text(el.get("title"))))
        own = trim_words(clean_text(_text_without(el, _SKIP_TEXT)), surrounding_max_chars)
        if own:
            texts.append(TextCandidate(CaptionSource.SURROUNDING, own))
        out.append(ImageCandidate(url=url, index=next_index, is_main=score >= main_threshold, score=score,
                                  signals=signals, texts=texts, declared_width=w, declared_height=h,
                                  source_attr="css background-image"))  # fmt: skip
        next_index += 1
    out += unparsed_images(html, doc, page_url, base, schemes, next_index + len(metas))
    if not any(c.is_main for c in out):
        for url, alts in metas.items():
            if url in seen:
                continue
            seen.add(url)
            texts = [
                TextCandidate(CaptionSource.FIGCAPTION if label == "json-ld caption" else CaptionSource.ALT, text)
                for label, text in alts
            ]
            labels = ", ".join(sorted({label for label, _ in alts})) or "no alt text"
            out.append(ImageCandidate(url=url, index=next_index, is_main=True, score=main_threshold,
                                      signals=[f"page metadata image, no main image in the markup ({labels})"],
                                      texts=texts, source_attr="meta"))  # fmt: skip
            next_index += 1
            break  # one share image per page: the first declared
    return out

