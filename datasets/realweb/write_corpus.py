# ruff: noqa: E501 - page markup is kept on one line per element, as sites write it
"""Write the real-web DOM corpus: pages/*.html plus truth.json (run once; the output is committed).

Why a script and not 65 hand-saved files: the pages imitate the markup of real site families
(WordPress, Discourse/phpBB, Shopify-style shops, news CMSs, MediaWiki, AMP, single-page apps,
Chinese/Japanese/Arabic/Russian portals) and share their furniture (headers, ad slots, pixels,
share bars), which is easier to keep consistent in one file. It imports nothing from laitkit and
was written before the finder was tuned on it; its truth says, for each page, which image URLs a
person would call the page's content photos and which caption text describes each.

Truth rules (decided before tuning):
- main: photographs that belong to the page's content (lead photo, inline figures, product and
  listing gallery photos, a CSS background hero, the only image of a metadata-only page).
- not main: logos, avatars, icons, sprites, ads, tracking pixels, related-post and CDN
  thumbnails, static maps, charts and diagrams, emoji, badges.
- caption: the alt text when it describes the photo; else the figcaption (without the photo
  credit); else the title attribute; for a hero the element's aria-label; for a metadata-only
  page og:image:alt / twitter:image:alt / the JSON-LD ImageObject caption.
- URL: the one a browser shows at full size (largest srcset/picture candidate, lazy attribute).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGES: list[dict] = []


def page(name: str, kind: str, url: str, html: str, main: list[tuple[str, str]]) -> None:
    PAGES.append({"file": f"pages/{name}.html", "kind": kind, "url": url, "main": [{"url": u, "caption": c} for u, c in main]})
    (HERE / "pages").mkdir(exist_ok=True)
    (HERE / "pages" / f"{name}.html").write_text(html, encoding="utf-8")


def useful(alt: str) -> bool:
    """The truth rule 'alt when it describes the photo': a camera file name does not."""
    return bool(alt) and not re.fullmatch(r"(IMG|DSC)_?\d+(\.JPE?G)?", alt, re.I)


PIXELS = """
<img src="https://www.facebook.com/tr?id=93412&ev=PageView&noscript=1" height="1" width="1" style="display:none" alt="">
<img src="https://sb.scorecardresearch.com/p?c1=2&c2=6035&cv=3.6.0&cj=1" alt="" width="1" height="1">
<img src="https://pixel.quantserve.com/pixel/p-3aud4J6uA4Z6Y.gif" border="0" height="1" width="1" alt="Quantcast">
"""


def news(i: int, site: str, host: str, headline: str, lead: tuple[str, str, str], inline: tuple[str, str, str] | None,
         related: list[str], lazy: str) -> None:
    lead_file, lead_alt, lead_cap = lead
    base = f"https://{host}"
    if lazy == "data-src":
        lead_img = (f'<img class="lazy" src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7" '
                    f'data-src="https://static.{host}/images/2024/{lead_file}_1280.jpg" alt="{lead_alt}" width="1280" height="720">')
        lead_url = f"https://static.{host}/images/2024/{lead_file}_1280.jpg"
    elif lazy == "srcset-w":
        lead_img = (f'<img src="https://static.{host}/images/2024/{lead_file}_480.jpg" '
                    f'srcset="https://static.{host}/images/2024/{lead_file}_480.jpg 480w, '
                    f'https://static.{host}/images/2024/{lead_file}_960.jpg 960w, '
                    f'https://static.{host}/images/2024/{lead_file}_1920.jpg 1920w" sizes="(max-width: 600px) 100vw, 960px" '
                    f'alt="{lead_alt}" loading="lazy">')
        lead_url = f"https://static.{host}/images/2024/{lead_file}_1920.jpg"
    elif lazy == "picture":
        lead_img = (f'<picture><source type="image/webp" srcset="https://static.{host}/images/2024/{lead_file}_800.webp 800w, '
                    f'https://static.{host}/images/2024/{lead_file}_1600.webp 1600w">'
                    f'<source srcset="https://static.{host}/images/2024/{lead_file}_800.jpg 800w, '
                    f'https://static.{host}/images/2024/{lead_file}_1600.jpg 1600w">'
                    f'<img src="https://static.{host}/images/2024/{lead_file}_800.jpg" alt="{lead_alt}"></picture>')
        lead_url = f"https://static.{host}/images/2024/{lead_file}_1600.webp"
    else:
        lead_img = f'<img src="https://static.{host}/images/2024/{lead_file}.jpg" alt="{lead_alt}" width="1024" height="576">'
        lead_url = f"https://static.{host}/images/2024/{lead_file}.jpg"
    main = [(lead_url, lead_alt if useful(lead_alt) else lead_cap)]
    inline_html = ""
    if inline:
        f, alt, cap = inline
        inline_html = (f'<figure class="article-figure"><img src="https://static.{host}/images/2024/{f}.jpg" alt="{alt}" '
                       f'width="800" height="533"><figcaption><span class="caption-text">{cap}</span> '
                       f'<span class="credit">Photograph: Agency Staff</span></figcaption></figure>')
        main.append((f"https://static.{host}/images/2024/{f}.jpg", alt if alt else cap))
    rel = "".join(
        f'<li class="related-item"><a href="{base}/news/{r}"><img src="https://static.{host}/images/2024/{r}_thumb_160x90.jpg" '
        f'alt="{r.replace("-", " ")}" width="160" height="90"></a><a href="{base}/news/{r}">{r.replace("-", " ").title()}</a></li>'
        for r in related
    )
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{headline} | {site}</title>
<meta property="og:image" content="{lead_url}"><meta property="og:title" content="{headline}">
<meta name="twitter:card" content="summary_large_image"><meta name="twitter:image" content="{lead_url}">
<link rel="stylesheet" href="{base}/assets/main.css"></head>
<body class="article-page">
<header class="site-header"><a href="{base}/" class="brand"><img src="{base}/assets/img/{site.lower().replace(' ', '')}-logo.svg" alt="{site}" width="180" height="40"></a>
<nav class="primary-nav"><ul><li><a href="{base}/world">World</a></li><li><a href="{base}/business">Business</a></li></ul></nav></header>
<div class="ad-slot ad-leaderboard" id="div-gpt-ad-top"><a href="https://adclick.g.doubleclick.net/pcs/click?xai=AKAOjs"><img src="https://tpc.googlesyndication.com/simgad/1029384756" width="728" height="90" alt="Advertisement"></a></div>
<main id="main-content"><article class="story">
<h1 class="headline">{headline}</h1>
<div class="byline"><img class="author-photo" src="https://static.{host}/authors/jdoe.jpg" alt="Jane Doe" width="48" height="48"> By Jane Doe, 14 March 2024</div>
<figure class="lead-media">{lead_img}<figcaption>{lead_cap} <span class="credit">Photo: Wire Service</span></figcaption></figure>
<div class="story-body"><p>Officials said on Thursday that the work would continue through the spring, with further updates expected from the regional council.</p>
<div class="share-tools"><a href="https://twitter.com/intent/tweet"><img src="{base}/assets/icons/share-twitter.png" alt="Share on Twitter" width="24" height="24"></a><a href="https://facebook.com/sharer"><img src="{base}/assets/icons/share-facebook.png" alt="Share on Facebook" width="24" height="24"></a></div>
<p>Residents interviewed on Friday described the changes as long overdue and welcomed the decision.</p>
{inline_html}
<p>The council will publish its full report next month.</p></div>
</article>
<aside class="related-stories"><h2>More stories</h2><ul>{rel}</ul></aside>
</main>
<footer class="site-footer"><img src="{base}/assets/img/footer-logo.png" alt="{site}" width="120" height="30"><p>&copy; 2024 {site}</p></footer>
{PIXELS}</body></html>"""
    page(f"news_{i:02d}", "news", f"{base}/news/2024/03/14/{lead_file}", html, main)


