"""HTML for the synthetic web: article pages with main figures, decoys and lazy-loading markup.

Why this much realism: the crawler's job is to find the main image and its caption in messy
HTML. Pages therefore carry what real blogs carry — a header logo, an author avatar, related
thumbnails, an ad banner, social icons and a tracking pixel around an `<article>` of figures —
and the main images use the markup variants a crawler must understand (`data-src` with a
placeholder, `srcset` with w and x descriptors, `<picture><source>`), written with relative or
root-relative URLs and sometimes under a `<base href>`. No URL names a host, so a generated site
can be served on any port.
"""

from __future__ import annotations

import html
import posixpath
from dataclasses import dataclass, field

import numpy as np

MARKUPS = ("plain", "data-src", "srcset-w", "srcset-x", "picture")
PLACEHOLDER = "/static/placeholder.gif"
SOCIAL = (("twitter", "T", (29, 161, 242)), ("facebook", "f", (59, 89, 152)), ("rss", "R", (238, 128, 45)))


@dataclass
class MainImage:
    """A main-image candidate as it appears on the page (URLs are root-relative paths)."""

    url: str
    markup: str = "plain"
    alt: str | None = None  # None: no alt attribute at all
    title: str = ""
    figcaption: str = ""
    paragraph: str = ""
    lang: str = ""
    small_url: str = ""  # lower-resolution variant, for srcset / picture
    width: int = 0
    small_width: int = 0
    height: int = 0
    size_attrs: bool = False
    gallery: bool = False  # goes into the text-free gallery block
    mime: str = "image/jpeg"


@dataclass
class Related:
    page_path: str
    thumb_url: str
    title: str


@dataclass
class PageDoc:
    """Everything one article page shows; `render_page` turns it into HTML."""

    page: int
    site_name: str
    title: str
    intro: str
    author: str
    avatar_url: str
    ad_url: str
    pixel_url: str
    base_href: str = ""  # a directory path such as "/media/"; "" means no <base>
    og_image: str = ""
    mains: list[MainImage] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)

    @property
    def path(self) -> str:
        return page_path(self.page)


def page_path(page: int) -> str:
    return f"/p/{page:04d}.html"


def decoy_urls(doc: PageDoc) -> list[tuple[str, str]]:
    """(noise kind, root-relative URL) of every decoy image, in document order."""
    out = [("decoy_logo", "/static/logo.png"), ("decoy_avatar", doc.avatar_url)]
    out += [("decoy_thumb", r.thumb_url) for r in doc.related]
    out.append(("decoy_ad", doc.ad_url))
    out += [("decoy_social", f"/static/social/{name}.png") for name, _, _ in SOCIAL]
    out.append(("decoy_pixel", doc.pixel_url))
    return out


class _Linker:
    """Writes each URL either root-relative or relative to the page's effective base."""

    def __init__(self, doc: PageDoc, rng: np.random.Generator) -> None:
        self.base_dir = doc.base_href or posixpath.dirname(doc.path) + "/"
        self.rng = rng

    def __call__(self, url: str) -> str:
        path, _, query = url.partition("?")
        if self.rng.random() < 0.5:
            out = path
        else:
            out = posixpath.relpath(path, self.base_dir.rstrip("/") or "/")
        return html.escape(out + (f"?{query}" if query else ""))


def _attr(name: str, value: str | None) -> str:
    return "" if value is None else f' {name}="{html.escape(value)}"'


def _img_tag(m: MainImage, link: _Linker) -> str:
    alt = _attr("alt", m.alt) + _attr("title", m.title or None)
    size = f' width="{m.width}" height="{m.height}"' if m.size_attrs and m.markup == "plain" else ""
    if m.markup == "plain":
        lazy = ' loading="lazy"' if link.rng.random() < 0.4 else ""
        return f'<img src="{link(m.url)}"{alt}{size}{lazy}>'
    if m.markup == "data-src":
        return f'<img class="lazyload" src="{link(PLACEHOLDER)}" data-src="{link(m.url)}"{alt}>'
    if m.markup == "srcset-w":
        srcset = f"{link(m.small_url)} {m.small_width}w, {link(m.url)} {m.width}w"
        sizes = f"(max-width: 700px) 100vw, {m.width}px"
        return f'<img src="{link(m.small_url)}" srcset="{srcset}" sizes="{sizes}"{alt}>'
    if m.markup == "srcset-x":
        return f'<img src="{link(m.small_url)}" srcset="{link(m.small_url)} 1x, {link(m.url)} 2x"{alt}>'
    if m.markup == "picture":
        srcset = f"{link(m.url)} {m.width}w, {link(m.small_url)} {m.small_width}w"
        return (
            f'<picture><source type="{m.mime}" media="(min-width: 700px)" srcset="{srcset}">'
            f'<img src="{link(m.small_url)}"{alt}></picture>'
        )
    raise ValueError(f"unknown markup {m.markup!r}")


def _figure(m: MainImage, link: _Linker) -> str:
    lang = _attr("lang", m.lang or None)
    cap = f"\n  <figcaption>{html.escape(m.figcaption)}</figcaption>" if m.figcaption else ""
    para = f"\n<p{lang}>{html.escape(m.paragraph)}</p>" if m.paragraph else ""
    return f'<figure class="post-image"{lang}>\n  {_img_tag(m, link)}{cap}\n</figure>{para}'


