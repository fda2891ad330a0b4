"""Image filters on generated images (size, aspect, unnatural graphics, phash) and the dedup step."""

from __future__ import annotations

import io
import random

import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.crawl import CrawlConfig, Deduper, image_step
from laitkit.pipeline.crawl.dedup import PhashIndex
from laitkit.pipeline.crawl.download import reason_for
from laitkit.pipeline.crawl.image_filters import (
    aspect_reason,
    decode_image,
    phash_hex,
    size_reason,
    unnatural_parts,
)


def photo(seed: int, w: int = 480, h: int = 360) -> Image.Image:
    """Photo-like: a smooth random low-frequency field, soft blobs, sensor noise."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.integers(30, 226, (8, 8, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    a = np.asarray(low, dtype=np.float64) + rng.normal(0, 7, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))


def chart(w: int = 560, h: int = 420) -> Image.Image:
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((20, 8), "Quarterly results", font=ImageFont.load_default(size=18), fill=(0, 0, 0))
    for i, v in enumerate((120, 260, 180, 300)):
        d.rectangle((70 + i * 110, h - 40 - v, 140 + i * 110, h - 40), fill=[(31, 119, 180), (255, 127, 14),
                    (44, 160, 44), (214, 39, 40)][i])  # fmt: skip
    d.line((60, h - 40, w - 20, h - 40), fill=(0, 0, 0), width=2)
    d.line((60, 30, 60, h - 40), fill=(0, 0, 0), width=2)
    return img


def logo(w: int = 420, h: int = 420) -> Image.Image:
    img = Image.new("RGB", (w, h), (250, 250, 250))
    d = ImageDraw.Draw(img)
    d.ellipse((40, 40, w - 40, h - 40), fill=(205, 35, 35))
    d.text((w // 3, h // 2 - 20), "ACME", font=ImageFont.load_default(size=48), fill=(255, 255, 255))
    return img


def text_image(w: int = 600, h: int = 400) -> Image.Image:
    img = Image.new("RGB", (w, h), (252, 252, 246))
    d = ImageDraw.Draw(img)
    for i in range(10):
        d.text((20, 16 + i * 36), "Shipping and returns: read carefully", font=ImageFont.load_default(size=24),
               fill=(25, 25, 25))  # fmt: skip
    return img


def jpeg(img: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def roundtrip(img: Image.Image, quality: int = 95) -> Image.Image:
    return decode_image(jpeg(img, quality))


def test_unnatural_score_separates_photos_from_graphics():
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        real = Image.open(fh).convert("RGB")
    natural = [real, *(photo(s) for s in range(3))]
    graphics = [chart(), logo(), text_image()]
    nat = [unnatural_parts(roundtrip(i)).score for i in natural]
    gra = [unnatural_parts(roundtrip(i)).score for i in graphics]
    assert max(nat) < 0.45, nat
    assert min(gra) > 0.7, gra
    parts = unnatural_parts(roundtrip(chart()))
    assert parts.flat > 0.7 and parts.dominant > 0.8 and 0 <= parts.score <= 1
    assert "flat" in str(parts)


def test_size_and_aspect_reasons():
    assert size_reason(300, 300) == "" and size_reason(640, 480) == ""
    assert "299" in size_reason(299, 1000) and size_reason(1000, 299)
    assert size_reason(200, 250, min_side=150) == ""
    assert aspect_reason(900, 300) == "" and aspect_reason(300, 900) == ""
    assert "3.01" in aspect_reason(903, 300) and aspect_reason(300, 1000)
    assert aspect_reason(1000, 300, max_ratio=4) == ""
    assert aspect_reason(0, 10)


def test_phash_is_hex_and_robust_to_resize_and_recompression():
    a = photo(1, 600, 450)
    h = phash_hex(roundtrip(a))
    assert len(h) == 16 and int(h, 16) >= 0
    near = roundtrip(a.resize((450, 338), Image.Resampling.LANCZOS), quality=60)
    other = roundtrip(photo(2, 600, 450))
    assert (int(h, 16) ^ int(phash_hex(near), 16)).bit_count() <= 4
    assert (int(h, 16) ^ int(phash_hex(other), 16)).bit_count() > 10


def _downloaded(key: str, img: Image.Image, orig: tuple[int, int] | None = None) -> Sample:
    s = Sample(key=key, url=f"http://h.org/{key}.jpg", page_url="http://h.org/p", caption="a red kite")
    s.image = jpeg(img)
    s.width, s.height = img.size
    s.orig_width, s.orig_height = orig or img.size
    s.accept("download")
    return s


def test_image_step_verdicts_in_order():
    cfg = CrawlConfig()
    ok = _downloaded("ok", photo(3))
    small = _downloaded("small", photo(4, 280, 200))
    wide = _downloaded("wide", photo(5, 640, 200), orig=(1920, 600))  # stored image resized, original is wide
    small_and_wide = _downloaded("both", photo(6, 280, 80))
    graphic = _downloaded("graphic", chart())
    broken = _downloaded("broken", photo(7))
    broken.image = broken.image[: len(broken.image) // 2]
    rejected = _downloaded("rej", photo(8))
    rejected.reject("lang", Reason.NOT_ENGLISH)
    image_step([ok, small, wide, small_and_wide, graphic, broken, rejected], cfg)
    assert ok.kept and ok.unnatural_score < 0.45 and len(ok.phash) == 16
    assert small.status == Reason.TOO_SMALL and small.phash  # scores are kept on rejected samples too
    assert wide.status == Reason.BAD_ASPECT and "3.20:1" in wide.verdicts[-1].detail
    assert small_and_wide.status == Reason.TOO_SMALL  # the first failing check decides
    assert graphic.status == Reason.UNNATURAL and graphic.unnatural_score > 0.7
    assert broken.status == Reason.DECODE_ERROR
    assert rejected.phash == "" and len(rejected.verdicts) == 2  # not looked at
    # thresholds are configuration
    lenient = _downloaded("lenient", chart())
    image_step([lenient], CrawlConfig(max_unnatural_score=1.0, min_image_side=100))
    assert lenient.kept


def test_img2dataset_error_table():
    assert reason_for("success", "") == Reason.KEEP
    assert reason_for("failed_to_download", "Use of image disallowed by X-Robots-Tag directive") == Reason.ROBOTS_NOAI
    assert reason_for("failed_to_download", "HTTP Error 404: Not Found") == Reason.DOWNLOAD_ERROR
    assert reason_for("failed_to_download", "<urlopen error timed out>") == Reason.DOWNLOAD_ERROR
    assert reason_for("failed_to_resize", "Image decoding error") == Reason.DECODE_ERROR
    assert reason_for("failed_to_resize", "image area too large") == Reason.DECODE_ERROR
    assert reason_for("missing", "no row") == Reason.DOWNLOAD_ERROR


# --- dedup ------------------------------------------------------------------------------------------


def kept(key: str, page: str, url: str, *, sha: str = "", phash: str = "", caption: str = "") -> Sample:
    s = Sample(key=key, url=url, page_url=page, sha256=sha, phash=phash, caption=caption or f"caption {key}")
    s.accept("image")
    return s


def run_dedup(samples: list[Sample], **kw) -> dict[str, str]:
    d = Deduper(**kw)
    d.count(samples)
    d.apply(samples)
    return {s.key: s.status for s in samples}


def test_dup_url_sha_phash_keep_the_earliest_page_whatever_the_input_order():
    base = 0x0F0F_F0F0_1234_5678
    samples = [
        kept("b_url", "http://h/p2", "http://h/a.jpg", sha="s1", phash=f"{base:016x}"),
        kept("a_first", "http://h/p1", "http://h/a.jpg", sha="s1", phash=f"{base:016x}"),
        kept("c_sha", "http://h/p3", "http://h/copy.jpg", sha="s1", phash=f"{base:016x}"),
        kept("d_near", "http://h/p4", "http://h/near.jpg", sha="s2", phash=f"{base ^ 0b1011:016x}"),  # distance 3
        kept("e_far", "http://h/p5", "http://h/far.jpg", sha="s3", phash=f"{base ^ 0b11111:016x}"),  # distance 5
    ]
    expected = {"a_first": "keep", "b_url": "dup_url", "c_sha": "dup_sha256", "d_near": "dup_phash", "e_far": "keep"}
    for _ in range(3):
        fresh = [kept(s.key, s.page_url, s.url, sha=s.sha256, phash=s.phash, caption=s.caption) for s in samples]
        random.Random(_).shuffle(fresh)
        assert run_dedup(fresh) == expected
    by_key = {s.key: s for s in fresh}
    assert "a_first" in by_key["b_url"].verdicts[-1].detail
    assert "distance 3" in by_key["d_near"].verdicts[-1].detail
    assert run_dedup([kept(s.key, s.page_url, s.url, sha=s.sha256, phash=s.phash) for s in samples],
                     phash_max_distance=5)["e_far"] == "dup_phash"  # fmt: skip


def test_rejected_samples_are_neither_checked_nor_remembered():
    first = kept("a", "http://h/p1", "http://h/a.jpg", sha="s1")
    first.reject("caption", Reason.USELESS_CAPTION)
    second = kept("b", "http://h/p2", "http://h/a.jpg", sha="s1")
    statuses = run_dedup([first, second])
    assert statuses == {"a": "useless_caption", "b": "keep"}
    assert len(first.verdicts) == 2  # no dedup verdict appended


def test_dup_caption_counts_distinct_images_and_rejects_all_carriers():
    stock = "Click on the image to see it in full size"
    six = [kept(f"s{i}", f"http://h/p{i}", f"http://h/{i}.jpg", sha=f"h{i}", caption=stock) for i in range(6)]
    statuses = run_dedup(six)
    assert set(statuses.values()) == {"dup_caption"}
    # five distinct images (one of them listed twice under two URLs with the same bytes) are fine
    five = [kept(f"f{i}", f"http://h/p{i}", f"http://h/{i}.jpg", sha=f"h{i}", caption=stock) for i in range(5)]
    five.append(kept("f5", "http://h/p9", "http://h/copy.jpg", sha="h0", caption=stock.upper()))
    statuses = run_dedup(five)
    assert statuses["f5"] == "dup_sha256" and list(statuses.values()).count("keep") == 5
    # rejected carriers count too: the caption is boilerplate wherever it appears
    mixed = [kept(f"m{i}", f"http://h/p{i}", f"http://h/{i}.jpg", sha=f"h{i}", caption=stock) for i in range(6)]
    for s in mixed[:3]:
        s.reject("image", Reason.TOO_SMALL)
    assert set(run_dedup(mixed, max_images_per_caption=5).values()) == {"too_small", "dup_caption"}


def test_count_and_apply_in_batches():
    stock = "Product photo from our online catalogue"
    d = Deduper(max_images_per_caption=2)
    batch1 = [kept("a", "http://h/p1", "http://h/1.jpg", caption=stock), kept("x", "http://h/p1", "http://h/x.jpg")]
    batch2 = [kept("b", "http://h/p2", "http://h/2.jpg", caption=stock), kept("c", "http://h/p3", "http://h/3.jpg",
              caption=stock), kept("y", "http://h/p4", "http://h/x.jpg")]  # fmt: skip
    d.count(batch1)
    d.count(batch2)
    d.apply(batch1)
    d.apply(batch2)
    assert [s.status for s in batch1 + batch2] == ["dup_caption", "keep", "dup_caption", "dup_caption", "dup_url"]


def test_phash_index_agrees_with_brute_force():
    rng = random.Random(0)
    stored = [rng.getrandbits(64) for _ in range(300)]
    index = PhashIndex(4)
    for i, h in enumerate(stored):
        index.add(h, str(i))
    for _ in range(300):
        base = rng.choice(stored)
        flips = rng.sample(range(64), rng.randint(0, 8))
        q = base
        for b in flips:
            q ^= 1 << b
        brute = min((q ^ h).bit_count() for h in stored)
        hit = index.find(q)
        assert (hit is not None) == (brute <= 4)
        if hit is not None:
            assert hit[1] <= 4
    with pytest.raises(ValueError):
        PhashIndex(64)


def test_worker_measurements_agree_with_the_parent_analysis_and_feed_image_step() -> None:
    """What img2dataset's workers store (measure_writer) is what `analyse` would say: same
    verdict, scores within decoder rounding, pHash within a bit or two; a sample measured in a
    worker is not decoded again, and undecodable bytes give the decode error either way."""
    from laitkit.pipeline.crawl import measure_writer
    from laitkit.pipeline.crawl.image_filters import analyse

    for img in (photo(3), chart()):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=92)
        got = measure_writer.measured_from_row(measure_writer.measure(buf.getvalue()))
        want = analyse(buf.getvalue())
        assert got is not None and got[0] == "" and abs(got[1] - want[1]) < 0.02
        assert (got[1] >= 0.6) == (want[1] >= 0.6)
        assert (int(got[4], 16) ^ int(want[4], 16)).bit_count() <= 2
    assert measure_writer.measured_from_row(measure_writer.measure(None)) is None  # a failed download
    broken = measure_writer.measured_from_row(measure_writer.measure(b"\xff\xd8 not a jpeg"))
    assert broken is not None and broken[0].startswith("stored image does not decode")
    s = Sample(key="k", url="http://h/a.jpg", page_url="", image=b"never decoded", orig_width=640, orig_height=480)
    s.accept("download")
    image_step([s], CrawlConfig(), {"k": ("", 0.2, "unnatural 0.20 (worker)", float("nan"), "00ff00ff00ff00ff")})
    assert s.kept and s.phash == "00ff00ff00ff00ff" and s.verdicts[-1].detail == "unnatural 0.20 (worker)"


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_half_size_decode_keeps_the_verdicts_of_a_full_decode() -> None:
    """Stored JPEGs over ANALYSIS_MAX_SIDE are measured on a half-size (DCT-scaled) decode: the
    unnatural score stays within 0.03 of the full decode's, on the same side of the threshold,
    and the pHash within a few bits; smaller images and non-JPEG bytes are decoded fully."""
    from laitkit.pipeline.crawl.image_filters import ANALYSIS_MAX_SIDE, decode_array, decode_for_measuring

    for img in (photo(5, 800, 600), photo(6, 1280, 640), chart(800, 600), logo(700, 700)):
        data = _jpeg(img)
        half, full = decode_for_measuring(data), decode_array(data)
        assert half.shape[:2] == ((full.shape[0] + 1) // 2, (full.shape[1] + 1) // 2)
        a, b = unnatural_parts(half).score, unnatural_parts(full).score
        assert abs(a - b) < 0.03 and (a >= 0.6) == (b >= 0.6), (img.size, a, b)
        assert (int(phash_hex(half), 16) ^ int(phash_hex(full), 16)).bit_count() <= 4
    small = _jpeg(photo(7, ANALYSIS_MAX_SIDE, ANALYSIS_MAX_SIDE * 3 // 4))
    assert decode_for_measuring(small).shape == decode_array(small).shape
    png = io.BytesIO()
    chart(800, 600).save(png, "PNG")
    assert decode_for_measuring(png.getvalue()).shape[:2] == (600, 800)
    with pytest.raises(ValueError):
        decode_for_measuring(b"\xff\xd8\xff truncated")


def _resize_with_tap(data: bytes):
    """img2dataset's own resizer (as download.py configures it) on `data`, with the tap installed."""
    from img2dataset.resizer import Resizer

    from laitkit.pipeline.crawl import encode_tap
    from laitkit.pipeline.crawl.image_normalise import NormalisingResizer

    encode_tap.install()
    encode_tap.install()  # idempotent: one tap, not a tap of a tap
    resizer = NormalisingResizer(Resizer(640, "keep_ratio", True, encode_quality=95, encode_format="jpg"))
    return resizer(io.BytesIO(data))