def write_news() -> None:
    news(1, "Daily Courier", "dailycourier.example", "Flood barriers raised along the river",
         ("flood-barriers", "Workers raise steel flood barriers along the swollen river at dawn", "Barriers go up along the river."),
         ("river-boats", "", "Rescue boats wait on the flooded high street of the old town"), ["budget-vote", "school-strike"], "data-src")
    news(2, "Metro Times", "metrotimes.example", "Night market returns to the harbour",
         ("night-market", "Crowds browse food stalls lit by lanterns at the harbour night market", "The market is back."),
         None, ["ferry-delays", "new-bridge"], "srcset-w")
    news(3, "The Ledger", "ledger.example", "Wildfire crews hold the line",
         ("wildfire-crew", "Firefighters cut a break through dry scrub above the valley", "Crews worked overnight."),
         ("smoke-valley", "Smoke drifts over vineyards in the valley below the ridge", "Smoke over the valley."),
         ["air-quality", "evacuations"], "picture")
    news(4, "Evening Post", "eveningpost.example", "Marathon draws record field",
         ("marathon-start", "IMG_4471.JPG", "Runners surge across the start line of the city marathon"),
         None, ["road-closures"], "plain")
    news(5, "Harbor Herald", "harborherald.example", "Old lighthouse restored",
         ("lighthouse", "The restored red and white lighthouse stands on the rocky point", "Restoration took two years."),
         ("lantern-room", "A technician polishes the lens in the lantern room", "Inside the lantern room."),
         ["ferry-fares", "harbour-seals"], "data-src")
    news(6, "Valley Gazette", "valleygazette.example", "Farmers bring in early harvest",
         ("wheat-harvest", "A combine harvester cuts golden wheat under a blue sky", "Harvest came early this year."),
         None, ["rain-forecast", "county-fair"], "plain")


def encyclopedia(i: int, title: str, infobox: tuple[str, str], thumbs: list[tuple[str, str, str]], extra_decoys: str) -> None:
    base = "https://en.wikipedia.example"
    f, alt = infobox
    ib_url = f"https://upload.wikimedia.example/wikipedia/commons/thumb/a/a1/{f}.jpg/330px-{f}.jpg"
    main = [(ib_url, alt)]
    th = ""
    for tf, talt, tcap in thumbs:
        u = f"https://upload.wikimedia.example/wikipedia/commons/thumb/b/b2/{tf}.jpg/440px-{tf}.jpg"
        th += (f'<figure class="mw-default-size" typeof="mw:File/Thumb"><a href="/wiki/File:{tf}.jpg" class="mw-file-description">'
               f'<img src="{u}" decoding="async" width="440" height="293" class="mw-file-element" '
               f'srcset="https://upload.wikimedia.example/wikipedia/commons/thumb/b/b2/{tf}.jpg/660px-{tf}.jpg 1.5x, '
               f'https://upload.wikimedia.example/wikipedia/commons/thumb/b/b2/{tf}.jpg/880px-{tf}.jpg 2x" alt="{talt}"></a>'
               f'<figcaption>{tcap}</figcaption></figure>')
        main.append((f"https://upload.wikimedia.example/wikipedia/commons/thumb/b/b2/{tf}.jpg/880px-{tf}.jpg", talt if talt else tcap))
    html = f"""<!DOCTYPE html><html class="client-nojs" lang="en" dir="ltr"><head><meta charset="UTF-8"><title>{title} - Wikipedia</title>
<meta property="og:image" content="https://upload.wikimedia.example/wikipedia/commons/a/a1/{f}.jpg"></head>
<body class="skin-vector mediawiki"><div id="mw-head"><a class="mw-wiki-logo" href="/wiki/Main_Page"></a>
<img class="mw-logo-icon" src="/static/images/icons/wikipedia.png" alt="" aria-hidden="true" height="50" width="50">
<img class="mw-logo-wordmark" alt="Wikipedia" src="/static/images/mobile/copyright/wikipedia-wordmark-en.svg" style="width: 7.5em; height: 1.125em;"></div>
<div id="content" class="mw-body" role="main"><h1 id="firstHeading">{title}</h1>
<div id="mw-content-text" class="mw-body-content"><div class="mw-parser-output">
<table class="infobox"><tbody><tr><th colspan="2" class="infobox-above">{title}</th></tr>
<tr><td colspan="2" class="infobox-image"><span class="mw-default-size" typeof="mw:File/Frameless"><a href="/wiki/File:{f}.jpg" class="mw-file-description"><img alt="{alt}" src="{ib_url}" decoding="async" width="330" height="220" class="mw-file-element" srcset="https://upload.wikimedia.example/wikipedia/commons/thumb/a/a1/{f}.jpg/495px-{f}.jpg 1.5x" data-file-width="3000" data-file-height="2000"></a></span>
<div class="infobox-caption">{alt}</div></td></tr>
<tr><th scope="row">Location</th><td><span class="flagicon"><img alt="" src="https://upload.wikimedia.example/wikipedia/commons/thumb/f/f3/Flag.svg/23px-Flag.svg.png" decoding="async" width="23" height="12" class="mw-file-element"></span> Region</td></tr>
<tr><td colspan="2"><img alt="Location map" src="https://upload.wikimedia.example/wikipedia/commons/thumb/c/c3/Location_map_region.svg/250px-Location_map_region.svg.png" width="250" height="200" class="mw-file-element"></td></tr>
</tbody></table>
<p><b>{title}</b> is described in this article, which covers its history, geography and culture.</p>
{th}
<p>Further research continued into the twentieth century.</p>
{extra_decoys}
<div class="navbox"><img alt="Stub icon" src="https://upload.wikimedia.example/wikipedia/commons/thumb/e/e1/Stub_icon.svg/40px-Stub_icon.svg.png" width="40" height="40"></div>
</div></div></div>
<div id="footer"><img src="/static/images/footer/wikimedia-button.png" width="88" height="31" alt="Wikimedia Foundation"><img src="/w/resources/assets/poweredby_mediawiki_88x31.png" alt="Powered by MediaWiki" width="88" height="31"></div>
</body></html>"""
    # the infobox thumbnail's largest variant is its 1.5x srcset entry
    main[0] = (f"https://upload.wikimedia.example/wikipedia/commons/thumb/a/a1/{f}.jpg/495px-{f}.jpg", alt)
    page(f"encyclopedia_{i:02d}", "encyclopedia", f"{base}/wiki/{title.replace(' ', '_')}", html, main)