def render_page(doc: PageDoc, rng: np.random.Generator) -> str:
    """The HTML of one article page. Deterministic given `doc` and the state of `rng`."""
    link = _Linker(doc, rng)
    head = [
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(doc.title)} | {html.escape(doc.site_name)}</title>",
    ]
    if doc.base_href:
        head.append(f'<base href="{html.escape(doc.base_href)}">')
    if doc.og_image:
        head.append(f'<meta property="og:title" content="{html.escape(doc.title)}">')
        head.append(f'<meta property="og:image" content="{link(doc.og_image)}">')
    head.append(f'<link rel="stylesheet" href="{link("/static/site.css")}">')
    header = (
        f'<header class="site-header">\n<a href="{link("/index.html")}"><img class="site-logo" '
        f'src="{link("/static/logo.png")}" alt="{html.escape(doc.site_name)}" width="180" height="48"></a>\n'
        f'<nav><a href="{link("/index.html")}">Home</a> <a href="{link("/index.html")}#archive">Archive</a></nav>\n'
        "</header>"
    )
    byline = (
        f'<div class="byline"><img class="avatar" src="{link(doc.avatar_url)}" alt="{html.escape(doc.author)}" '
        f'width="48" height="48"> By <span class="author">{html.escape(doc.author)}</span></div>'
    )
    figures = [_figure(m, link) for m in doc.mains if not m.gallery]
    gallery = [f'<div class="photo">{_img_tag(m, link)}</div>' for m in doc.mains if m.gallery]
    article = [f"<h1>{html.escape(doc.title)}</h1>", byline, f"<p>{html.escape(doc.intro)}</p>", *figures]
    if gallery:
        article.append('<section class="gallery">\n' + "\n".join(gallery) + "\n</section>")
    related = "\n".join(
        f'<li><a href="{link(r.page_path)}"><img src="{link(r.thumb_url)}" alt="{html.escape(r.title)}" '
        f'width="150" height="100"></a></li>'
        for r in doc.related
    )
    social = "\n".join(
        f'<li><a href="{link("/share/" + name)}"><img class="social-icon" src="{link(f"/static/social/{name}.png")}" '
        f'alt="{name.title()}" width="32" height="32"></a></li>'
        for name, _, _ in SOCIAL
    )
    body = [
        header,
        "<main>",
        "<article>",
        *article,
        "</article>",
        f'<aside class="related"><h2>Related posts</h2>\n<ul>\n{related}\n</ul></aside>',
        f'<aside class="ad"><a href="{link("/ads/click")}"><img src="{link(doc.ad_url)}" alt="Advertisement" '
        'width="728" height="90"></a></aside>',
        "</main>",
        f'<footer>\n<ul class="social">\n{social}\n</ul>\n<p>&copy; {html.escape(doc.site_name)}</p>\n'
        f'<img src="{link(doc.pixel_url)}" width="1" height="1" alt="" style="display:none">\n</footer>',
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        + "\n".join(head)
        + "\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render_index(site_name: str, docs: list[PageDoc]) -> str:
    """The site's front page: a list of links to every article, the crawler's seed."""
    items = "\n".join(f'<li><a href="{html.escape(d.path.lstrip("/"))}">{html.escape(d.title)}</a></li>' for d in docs)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(site_name)}</title>\n'
        f'<link rel="stylesheet" href="static/site.css">\n</head>\n<body>\n<h1>{html.escape(site_name)}</h1>\n'
        f'<ul id="archive">\n{items}\n</ul>\n</body>\n</html>\n'
    )


SITE_CSS = """body { font-family: sans-serif; max-width: 980px; margin: auto; }
.site-header { display: flex; justify-content: space-between; }
figure.post-image img, .gallery img { max-width: 100%; height: auto; }
.related ul, .social { list-style: none; display: flex; gap: 8px; }
"""

# --- text banks ---------------------------------------------------------------------------------

_TITLE_A = ("Bright", "Quiet", "Simple", "Colourful", "Small", "Morning", "Weekend", "Studio", "Paper", "Afternoon")
_TITLE_B = ("shapes", "arrangements", "still lifes", "compositions", "experiments", "patterns", "figures", "studies")
_TITLE_C = (
    "on the desk",
    "by the window",
    "in the studio",
    "for beginners",
    "we loved",
    "of the week",
    "in soft light",
)
_INTROS = (
    "We spent the morning arranging paper cut-outs on the studio table and photographing them.",
    "This week we tried a few new compositions with coloured card and a single lamp.",
    "Here are some of our favourite pictures from the latest session in the studio.",
    "Readers asked for more simple compositions, so here is another set from our archive.",
    "A short post with a few pictures we took while testing a new camera.",
    "We keep coming back to basic geometric forms; they are a great way to practise lighting.",
)
_PARAGRAPHS = (
    "The light was soft and came from the left, which kept the shadows short.",
    "We used matte card so that nothing would reflect the lamp.",
    "It took a few tries to get the spacing right before we were happy with it.",
    "Let us know in the comments which arrangement you like best.",
    "The background is a sheet of painted board, slightly out of focus.",
    "We shot this one handheld, so it is a little softer than the others.",
    "Everything here was cut by hand from leftover paper.",
    "The colours came out stronger than we expected on this one.",
)
AUTHORS = ("Ann Example", "Bob Sample", "Carla Demo", "Dev Placeholder")
AD_TEXTS = ("SUMMER SALE -50%", "NEW ARRIVALS", "FREE SHIPPING", "LIMITED OFFER")


def page_title(rng: np.random.Generator) -> str:
    return f"{rng.choice(_TITLE_A)} {rng.choice(_TITLE_B)} {rng.choice(_TITLE_C)}"


def intro(rng: np.random.Generator) -> str:
    return str(rng.choice(_INTROS))


def paragraph(rng: np.random.Generator) -> str:
    a, b = (int(i) for i in rng.choice(len(_PARAGRAPHS), size=2, replace=False))
    return f"{_PARAGRAPHS[a]} {_PARAGRAPHS[b]}"