def test_the_encode_tap_hands_over_exactly_the_pixels_the_stored_image_encodes() -> None:
    """encode_tap: after img2dataset's resizer ran, `take(stored bytes)` is the array it encoded
    (encoding it again gives the stored bytes), for exactly those bytes and only once."""
    import cv2

    from laitkit.pipeline.crawl import encode_tap

    for img in (photo(11, 1280, 960), chart(800, 600), photo(12, 400, 300).convert("L")):
        img_str, width, height, *_rest, err = _resize_with_tap(_jpeg(img))
        assert err is None
        pixels = encode_tap.take(img_str)
        assert pixels is not None and pixels.shape[:2] == (height, width) and pixels.dtype == np.uint8
        assert cv2.imencode(".jpg", pixels, [int(cv2.IMWRITE_JPEG_QUALITY), 95])[1].tobytes() == img_str
        assert encode_tap.take(img_str) is None  # forgotten once taken
    img_str = _resize_with_tap(_jpeg(photo(13)))[0]
    assert encode_tap.take(img_str[:-1] + b"\x00") is None  # other bytes: never someone else's pixels
    assert encode_tap.take(None) is None


def test_measuring_the_encoded_pixels_keeps_every_verdict_of_measuring_the_stored_jpeg() -> None:
    """The workers measure the array the stored JPEG encodes instead of decoding the JPEG: photos'
    unnatural score moves by JPEG rounding only (< 0.02), graphics' only rises (their flat fills are
    exactly flat before the encoder's ringing), each stays on its side of the threshold, and a
    photo's pHash stays within 2 bits. Arrays the measurements cannot take fall back to decoding."""
    from laitkit.pipeline.crawl import encode_tap, measure_writer

    threshold = CrawlConfig().max_unnatural_score
    cases = [(photo(21, 800, 600), "photo"), (photo(22, 1600, 1200), "photo"), (photo(23, 480, 360), "photo"),
             (chart(800, 600), "graphic"), (logo(700, 700), "graphic"), (text_image(), "graphic")]  # fmt: skip
    for img, kind in cases:
        img_str = _resize_with_tap(_jpeg(img))[0]
        pixels = encode_tap.take(img_str)
        on_pixels, on_bytes = measure_writer.measure(img_str, pixels), measure_writer.measure(img_str)
        assert (on_pixels["laitkit_measured_on"], on_bytes["laitkit_measured_on"]) == ("encoded_pixels", "stored_bytes")
        a, b = (measure_writer.measured_from_row(m) for m in (on_pixels, on_bytes))
        assert a is not None and b is not None and a[0] == b[0] == ""
        if kind == "photo":
            assert abs(a[1] - b[1]) < 0.02 and a[1] < threshold, (img.size, a[1], b[1])
            assert (int(a[4], 16) ^ int(b[4], 16)).bit_count() <= 2
        else:  # no pHash bound: a graphic is rejected UNNATURAL before dedup ever compares its hash
            assert a[1] >= b[1] - 0.005 and b[1] >= threshold, (img.size, a[1], b[1])
    data = _jpeg(photo(24))
    for odd in (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.uint16), np.zeros((0, 4, 3), np.uint8)):
        assert measure_writer.measure(data, odd) == measure_writer.measure(data)  # decoded again instead