def write_encyclopedia() -> None:
    chart = ('<figure typeof="mw:File/Thumb"><img src="https://upload.wikimedia.example/wikipedia/commons/thumb/d/d4/Population_chart.svg/'
             '400px-Population_chart.svg.png" alt="Chart of population growth since 1900" width="400" height="250" class="mw-file-element">'
             '<figcaption>Population, 1900 to 2020</figcaption></figure>')
    encyclopedia(1, "Lake Bled", ("Lake_Bled_aerial", "Lake Bled with its island church seen from the castle"),
                 [("Bled_Castle", "Bled Castle on a cliff above the lake", "Bled Castle"),
                  ("Pletna_boat", "", "A traditional pletna boat carries visitors to the island")], chart)
    encyclopedia(2, "Red Fox", ("Red_fox_portrait", "A red fox standing in snowy grass"),
                 [("Fox_kits", "Three fox kits play outside their den", "Kits near a den")], "")
    encyclopedia(3, "Hagia Sophia", ("Hagia_Sophia_exterior", "The domes and minarets of Hagia Sophia at sunset"),
                 [("Hagia_Sophia_interior", "Light streams through the windows below the main dome", "The interior")], chart)
    encyclopedia(4, "Monarch butterfly", ("Monarch_on_milkweed", "A monarch butterfly feeding on milkweed flowers"),
                 [("Monarch_cluster", "Thousands of monarchs cluster on fir branches", "Overwintering cluster in Mexico"),
                  ("Monarch_caterpillar", "Striped monarch caterpillar on a leaf", "Larva")], "")


def blog(i: int, theme: str, host: str, title: str, photos: list[tuple[str, str, str]], variant: str) -> None:
    base = f"https://{host}"
    up = f"{base}/wp-content/uploads/2023/08"
    body, main = "", []
    for n, (f, alt, cap) in enumerate(photos):
        if variant == "lazysizes":
            img = (f'<img width="1024" height="683" src="data:image/svg+xml,%3Csvg%20xmlns=%22http://www.w3.org/2000/svg%22%3E%3C/svg%3E" '
                   f'data-src="{up}/{f}-1024x683.jpg" data-srcset="{up}/{f}-300x200.jpg 300w, {up}/{f}-1024x683.jpg 1024w, {up}/{f}.jpg 2048w" '
                   f'data-sizes="auto" class="lazyload wp-image-{400 + n}" alt="{alt}">'
                   f'<noscript><img width="1024" height="683" src="{up}/{f}-1024x683.jpg" class="wp-image-{400 + n}" alt="{alt}"></noscript>')
            url = f"{up}/{f}.jpg"
        elif variant == "lazy-src":
            img = (f'<img src="{base}/wp-content/plugins/lazy-load/images/1x1.trans.gif" data-lazy-src="{up}/{f}-1024x683.jpg" '
                   f'data-lazy-srcset="{up}/{f}-1024x683.jpg 1024w, {up}/{f}-768x512.jpg 768w" class="aligncenter size-large wp-image-{400 + n}" '
                   f'alt="{alt}" width="1024" height="683">')
            url = f"{up}/{f}-1024x683.jpg"
        else:
            img = (f'<img decoding="async" loading="lazy" width="1024" height="683" src="{up}/{f}-1024x683.jpg" alt="{alt}" '
                   f'class="wp-image-{400 + n}" srcset="{up}/{f}-1024x683.jpg 1024w, {up}/{f}-300x200.jpg 300w, '
                   f'{up}/{f}-768x512.jpg 768w, {up}/{f}-1536x1024.jpg 1536w" sizes="(max-width: 1024px) 100vw, 1024px">')
            url = f"{up}/{f}-1536x1024.jpg"
        if cap:
            body += f'<figure class="wp-block-image size-large">{img}<figcaption class="wp-element-caption">{cap}</figcaption></figure>\n'
        else:
            body += f'<figure class="wp-block-image size-large">{img}</figure>\n<p>We kept walking after that.</p>\n'
        main.append((url, alt if useful(alt) else cap))
    html = f"""<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8"><title>{title} &#8211; {theme}</title>
<meta property="og:image" content="{main[0][0]}"></head>
<body class="post-template-default single single-post">
<div id="page" class="site"><header id="masthead" class="site-header"><div class="site-branding">
<a href="{base}/" class="custom-logo-link" rel="home"><img width="250" height="80" src="{base}/wp-content/uploads/2021/01/cropped-{theme.lower().replace(' ', '-')}-logo.png" class="custom-logo" alt="{theme}"></a></div></header>
<div id="content" class="site-content"><div id="primary" class="content-area"><main id="main" class="site-main">
<article id="post-{1200 + i}" class="post-{1200 + i} post type-post status-publish format-standard has-post-thumbnail hentry">
<header class="entry-header"><h1 class="entry-title">{title}</h1>
<div class="entry-meta"><span class="byline"><img alt="" src="https://secure.gravatar.com/avatar/3b1f0c?s=40&#038;d=mm&#038;r=g" class="avatar avatar-40 photo" height="40" width="40"> by <a href="{base}/author/sam">Sam</a></span></div></header>
<div class="entry-content"><p>We set off early on a clear morning, the kind that makes a long walk feel short.</p>
{body}
<p>Back at the car we agreed it was the best day of the trip. <img draggable="false" role="img" class="emoji" alt="😀" src="https://s.w.org/images/core/emoji/14.0.0/svg/1f600.svg"></p>
<div class="sharedaddy sd-sharing-enabled"><ul><li><a class="share-pinterest" href="#"><img src="{base}/wp-content/plugins/jetpack/images/pinterest.png" alt="Pin it" width="16" height="16"></a></li></ul></div>
</div>
<div class="jp-relatedposts" id="jp-relatedposts"><h3>Related</h3>
<div class="jp-relatedposts-post"><a href="{base}/older-trip"><img class="jp-relatedposts-post-img" src="https://i0.wp.com/{host}/wp-content/uploads/2022/05/older-trip.jpg?resize=350%2C200&#038;ssl=1" width="350" height="200" alt="An older trip"></a></div></div>
</article></main></div>
<aside id="secondary" class="widget-area"><section class="widget widget_media_image"><img width="300" height="250" src="{base}/wp-content/uploads/2022/02/sponsor-banner-300x250.jpg" class="image wp-image-88 attachment-medium" alt="Our sponsor"></section>
<section class="widget widget_instagram"><a href="#"><img src="https://scontent.cdninstagram.example/v/t51/123_n.jpg?stp=dst-jpg_s150x150" alt="Instagram photo" width="150" height="150"></a></section></aside></div>
<footer id="colophon" class="site-footer"><p>Proudly powered by WordPress</p></footer></div>
<img src="https://pixel.wp.com/g.gif?v=ext&#038;blog=1234&#038;post=99&#038;rand=0.5" alt=":)" width="6" height="5" id="wpstats">
</body></html>"""
    page(f"blog_{i:02d}", "blog", f"{base}/2023/08/{title.lower().replace(' ', '-')}/", html, main)


