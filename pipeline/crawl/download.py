"""Download and resize candidate images with img2dataset 1.47, then read its output back.

Why img2dataset and not a fetch loop of our own: it already handles threads, per-request
timeouts, retries, the image's X-Robots-Tag opt-outs, OpenCV decoding and resizing, hashing of
the original bytes, and records every failure as a row with `status` and `error_message`. We
give it a parquet URL list (one row per *distinct* URL: a logo on 100 pages is fetched once) and
read its per-shard parquet back, failures included, into our samples.

Settings (`img2dataset_kwargs`), and why:
- output_format="parquet": one file per shard holding successes *and* failures, bytes inline —
  one reader, no tar + sidecar to join;
- image_size=640, resize_mode="keep_ratio", resize_only_if_bigger=True, encode_format="jpg":
  shorter side down to 640 px, never upscaled; the original size is still reported;
- min_image_size=0, max_aspect_ratio=inf: img2dataset must not drop small or thin images, our
  filters record those verdicts (TOO_SMALL, BAD_ASPECT) instead;
- max_image_area=max_image_pixels, *and* OPENCV_IO_MAX_IMAGE_PIXELS in the workers'
  environment: img2dataset checks the area only after cv2 has decoded the whole image, so a
  20000x20000 PNG bomb would first allocate 400 MB; OpenCV's own cap refuses it from the header;
- compute_hash="sha256": img2dataset hashes the downloaded (original) bytes, before resizing;
- disallowed_header_directives, user_agent_token: the image response's X-Robots-Tag opt-outs,
  the same set the page-level check uses;
- extract_exif=False (not stored), enable_wandb=False, distributor="multiprocessing",
  incremental_mode="incremental" (1.47's "overwrite" deletes its own _tmp dir and then fails);
- the output folder is named by a hash of the URL list and settings, so a rerun with the same
  candidates resumes (completed shards are skipped) and a different list never reuses stale rows.

Address guard, robots.txt, deadline, byte cap (see netguard.py, robots_txt.py): before
img2dataset runs, each distinct host is resolved and checked (`blocked_address` verdicts, no
request made) and its robots.txt is asked once (`robots_txt` verdicts). Inside img2dataset the
same guard applies to every connection, redirect hops included: `img2dataset.main.Downloader` is
replaced for the call by `GuardedDownloader`, which the spawned workers unpickle and which
installs the guarded opener as urllib's global opener in each worker before its shard is
fetched. So a redirect from a public host to 169.254.169.254 fails in the worker before any
connection (its error starts with "blocked_address"), and `timeout` is a *total* deadline per
image with a byte cap (`max_download_bytes`), not img2dataset's per-read timeout.

Image measurements (unnatural heuristic, phash) are taken in the same workers: `GuardedDownloader`
wraps img2dataset's sample writer with `measure_writer.MeasuringWriter`, which adds them as
columns of the shard parquet; the parent reads them back instead of decoding every image again.
The writer measures the array img2dataset's resizer has just encoded (encode_tap.py), so the
stored image is not decoded a second time in the worker either.

On 127.0.0.1: img2dataset fetches with urllib and a Firefox user agent (plus our token), honours
`http_proxy`/`no_proxy` from the environment, and times out per request after `timeout` seconds.
Its multiprocessing distributor *spawns* workers: each imports img2dataset, whose writer module
imports webdataset, which imports torch (plus wandb, ray, albumentations: ~7 s on a quiet
machine), so one call costs ~10-15 s of fixed overhead — batch all URLs of a shard into one
call. That import chain is img2dataset's own (img2dataset alone pays it too); nothing of ours
adds to it (laitkit.pipeline.crawl.download imports in ~0.3 s).
Spawning also re-imports the caller's `__main__`: scripts must guard with `if __name__ == "__main__"`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from laitkit.atomic import atomic_write_parquet
from laitkit.datasets.schema import Reason, Sample
from laitkit.pipeline.crawl import encode_tap, measure_writer, netguard
from laitkit.pipeline.crawl.image_normalise import NormalisingResizer
from laitkit.pipeline.crawl.phases import Phases, img2dataset_phases, span
from laitkit.pipeline.crawl.robots_txt import RobotsCache

log = logging.getLogger(__name__)
STAGE = "download"
ALLOWED_SCHEMES = ("http", "https")
ID_COL = "laitkit_id"  # img2dataset reserves "key"; our row id travels as an additional column

#: img2dataset (status, substring of error_message) -> our reason; first match wins, "" matches all.
ERROR_REASONS: tuple[tuple[str, str, Reason], ...] = (
    ("failed_to_download", netguard.BLOCKED_PREFIX, Reason.BLOCKED_ADDRESS),  # a redirect hop was refused
    ("failed_to_download", "X-Robots-Tag", Reason.ROBOTS_NOAI),
    ("failed_to_download", "", Reason.DOWNLOAD_ERROR),  # HTTP errors, timeouts, refused, redirect loops
    ("failed_to_resize", "", Reason.DECODE_ERROR),  # undecodable/truncated bytes, pixel caps (bombs)
    ("", "", Reason.DOWNLOAD_ERROR),  # anything else: no row, unknown status
)


@dataclass(frozen=True)
class Fetched:
    """What img2dataset reported for one URL."""

    status: str
    error: str = ""
    image: bytes = b""
    width: int = 0
    height: int = 0
    orig_width: int = 0
    orig_height: int = 0
    sha256: str = ""
    #: the stored image's measurements taken in the worker (measure_writer), None if not taken
    measured: measure_writer.Measured | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success" and bool(self.image)


def reason_for(status: str, error: str) -> Reason:
    """Map an img2dataset outcome to a `Reason` with the one table `ERROR_REASONS`."""
    if status == "success":
        return Reason.KEEP
    for st, needle, reason in ERROR_REASONS:
        if (not st or st == status) and needle in (error or ""):
            return reason
    return Reason.DOWNLOAD_ERROR


def img2dataset_kwargs(cfg: Any, url_list: Path, output_folder: Path) -> dict[str, Any]:
    """The keyword arguments for `img2dataset.download` (module doc says why each)."""
    return {
        "url_list": str(url_list),
        "output_folder": str(output_folder),
        "input_format": "parquet",
        "url_col": "url",
        "caption_col": None,  # captions stay on our samples; one URL may carry several
        "save_additional_columns": [ID_COL],
        "output_format": "parquet",
        "image_size": cfg.image_size,
        "resize_mode": cfg.resize_mode,
        "resize_only_if_bigger": True,
        "encode_format": "jpg",
        "encode_quality": cfg.encode_quality,
        "skip_reencode": False,
        "timeout": cfg.timeout,
        "retries": cfg.retries,
        "processes_count": cfg.processes_count,
        "thread_count": cfg.thread_count,
        "number_sample_per_shard": cfg.urls_per_shard,
        "distributor": "multiprocessing",
        "incremental_mode": "incremental",
        "enable_wandb": False,
        "compute_hash": "sha256",
        "extract_exif": False,
        "min_image_size": 0,
        "max_aspect_ratio": float("inf"),
        "max_image_area": float(cfg.max_image_pixels),
        "user_agent_token": cfg.user_agent_token or None,
        "disallowed_header_directives": list(cfg.disallowed_directives),
        "max_shard_retry": 1,
    }


def fetch_limits(cfg: Any) -> netguard.FetchLimits:
    """The guard's settings from a CrawlConfig: total deadline, byte cap, allowed networks."""
    return netguard.FetchLimits(
        deadline_s=float(cfg.timeout),
        max_bytes=int(cfg.max_download_bytes),
        allowed_networks=tuple(cfg.allowed_networks),
    )