class _RecordingWriter:
    """A sample writer that keeps what it is given (the shape img2dataset's writers have)."""

    def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format) -> None:
        self.schema, self.rows, self.closed = schema, [], False

    def write(self, img_str, key, caption, meta) -> None:
        self.rows.append((key, img_str, meta))

    def close(self) -> None:
        self.closed = True


def test_measuring_writer_hands_rows_on_in_order_with_their_measurements() -> None:
    """Measurements run in writer threads, yet every row reaches the inner writer in write order,
    with exactly `measure`'s numbers for its own image, failed downloads (None) included."""
    import pyarrow as pa

    from laitkit.pipeline.crawl import measure_writer

    images = [_jpeg(photo(i, 640 + 8 * i, 480)) if i % 3 else _jpeg(chart(600 + 8 * i, 420)) for i in range(12)]
    images[4] = None
    w = measure_writer.MeasuringWriter(_RecordingWriter, 0, "", False, 0, pa.schema([("key", pa.string())]), "jpg")
    w.MAX_PENDING = 3  # exercise the blocking path too
    for i, img in enumerate(images * 6):
        w.write(img, f"{i:03d}", None, {"n": i})
    w.close()
    inner = w.inner
    assert inner.closed and [k for k, _, _ in inner.rows] == [f"{i:03d}" for i in range(len(images) * 6)]
    assert all(name in inner.schema.names for name in measure_writer.NAMES)
    for key, img, meta in inner.rows:
        assert meta["n"] == int(key) and img is images[int(key) % len(images)]
        assert {k: meta[k] for k in measure_writer.NAMES} == measure_writer.measure(img)