def write_blogs() -> None:
    blog(1, "Trail Notes", "trailnotes.example", "Three days on the coastal path",
         [("coastal-path", "The coastal path winds along green cliffs above the sea", "Day one"),
          ("sea-stacks", "", "Sea stacks off the headland at low tide")], "plain")
    blog(2, "Bread and Butter", "breadandbutter.example", "Learning to bake sourdough",
         [("sourdough-loaf", "A crusty sourdough loaf cooling on a wire rack", ""),
          ("starter-jar", "Bubbly sourdough starter in a glass jar", "")], "lazysizes")
    blog(3, "Small Garden", "smallgarden.example", "Tomatoes in containers",
         [("tomato-pots", "Ripe cherry tomatoes growing in terracotta pots", "")], "lazy-src")
    blog(4, "Pixel Journeys", "pixeljourneys.example", "A week in Kyoto",
         [("kyoto-temple", "DSC_0042", "The five storey pagoda of Yasaka in the evening"),
          ("bamboo-grove", "Tall bamboo stalks line a path in Arashiyama", "Arashiyama")], "plain")
    blog(5, "Coffee Corner", "coffeecorner.example", "Pour over at home",
         [("pour-over", "Hot water poured over coffee grounds in a ceramic dripper", "Slow and steady.")], "lazysizes")


def forum(i: int, host: str, software: str, thread: str, posts: list[tuple[str, str, str]]) -> None:
    base = f"https://{host}"
    body, main = "", []
    for n, (f, alt, text) in enumerate(posts):
        if software == "discourse":
            img = (f'<div class="lightbox-wrapper"><a class="lightbox" href="{base}/uploads/default/original/2X/a/{f}.jpeg" '
                   f'data-download-href="/uploads/default/{f}" title="{f}.jpeg"><img src="{base}/uploads/default/optimized/2X/a/{f}_2_690x460.jpeg" '
                   f'alt="{alt}" data-base62-sha1="{f}" width="690" height="460" srcset="{base}/uploads/default/optimized/2X/a/{f}_2_690x460.jpeg, '
                   f'{base}/uploads/default/optimized/2X/a/{f}_2_1035x690.jpeg 1.5x, {base}/uploads/default/optimized/2X/a/{f}_2_1380x920.jpeg 2x" '
                   f'data-dominant-color="8A8C7E"><div class="meta"><span class="filename">{f}.jpeg</span><span class="informations">4000×2667 2.1 MB</span></div></a></div>')
            url = f"{base}/uploads/default/optimized/2X/a/{f}_2_1380x920.jpeg"
            avatar = f'<img alt="" width="45" height="45" src="{base}/user_avatar/{host}/user{n}/90/1234_2.png" class="avatar">'
        else:
            img = f'<img src="{base}/download/file.php?id={300 + n}" class="postimage" alt="{alt}">'
            url = f"{base}/download/file.php?id={300 + n}"
            avatar = f'<img class="avatar" src="{base}/download/file.php?avatar=5{n}_1620.jpg" width="90" height="90" alt="User avatar">'
        body += (f'<div class="topic-post post" id="p{n}"><div class="topic-avatar postprofile">{avatar}'
                 f'<img src="{base}/images/ranks/rank_gold.gif" alt="Senior member" title="Senior member"></div>'
                 f'<div class="cooked content"><p>{text}</p>{img}<p>Any ideas welcome.</p></div>'
                 f'<div class="signature"><img src="https://i.imgur.example/sigbanner{n}.png" alt="signature" width="468" height="60"></div></div>\n')
        main.append((url, alt))
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{thread} - Community Forum</title></head>
<body><header class="d-header"><a href="{base}/"><img src="{base}/uploads/default/original/1X/forum-logo.png" alt="Community Forum" id="site-logo" class="logo-big"></a></header>
<div id="main-outlet" class="wrap" role="main"><h1>{thread}</h1>
<div class="post-stream">{body}</div>
<div class="suggested-topics"><h3>Suggested topics</h3><table><tr><td><img src="{base}/images/icons/topic_unread.gif" width="19" height="18" alt="unread"></td><td><a href="#">Another thread</a></td></tr></table></div>
</div><footer><img src="{base}/images/phpbb_logo.svg" alt="Forum software" width="149" height="52"></footer></body></html>"""
    page(f"forum_{i:02d}", "forum", f"{base}/t/{thread.lower().replace(' ', '-')}/{4000 + i}", html, main)


def write_forums() -> None:
    forum(1, "birdforum.example", "discourse", "Help identifying this hawk",
          [("hawk-fencepost", "A brown hawk perched on a wooden fence post", "Saw this one near the reservoir this morning.")])
    forum(2, "garagetalk.example", "phpbb", "Restoring a 1967 pickup",
          [("pickup-before", "Rusty blue pickup truck parked in a barn", "Here is how she looked when I bought her."),
           ("pickup-after", "The restored pickup gleaming in the sun after new paint", "And after two years of weekends.")])
    forum(3, "aquaristsforum.example", "discourse", "My planted tank after six months",
          [("planted-tank", "A planted aquarium with red plants and small tetras", "Six months in, finally happy with it.")])
    forum(5, "photographers.example", "discourse", "Critique my street shot",
          [("street-rain", "A man with a red umbrella crossing a rainy street at night", "Shot this last week, thoughts?")])
    forum(4, "woodworkers.example", "phpbb", "First dovetail box",
          [("dovetail-box", "A small walnut box with hand cut dovetail joints", "My first attempt at dovetails.")])


def shop(i: int, host: str, product: str, photos: list[tuple[str, str]], variant: str) -> None:
    base = f"https://{host}"
    cdn = "https://cdn.shopify.example/s/files/1/0123/4567/products"
    gallery, main = "", []
    for n, (f, alt) in enumerate(photos):
        if variant == "shopify":
            gallery += (f'<div class="product__media-item" data-media-id="{n}"><img class="product__media-img" '
                        f'srcset="{cdn}/{f}.jpg?v=1690000000&width=360 360w, {cdn}/{f}.jpg?v=1690000000&width=720 720w, '
                        f'{cdn}/{f}.jpg?v=1690000000&width=1440 1440w" src="{cdn}/{f}.jpg?v=1690000000&width=720" '
                        f'sizes="(min-width: 990px) 55vw, 100vw" alt="{alt}" width="1440" height="1440" loading="lazy"></div>')
            url = f"{cdn}/{f}.jpg?v=1690000000&width=1440"
        else:
            gallery += (f'<li class="gallery-slide"><img class="zoomable" src="{base}/media/catalog/product/cache/abc123/{f}.jpg" '
                        f'data-zoom-image="{base}/media/catalog/product/{f}.jpg" alt="{alt}" width="700" height="700"></li>')
            url = f"{base}/media/catalog/product/cache/abc123/{f}.jpg"
        main.append((url, alt))
    thumbs = "".join(f'<li><img src="{cdn}/{f}.jpg?v=1690000000&width=80" alt="{alt}" width="80" height="80" class="thumbnail-img"></li>'
                     for f, alt in photos)
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{product} – Shop</title>
<meta property="og:image" content="{main[0][0]}">
<script type="application/ld+json">{{"@context":"https://schema.org/","@type":"Product","name":"{product}","image":["{main[0][0]}"],"offers":{{"@type":"Offer","price":"49.00","priceCurrency":"USD"}}}}</script></head>
<body class="template-product"><div class="announcement-bar"><img src="{base}/cdn/shop/files/truck-icon.svg" alt="" width="20" height="20"> Free shipping over $50</div>
<header class="header"><a href="{base}/" class="header__heading-link"><img src="{cdn}/../files/shop-logo_200x.png" alt="Shop" width="200" height="60" class="header__heading-logo"></a>
<a href="/cart" class="cart-icon"><img src="{base}/cdn/shop/t/4/assets/icon-cart.svg" alt="Cart" width="24" height="24"></a></header>
<main id="MainContent" class="content-for-layout"><section class="product">
<div class="product__media-wrapper"><ul class="product__media-list">{gallery}</ul><ul class="thumbnail-list">{thumbs}</ul></div>
<div class="product__info"><h1 class="product__title">{product}</h1><p class="price">$49.00</p>
<div class="payment-icons"><img src="{base}/cdn/shop/t/4/assets/visa.svg" alt="Visa" width="38" height="24"><img src="{base}/cdn/shop/t/4/assets/mastercard.svg" alt="Mastercard" width="38" height="24"></div>
<div class="rating"><img src="{base}/cdn/shop/t/4/assets/stars-4-5.png" alt="4.5 out of 5 stars" width="90" height="18"></div>
<p>Made by hand in small batches. Ships within two business days.</p></div></section>
<section class="product-recommendations"><h2>You may also like</h2><ul class="grid">
<li class="grid__item"><div class="card__media"><img src="{cdn}/other-item.jpg?v=1&width=300" alt="Another product" width="300" height="300" loading="lazy"></div><a href="#">Another product</a></li>
</ul></section></main>
<footer class="footer"><img src="{base}/cdn/shop/files/trustpilot-badge.png" alt="Trustpilot" width="120" height="40"></footer>
{PIXELS}</body></html>"""
    page(f"shop_{i:02d}", "ecommerce", f"{base}/products/{product.lower().replace(' ', '-')}", html, main)