def _guarded_downloader_class():
    """`GuardedDownloader`, defined on first use: img2dataset (torch, cv2) is imported lazily."""
    global _GUARDED  # noqa: PLW0603 - one class per process, so pickling finds the same object
    if _GUARDED is None:
        from img2dataset.downloader import Downloader

        class _Guarded(Downloader):
            """img2dataset's Downloader that installs the guarded urllib opener in its worker first,
            whose resizer sees EXIF-rotated, 8-bit images (image_normalise.py), and whose writer
            measures each stored image in the worker (measure_writer.py)."""

            def __init__(self, *args: Any, guard_limits: netguard.FetchLimits, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.guard_limits = guard_limits
                self.resizer = NormalisingResizer(self.resizer)
                self.sample_writer_class = functools.partial(measure_writer.MeasuringWriter, self.sample_writer_class)

            def __call__(self, row: Any) -> Any:
                netguard.install(self.guard_limits)
                encode_tap.install()
                return super().__call__(row)

        _Guarded.__name__ = _Guarded.__qualname__ = "GuardedDownloader"
        _Guarded.__module__ = __name__
        _GUARDED = _Guarded
    return _GUARDED


_GUARDED: Any = None


def __getattr__(name: str) -> Any:  # spawned workers unpickle "download.GuardedDownloader" by name
    if name == "GuardedDownloader":
        return _guarded_downloader_class()
    raise AttributeError(name)


@contextlib.contextmanager
def _worker_environment(max_pixels: int, limits: netguard.FetchLimits | None = None) -> Iterator[None]:
    """Environment the spawned workers inherit, restored afterwards.

    NO_ALBUMENTATIONS_UPDATE stops albumentations from asking PyPI for a newer version at import
    (a network call in every worker); OPENCV_IO_MAX_IMAGE_PIXELS makes cv2 refuse bombs from the
    header. img2dataset's `download` also installs a SIGINT handler that exits with status 0 (and
    raises outside the main thread); it is replaced by a no-op for the call, so Ctrl-C stays ours.
    """
    env = {"NO_ALBUMENTATIONS_UPDATE": "1", "OPENCV_IO_MAX_IMAGE_PIXELS": str(int(max_pixels))}
    saved = {k: os.environ.get(k) for k in env}
    i2d_main, real_signal, real_downloader = None, None, None
    try:
        os.environ.update(env)  # before the first import of img2dataset (albumentations checks at import)
        # not `import img2dataset.main`: the package re-exports a *function* named main over the module
        i2d_main = importlib.import_module("img2dataset.main")
        real_signal = i2d_main.signal
        i2d_main.signal = SimpleNamespace(signal=lambda *a, **k: None, SIGINT=real_signal.SIGINT)
        real_downloader = i2d_main.Downloader
        if limits is not None:
            i2d_main.Downloader = functools.partial(_guarded_downloader_class(), guard_limits=limits)
        yield
    finally:
        if i2d_main is not None and real_signal is not None:
            i2d_main.signal = real_signal
        if i2d_main is not None and real_downloader is not None:
            i2d_main.Downloader = real_downloader
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_img2dataset(
    urls: Sequence[str], cfg: Any, work_dir: str | Path, phases: Phases | None = None
) -> dict[str, Fetched]:
    """Fetch `urls` (deduplicated) with img2dataset; return what it reported for each URL.

    Every URL gets an entry: one img2dataset wrote no row for (its shard crashed) is reported as
    status "missing", never dropped. `phases` gets img2dataset's own phases (phases.py) and the
    reading back: `read_back` in total (mostly in the background, during the download) and
    `read_back_after` after img2dataset returned.
    """
    unique = sorted(set(urls))
    if not unique:
        return {}
    settings = img2dataset_kwargs(cfg, Path(), Path())
    settings = {k: v for k, v in settings.items() if k not in ("url_list", "output_folder")}
    settings["laitkit_measure"] = measure_writer.VERSION
    key = json.dumps({"urls": unique, "settings": settings}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    run_dir = Path(work_dir) / "img2dataset" / digest
    out_dir = run_dir / "out"
    run_dir.mkdir(parents=True, exist_ok=True)
    url_list = run_dir / "urls.parquet"
    if not url_list.exists():
        table = pa.table({"url": unique, ID_COL: [str(i) for i in range(len(unique))]})
        atomic_write_parquet(url_list, table)
    shards = math.ceil(len(unique) / cfg.urls_per_shard)
    reader = ShardReader(out_dir, phases)
    if len(list(out_dir.glob("*_stats.json"))) < shards:
        log.info("img2dataset: %d URLs -> %s", len(unique), out_dir)
        with _worker_environment(cfg.max_image_pixels, fetch_limits(cfg)), reader.in_background():
            started = time.time()
            importlib.import_module("img2dataset").download(**img2dataset_kwargs(cfg, url_list, out_dir))
            if phases is not None:
                for name, seconds in img2dataset_phases(out_dir, started, time.time()).items():
                    phases.add(f"img2dataset_{name}", seconds)
    with span(phases, "read_back_after"):
        reader.read_new(finished_only=False)
        return reader.by_url(unique)


def read_shard(path: Path) -> dict[str, Fetched]:
    """Rows of one of img2dataset's shard parquet files, by row id."""
    by_id: dict[str, Fetched] = {}
    cols = [ID_COL, "status", "error_message", "width", "height", "original_width", "original_height", "sha256"]
    table = pq.read_table(path, memory_map=True)  # local files; the image column is most of the bytes
    data = {c: table.column(c).to_pylist() for c in cols}
    images = table.column("jpg").to_pylist() if "jpg" in table.column_names else [None] * table.num_rows
    measured = [measure_writer.measured_from_row(r) for r in table.select(
        [c for c in measure_writer.NAMES if c in table.column_names]).to_pylist()]  # fmt: skip
    for i in range(table.num_rows):
        by_id[str(data[ID_COL][i])] = Fetched(
            status=data["status"][i] or "",
            error=" ".join((data["error_message"][i] or "").split()),
            image=images[i] or b"",
            width=int(data["width"][i] or 0),
            height=int(data["height"][i] or 0),
            orig_width=int(data["original_width"][i] or 0),
            orig_height=int(data["original_height"][i] or 0),
            sha256=data["sha256"][i] or "",
            measured=measured[i],
        )
    return by_id


class ShardReader:
    """Reads img2dataset's shard files, optionally while img2dataset is still writing others.

    Why: reading the output back (parquet -> Python rows, ~0.5 ms per image) ran after the whole
    download, serially; the parent mostly waits on its workers meanwhile, so each shard is read as
    soon as it is finished. A shard is finished when its `NNNNN_stats.json` exists: img2dataset
    closes the shard's parquet before it writes the stats. Rows read are the same either way.
    """

    POLL_S = 0.2

    def __init__(self, out_dir: Path, phases: Phases | None = None) -> None:
        self.out_dir = out_dir
        self.rows: dict[str, Fetched] = {}
        self._done: set[str] = set()
        self._phases = phases

    def read_new(self, finished_only: bool = True) -> None:
        """Read every shard not read yet (only those with stats when `finished_only`)."""
        for f in sorted(self.out_dir.glob("*.parquet")):
            if f.name in self._done or (finished_only and not f.with_name(f"{f.stem}_stats.json").exists()):
                continue
            with span(self._phases, "read_back"):
                self.rows.update(read_shard(f))
            self._done.add(f.name)

    @contextlib.contextmanager
    def in_background(self) -> Iterator[None]:
        """Poll for finished shards in a thread while the body runs; its errors surface at exit."""
        stop = threading.Event()
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                while not stop.wait(self.POLL_S):
                    if self.out_dir.is_dir():
                        self.read_new()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=loop, name="laitkit-shard-reader", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        if errors:
            raise errors[0]

    def by_url(self, urls: Sequence[str]) -> dict[str, Fetched]:
        """What was read, by URL (`urls[i]` has id str(i)); a URL without a row is "missing"."""
        missing = Fetched(status="missing", error="img2dataset wrote no row for this URL (its shard failed)")
        return {url: self.rows.get(str(i), missing) for i, url in enumerate(urls)}


def read_img2dataset_output(out_dir: Path, urls: Sequence[str]) -> dict[str, Fetched]:
    """Rows of img2dataset's per-shard parquet files, by URL (`urls[i]` has id str(i))."""
    reader = ShardReader(out_dir)
    reader.read_new(finished_only=False)
    return reader.by_url(urls)


def _is_http(url: str) -> bool:
    try:
        return urlsplit(url or "").scheme.lower() in ALLOWED_SCHEMES and bool(urlsplit(url).hostname)
    except ValueError:
        return False


def download_samples(
    samples: Sequence[Sample], cfg: Any, work_dir: str | Path, phases: Phases | None = None
) -> dict[str, Any]:
    """Download every still-kept sample's image and record the outcome on it (in place).

    Returns the measurements the workers took of the stored images (`measure_writer.Measured`),
    by sample key, for `image_step`.

    Rejected samples are not downloaded. Without a request: a URL whose scheme is not http(s) is
    rejected (urllib would happily read file:// paths named by a URL list), a host that resolves
    to a refused address gets `blocked_address`, one that does not resolve `download_error`, and
    a URL its host's robots.txt disallows `robots_txt` — as does an image whose page's robots.txt
    disallows the page for our token (`page_robots_txt`; only an explicit rule counts there).
    `phases` receives the seconds of each part (phases.py).
    """
    with span(phases, "address_guard"):
        fetch = _vet_hosts([s for s in samples if s.kept], cfg)
    if cfg.robots_txt and fetch:
        with span(phases, "robots_txt"):
            fetch = _robots_allowed(fetch, cfg, work_dir)
    results = run_img2dataset([s.url for s in fetch], cfg, work_dir, phases)
    with span(phases, "record_downloads"):
        return _record(fetch, results)


def _vet_hosts(todo: list[Sample], cfg: Any) -> list[Sample]:
    """The samples whose URL may be fetched; the others rejected (scheme, port, address guard)."""
    limits = fetch_limits(cfg)
    allowed = limits.networks()
    host_verdict: dict[tuple[str, int], str] = {}
    fetch: list[Sample] = []
    for s in todo:
        try:
            parts = urlsplit(s.url)
        except ValueError as exc:  # "http://[::1" from a URL list or WAT record
            s.reject(STAGE, Reason.DOWNLOAD_ERROR, f"malformed URL ({exc}): {s.url[:80]}")
            continue
        if parts.scheme.lower() not in ALLOWED_SCHEMES:
            s.reject(STAGE, Reason.DOWNLOAD_ERROR, f"URL scheme not fetched: {s.url[:80]}")
            continue
        try:
            host = (parts.hostname or "", parts.port or (443 if parts.scheme.lower() == "https" else 80))
        except ValueError:
            s.reject(STAGE, Reason.DOWNLOAD_ERROR, f"bad port: {s.url[:80]}")
            continue
        if host not in host_verdict:
            host_verdict[host] = netguard.vet_host(host[0], host[1], allowed)[1]
        why = host_verdict[host]
        if why.startswith(netguard.BLOCKED_PREFIX):
            s.reject(STAGE, Reason.BLOCKED_ADDRESS, why.removeprefix(f"{netguard.BLOCKED_PREFIX}: "))
        elif why:
            s.reject(STAGE, Reason.DOWNLOAD_ERROR, why)
        else:
            fetch.append(s)
    return fetch


def _robots_allowed(fetch: list[Sample], cfg: Any, work_dir: str | Path) -> list[Sample]:
    """The samples robots.txt lets us fetch (image host, and page host's explicit rules); the
    others rejected `robots_txt`."""
    robots = RobotsCache(fetch_limits(cfg), token=cfg.user_agent_token or "laitkit", threads=cfg.thread_count,
                         cache_dir=Path(work_dir) / "robots")  # fmt: skip
    pages = {s.key: s.page_url for s in fetch if cfg.page_robots_txt and _is_http(s.page_url)}
    robots.prefetch([s.url for s in fetch] + list(pages.values()))
    allowed_fetch = []
    for s in fetch:
        why = robots.refusal(s.url) or (robots.page_refusal(pages[s.key]) if s.key in pages else "")
        if why:
            s.reject(STAGE, Reason.ROBOTS_TXT, why)
        else:
            allowed_fetch.append(s)
    return allowed_fetch


def _record(fetch: list[Sample], results: dict[str, Fetched]) -> dict[str, Any]:
    """Record img2dataset's outcome on each fetched sample; the workers' measurements by key."""
    measured: dict[str, Any] = {}
    for s in fetch:
        r = results[s.url]
        if r.ok:
            if r.measured is not None:
                measured[s.key] = r.measured
            s.image, s.width, s.height, s.sha256 = r.image, r.width, r.height, r.sha256
            s.orig_width, s.orig_height = r.orig_width, r.orig_height
            s.accept(STAGE, f"{r.orig_width}x{r.orig_height} -> {r.width}x{r.height}")
        else:
            reason = reason_for(r.status, r.error) if r.status != "success" else Reason.DECODE_ERROR
            s.reject(STAGE, reason, f"{r.status}: {r.error}" if r.error else r.status)
    return measured