def test_shard_reader_reads_a_shard_only_once_it_is_finished(tmp_path) -> None:
    """The reader that runs during the download takes a shard only once img2dataset wrote its
    stats file (its parquet is closed by then); the final pass takes everything, so a shard that
    never finished still gives its rows, and a URL with no row is reported "missing"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from laitkit.pipeline.crawl.download import ID_COL, ShardReader

    def shard(name: str, ids: list[int]) -> None:
        pq.write_table(pa.table({ID_COL: [str(i) for i in ids], "status": ["success"] * len(ids),
                                 "error_message": [None] * len(ids), "width": [640] * len(ids),
                                 "height": [480] * len(ids), "original_width": [800] * len(ids),
                                 "original_height": [600] * len(ids), "sha256": [f"h{i}" for i in ids],
                                 "jpg": [b"x"] * len(ids)}), tmp_path / f"{name}.parquet")  # fmt: skip

    shard("00000", [0, 1])
    (tmp_path / "00000_stats.json").write_text("{}")
    shard("00001", [2])  # still being written: no stats yet
    reader = ShardReader(tmp_path)
    reader.read_new()
    assert sorted(reader.rows) == ["0", "1"]
    reader.read_new(finished_only=False)
    got = reader.by_url(["a", "b", "c", "d"])
    assert [got[u].sha256 for u in "abc"] == ["h0", "h1", "h2"] and got["c"].ok
    assert got["d"].status == "missing" and not got["d"].ok
    with reader.in_background():  # the background loop ends, and raises nothing, on a quiet folder
        pass