def write_shops() -> None:
    shop(1, "potteryshop.example", "Speckled stoneware mug",
         [("speckled-mug-front", "Speckled stoneware mug with a cream glaze on a wooden table"),
          ("speckled-mug-hand", "A hand holding the speckled mug filled with coffee")], "shopify")
    shop(2, "leathergoods.example", "Brown leather backpack",
         [("backpack-front", "Brown leather backpack with brass buckles"),
          ("backpack-worn", "A man wearing the brown backpack on a city street")], "magento")
    shop(3, "plantstore.example", "Fiddle leaf fig",
         [("fiddle-leaf", "A tall fiddle leaf fig in a white pot beside a window")], "shopify")
    shop(4, "bikeshop.example", "Steel touring bicycle",
         [("touring-bike-side", "Green steel touring bicycle with front and rear racks"),
          ("touring-bike-road", "The touring bicycle loaded with panniers on a mountain road")], "magento")
    shop(5, "teahouse.example", "Cast iron teapot",
         [("teapot-black", "Black cast iron teapot with a bamboo handle")], "shopify")


def recipe(i: int, host: str, name: str, hero: tuple[str, str], steps: list[tuple[str, str]]) -> None:
    base = f"https://{host}"
    f, alt = hero
    hero_url = f"https://images.{host}/recipes/{f}/hero-1200x800.jpg"
    main = [(hero_url, alt)]
    step_html = ""
    for n, (sf, salt) in enumerate(steps, 1):
        su = f"https://images.{host}/recipes/{f}/step-{sf}-800x533.jpg"
        step_html += (f'<li class="mntl-sc-block-group--LI"><p>Step {n}. {salt.split(" ", 3)[-1].capitalize()}.</p>'
                      f'<figure class="figure-media"><div class="img-placeholder"><img data-src="{su}" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" '
                      f'alt="{salt}" class="lazyload universal-image__image" width="800" height="533"></div></figure></li>')
        main.append((su, salt))
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{name} Recipe</title>
<script type="application/ld+json">{{"@context":"http://schema.org","@type":"Recipe","name":"{name}","image":{{"@type":"ImageObject","url":"{hero_url}","width":1200,"height":800}},"recipeIngredient":["2 cups flour"]}}</script></head>
<body><header class="header"><a href="{base}/"><img class="logo" src="{base}/img/logo-recipes.svg" alt="Recipes" width="160" height="40"></a></header>
<div class="mntl-leaderboard-spacer"><div id="leaderboard-flex-1" class="mntl-dynamic-billboard"><img src="https://securepubads.g.doubleclick.net/gampad/ad?iu=/1234/recipes&sz=728x90" alt="" width="728" height="90"></div></div>
<main><article class="recipe"><h1 class="article-heading">{name}</h1>
<div class="mntl-attribution"><img src="https://images.{host}/authors/chef.jpg" alt="Chef profile" width="64" height="64" class="mntl-author-image"> Recipe by Chef Lee</div>
<div class="recipe-rating"><img src="{base}/img/rating-stars.png" alt="Rated 4.7" width="100" height="20"></div>
<figure class="primary-image"><img src="{hero_url}" alt="{alt}" width="1200" height="800" class="primary-image__image"></figure>
<section class="ingredients"><h2>Ingredients</h2><ul><li>2 cups flour</li></ul></section>
<section class="instructions"><h2>Directions</h2><ol>{step_html}</ol></section>
<div class="nutrition"><img src="https://images.{host}/charts/nutrition-pie-chart.png" alt="Nutrition chart showing fat, protein and carbohydrate" width="400" height="400"></div>
</article>
<aside class="sidebar"><div class="trending"><a href="#"><img src="https://images.{host}/recipes/other/thumb-150x150.jpg" alt="Trending recipe" width="150" height="150"></a></div></aside></main>
<footer><img src="{base}/img/footer-logo.svg" alt="Recipes" width="100" height="30"></footer>
{PIXELS}</body></html>"""
    page(f"recipe_{i:02d}", "recipe", f"{base}/recipe/{1000 + i}/{name.lower().replace(' ', '-')}/", html, main)


def write_recipes() -> None:
    recipe(1, "homecook.example", "Lemon Drizzle Cake", ("lemon-cake", "A sliced lemon drizzle cake on a white plate"),
           [("batter", "Pouring yellow cake batter into a lined loaf tin")])
    recipe(2, "weeknightmeals.example", "Chicken Tikka Masala", ("tikka-masala", "Chicken tikka masala in a copper bowl with rice and naan"),
           [("marinade", "Chicken pieces coated in a spiced yogurt marinade"), ("simmer", "The sauce simmering in a large pan")])
    recipe(3, "veggiekitchen.example", "Roasted Vegetable Lasagne", ("lasagne", "A square of vegetable lasagne with melted cheese on top"), [])
    recipe(5, "soupseason.example", "Pumpkin Soup", ("pumpkin-soup", "A bowl of orange pumpkin soup topped with seeds and cream"), [])
    recipe(4, "bakersdozen.example", "Cinnamon Rolls", ("cinnamon-rolls", "Iced cinnamon rolls in a baking dish"),
           [("rolling", "Rolling the dough into a tight spiral")])


def realestate(i: int, host: str, address: str, photos: list[tuple[str, str]]) -> None:
    base = f"https://{host}"
    slides, main = "", []
    for n, (f, alt) in enumerate(photos):
        u = f"https://photos.{host}/listing/88231{i}/{f}-o_a.jpg"
        if n == 0:
            slides += f'<div class="carousel-item active"><img src="{u}" alt="{alt}" class="listing-photo"></div>'
        else:  # carousel slides load on swipe: the URL is in data-lazy
            slides += f'<div class="carousel-item"><img data-lazy="{u}" alt="{alt}" class="listing-photo"></div>'
        main.append((u, alt))
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{address} | Homes</title>
<meta property="og:image" content="{main[0][0]}"></head>
<body><nav class="navbar"><a href="{base}/"><img src="{base}/static/logo-homes.png" alt="Homes" height="32"></a></nav>
<div class="container listing-page" role="main"><h1 class="listing-address">{address}</h1>
<div id="photoCarousel" class="carousel slide">{slides}</div>
<div class="listing-facts"><span><img src="{base}/static/icons/bed.svg" alt="Bedrooms" width="16" height="16"> 3 bd</span><span><img src="{base}/static/icons/bath.svg" alt="Bathrooms" width="16" height="16"> 2 ba</span></div>
<p class="listing-description">Bright family home close to schools and parks, with a large garden.</p>
<div class="listing-map"><img src="https://maps.googleapis.example/maps/api/staticmap?center=40.7,-74.0&zoom=15&size=640x320&markers=40.7,-74.0" alt="Map of {address}" width="640" height="320"></div>
<div class="agent-card"><img src="https://photos.{host}/agents/agent-12.jpg" alt="Listing agent Maria Lopez" width="80" height="80"><p>Maria Lopez, Realtor</p></div>
<div class="similar-homes"><h2>Similar homes</h2><a href="#"><img src="https://photos.{host}/listing/99/1-p_e.jpg" alt="Similar home" width="240" height="160"></a></div>
</div><footer><img src="{base}/static/equal-housing.png" alt="Equal Housing Opportunity" width="40" height="40"></footer>{PIXELS}</body></html>"""
    page(f"realestate_{i:02d}", "realestate", f"{base}/homedetails/{address.lower().replace(' ', '-').replace(',', '')}", html, main)


def write_realestate() -> None:
    realestate(1, "homesearch.example", "12 Maple Avenue, Springfield",
               [("front", "Two storey brick house with a white porch and front lawn"), ("kitchen", "Open kitchen with a marble island and pendant lights")])
    realestate(2, "propertyfinder.example", "4 Harbour View, Portside",
               [("exterior", "Modern house with large windows overlooking the harbour"), ("living", "Living room with a fireplace and wooden floors"),
                ("garden", "Back garden with a stone patio and flower beds")])
    realestate(3, "homesearch.example", "77 Elm Street, Riverton", [("front", "Small blue cottage with a picket fence")])
    realestate(4, "propertyfinder.example", "9 Hill Road, Greenfield",
               [("exterior", "White farmhouse on a hill surrounded by fields"), ("barn", "A red barn next to the farmhouse")])


def travel(i: int, host: str, place: str, hero: tuple[str, str], photos: list[tuple[str, str, str]], hero_label: bool) -> None:
    base = f"https://{host}"
    f, label = hero
    hero_url = f"https://{host}/images/destinations/{f}-hero.jpg"
    aria = f' role="img" aria-label="{label}"' if hero_label else ""
    main = [(hero_url, label)]
    inline = ""
    for pf, alt, cap in photos:
        u = f"https://{host}/images/destinations/{pf}.jpg"
        inline += f'<figure class="inline-photo"><img src="{u}" alt="{alt}" width="900" height="600"><figcaption>{cap}</figcaption></figure><p>It is worth the detour.</p>'
        main.append((u, alt if alt else cap))
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{place} travel guide</title>
<meta property="og:image" content="{hero_url}"></head>
<body><header class="top-bar"><a href="{base}/"><img src="{base}/images/brand/wanderlogo.svg" alt="Wander" width="140" height="36"></a></header>
<main><section class="hero hero--destination" style="background-image: url('{hero_url}'); min-height: 480px;"{aria}>
<div class="hero__text"><h1>{place}</h1><p class="hero__kicker">Our complete guide</p></div></section>
<article class="guide"><p>{place} rewards slow travellers: give it at least three days.</p>{inline}
<div class="booking-widget"><img src="https://www.booking.example/affiliate/banner_300x250.png" alt="Book hotels" width="300" height="250"></div>
<div class="map-embed"><img src="https://api.mapbox.example/styles/v1/mapbox/streets-v11/static/12.5,41.9,10/600x400?access_token=pk" alt="Map of {place}" width="600" height="400"></div>
</article>
<section class="more-guides"><div class="card" style="background-image:url('https://{host}/images/destinations/other-thumb.jpg')"><a href="#">Another guide</a></div></section></main>
<footer><div class="social"><img src="{base}/images/icons/instagram.svg" alt="Instagram" width="24" height="24"></div></footer>{PIXELS}</body></html>"""
    page(f"travel_{i:02d}", "travel", f"{base}/guides/{place.lower().replace(' ', '-')}", html, main)


def write_travel() -> None:
    travel(1, "wanderguide.example", "Lisbon", ("lisbon", "Yellow tram climbing a steep street in Lisbon"),
           [("lisbon-tiles", "Blue and white azulejo tiles on a building facade", "Tiles in Alfama")], True)
    travel(2, "wanderguide.example", "Patagonia", ("patagonia", "Granite peaks of Torres del Paine above a turquoise lake"),
           [("patagonia-hikers", "", "Hikers cross a windswept plain below the towers")], True)
    travel(3, "roamers.example", "Marrakech", ("marrakech", "Spice stalls in the souk of Marrakech"),
           [("jemaa", "Evening crowds and food stalls in Jemaa el-Fnaa square", "Jemaa el-Fnaa")], True)
    travel(4, "roamers.example", "Iceland Ring Road", ("iceland", "A waterfall pouring over black cliffs in Iceland"),
           [("iceland-road", "An empty road crossing lava fields under clouds", "Route 1"),
            ("iceland-horses", "Icelandic horses grazing in a green meadow", "Local residents")], True)


def museum(i: int, host: str, work: str, artist: str, views: list[tuple[str, str]]) -> None:
    base = f"https://{host}"
    main, imgs = [], ""
    for f, alt in views:
        u = f"https://collections.{host}/iiif/{f}/full/1200,/0/default.jpg"
        imgs += (f'<div class="artwork__image"><img src="https://collections.{host}/iiif/{f}/full/600,/0/default.jpg" '
                 f'srcset="https://collections.{host}/iiif/{f}/full/600,/0/default.jpg 600w, {u} 1200w" alt="{alt}"></div>')
        main.append((u, alt))
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{work} — {artist} | Museum</title>
<meta property="og:image" content="{main[0][0]}"></head>
<body><header><a href="{base}/"><img src="{base}/assets/museum-wordmark.svg" alt="City Museum of Art" width="200" height="50"></a></header>
<main id="content"><div class="artwork">{imgs}
<div class="artwork__tombstone"><h1>{work}</h1><p>{artist}</p><p>Oil on canvas. Gift of a private collector.</p>
<img src="{base}/assets/icons/public-domain.svg" alt="Public domain" width="88" height="31"></div></div>
<section class="related-works"><h2>Related works</h2><a href="#"><img src="https://collections.{host}/iiif/related-1/full/200,/0/default.jpg" alt="Related work" width="200" height="150"></a></section>
</main><footer><img src="{base}/assets/sponsor-logos.png" alt="Our sponsors" width="400" height="60"></footer></body></html>"""
    page(f"museum_{i:02d}", "museum", f"{base}/collection/{work.lower().replace(' ', '-')}", html, main)


def write_museums() -> None:
    museum(1, "citymuseum.example", "Harbour at Dusk", "Anna Berg", [("harbour-dusk", "Painting of fishing boats in a harbour at dusk")])
    museum(2, "citymuseum.example", "Bronze Horse", "Unknown artist",
           [("bronze-horse", "A bronze statue of a rearing horse"), ("bronze-horse-detail", "Close view of the horse head showing green patina")])
    museum(3, "artgallery.example", "Woman Reading", "Pieter de Witt", [("woman-reading", "Painting of a woman reading a letter by a window")])
    museum(5, "citymuseum.example", "Mountain Lake", "Erik Holm", [("mountain-lake", "Painting of a still mountain lake reflecting pine trees")])
    museum(4, "artgallery.example", "Blue Vase", "Ming dynasty workshop", [("blue-vase", "A blue and white porcelain vase decorated with dragons")])


def amp(i: int, host: str, headline: str, photos: list[tuple[str, str, str]]) -> None:
    base = f"https://{host}"
    body, main = "", []
    for f, alt, cap in photos:
        u = f"https://static.{host}/amp/{f}.jpg"
        body += (f'<figure><amp-img src="{u}" width="1200" height="800" layout="responsive" alt="{alt}" '
                 f'srcset="https://static.{host}/amp/{f}-600.jpg 600w, {u} 1200w"><noscript><img src="{u}" alt="{alt}"></noscript></amp-img>'
                 f'<figcaption>{cap}</figcaption></figure><p>More details will follow.</p>')
        main.append((u, alt if alt else cap))
    html = f"""<!doctype html><html ⚡ lang="en"><head><meta charset="utf-8"><title>{headline}</title>
<link rel="canonical" href="{base}/news/{i}"><meta name="viewport" content="width=device-width">
<script async src="https://cdn.ampproject.org/v0.js"></script><style amp-boilerplate>body{{visibility:hidden}}</style></head>
<body><header class="amp-header"><amp-img src="{base}/logo-amp.png" width="150" height="40" alt="News Site" class="logo"></amp-img></header>
<main><article><h1>{headline}</h1>{body}
<amp-ad width="300" height="250" type="doubleclick" data-slot="/1234/amp"><amp-img placeholder src="{base}/ad-placeholder.png" width="300" height="250" alt="ad"></amp-img></amp-ad>
<amp-social-share type="twitter" width="32" height="32"></amp-social-share></article></main>
<amp-pixel src="https://pixel.example/amp?rand=RANDOM" layout="nodisplay"></amp-pixel>
<amp-analytics type="googleanalytics"></amp-analytics></body></html>"""
    page(f"amp_{i:02d}", "amp", f"{base}/amp/news/{i}", html, main)


def write_amp() -> None:
    amp(1, "ampnews.example", "Solar farm opens on former mine", [("solar-farm", "Rows of solar panels on a former mine site", "The site produced coal until 1990.")])
    amp(2, "ampnews.example", "Penguins return to the bay",
        [("penguins", "", "Little penguins waddle ashore at dusk"), ("ranger", "A ranger counts penguins on the beach", "Counting begins in May.")])
    amp(3, "quickreads.example", "Vintage train runs again", [("steam-train", "A steam locomotive crossing a stone viaduct", "First run in thirty years.")])
    amp(4, "quickreads.example", "Tulip fields in bloom", [("tulips", "Striped fields of red and yellow tulips", "Peak bloom is expected this week.")])


def spa(i: int, host: str, title: str, image: str, alt_kind: str, alt: str) -> None:
    base = f"https://{host}"
    u = f"https://media.{host}/og/{image}.jpg"
    metas = f'<meta property="og:image" content="{u}"><meta property="og:image:width" content="1200"><meta property="og:image:height" content="630">'
    ld = ""
    if alt_kind == "og":
        metas += f'<meta property="og:image:alt" content="{alt}">'
    elif alt_kind == "twitter":
        metas += f'<meta name="twitter:image" content="{u}"><meta name="twitter:image:alt" content="{alt}">'
    else:
        ld = (f'<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle","headline":"{title}",'
              f'"image":{{"@type":"ImageObject","url":"{u}","caption":"{alt}","width":1200,"height":630}}}}</script>')
        metas = ""
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta property="og:title" content="{title}"><meta property="og:description" content="Read the full story on our app.">{metas}{ld}
<link rel="icon" href="/favicon.ico"><script src="/static/js/main.4f8a2c.js" defer></script></head>
<body><noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div>
<img src="https://bat.bing.example/action/0?ti=123&Ver=2" height="0" width="0" style="display:none; visibility: hidden;" alt=""></body></html>"""
    page(f"spa_{i:02d}", "javascript", f"{base}/stories/{i}", html, [(u, alt)])


def write_spa() -> None:
    spa(1, "storyapp.example", "Glacier retreats further", "glacier", "og", "A blue glacier meeting the sea below snowy mountains")
    spa(2, "storyapp.example", "City opens rooftop farm", "rooftop-farm", "twitter", "Vegetable beds on a rooftop among office towers")
    spa(3, "readnow.example", "Rare orchid found", "orchid", "jsonld", "A pale pink orchid growing on a mossy trunk")
    spa(5, "feedly-like.example", "Desert bloom after rare rain", "desert-bloom", "twitter", "Yellow wildflowers carpeting a desert valley")
    spa(4, "readnow.example", "Volcano lights up night sky", "volcano", "og", "Lava fountains from a volcano glowing against the night sky")


def intl(i: int, lang: str, kind: str, host: str, title: str, photos: list[tuple[str, str, str]], lazy: bool) -> None:
    base = f"https://{host}"
    rtl = ' dir="rtl"' if lang == "ar" else ""
    body, main = "", []
    for f, alt, cap in photos:
        u = f"https://img.{host}/2024/03/{f}.jpg"
        if lazy:
            img = f'<img class="lazy" src="https://img.{host}/static/grey.gif" data-original="{u}" alt="{alt}" width="900" height="600">'
        else:
            img = f'<img src="{u}" alt="{alt}" width="900" height="600">'
        body += f'<div class="article-img">{img}<p class="img-desc">{cap}</p></div><p>{title}。</p>' if lang in ("zh", "ja") else \
            f'<figure>{img}<figcaption>{cap}</figcaption></figure><p>{title}.</p>'
        main.append((u, alt if alt else cap))
    html = f"""<!DOCTYPE html><html lang="{lang}"{rtl}><head><meta charset="utf-8"><title>{title}</title>
<meta property="og:image" content="{main[0][0]}"></head>
<body><div class="header"><a href="{base}/"><img src="https://img.{host}/static/logo.png" alt="logo" width="160" height="50"></a>
<div class="top-ad"><a href="https://ad.{host}/click?id=77"><img src="https://ad.{host}/banner/960x90.jpg" width="960" height="90" alt=""></a></div></div>
<div class="main-content" id="article"><h1>{title}</h1>
<div class="author"><img src="https://img.{host}/avatar/editor.jpg" width="40" height="40" alt="editor"></div>
{body}
<div class="qrcode"><img src="https://img.{host}/static/qrcode_wechat.png" width="120" height="120" alt="QR"></div>
<div class="hot-news"><ul><li><img src="https://img.{host}/2024/03/hot1_120x80.jpg" width="120" height="80" alt="{title}"></li></ul></div>
</div><div class="footer"><img src="https://img.{host}/static/icp-badge.png" width="20" height="20" alt="">{PIXELS}</div></body></html>"""
    page(f"{kind}_{i:02d}", kind, f"{base}/news/2024/03/{i}.html", html, main)


def write_intl() -> None:
    intl(1, "zh", "chinese", "xinwen.example", "西湖春色吸引游客", [("xihu", "春天的西湖边柳树发芽游客泛舟湖上", "西湖春色")], True)
    intl(2, "zh", "chinese", "keji.example", "新型电动公交车上路", [("bus", "", "一辆绿色的电动公交车停在城市车站旁边"), ("charging", "电动公交车在充电站充电", "充电站")], False)
    intl(3, "zh", "chinese", "lvyou.example", "张家界云海美景", [("zhangjiajie", "张家界的石峰在云海中若隐若现", "云海")], True)
    intl(4, "ja", "japanese", "nyusu.example", "桜の開花が始まる", [("sakura", "満開の桜の下を歩く人々", "上野公園の桜")], False)
    intl(5, "ja", "japanese", "tabi.example", "富士山の絶景スポット", [("fuji", "湖に映る雪をかぶった富士山", "河口湖からの眺め"), ("torii", "", "湖の中に立つ赤い鳥居と山の景色")], True)
    intl(6, "ar", "arabic", "akhbar.example", "افتتاح حديقة جديدة في المدينة", [("park", "أطفال يلعبون في حديقة خضراء واسعة", "الحديقة الجديدة")], False)
    intl(7, "ar", "arabic", "safar.example", "رحلة إلى وادي رم", [("wadirum", "كثبان رملية حمراء وجبال صخرية في وادي رم", "وادي رم"), ("camels", "قافلة جمال تسير في الصحراء عند الغروب", "الجمال")], True)
    intl(8, "ru", "russian", "novosti.example", "Первый снег в Москве", [("sneg", "Заснеженная улица Москвы с фонарями", "Первый снег")], False)
    intl(9, "ru", "russian", "puteshestvie.example", "Байкал зимой", [("baikal", "Прозрачный голубой лёд на озере Байкал", "Лёд Байкала"), ("baikal-car", "", "Автомобиль едет по замёрзшему озеру под ясным небом")], True)


def main() -> None:
    for f in (HERE / "pages").glob("*.html") if (HERE / "pages").exists() else []:
        f.unlink()
    write_news(); write_encyclopedia(); write_blogs(); write_forums(); write_shops(); write_recipes()  # noqa: E702
    write_realestate(); write_travel(); write_museums(); write_amp(); write_spa(); write_intl()  # noqa: E702
    truth = {"version": 1, "pages": PAGES}
    (HERE / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    kinds = sorted({p["kind"] for p in PAGES})
    print(f"{len(PAGES)} pages, {len(kinds)} kinds: {', '.join(kinds)}; {sum(len(p['main']) for p in PAGES)} main images")


if __name__ == "__main__":
    main()
