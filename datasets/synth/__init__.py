"""The synthetic web: scenes, captions, pages, noise with known labels, and its HTTP server.

Why lazy exports: `laitkit --help` imports every command's parser, and this package's constants
are needed there; numpy, Pillow, pyarrow and warcio load only when `generate` or the server is used.

    from laitkit.datasets.synth import generate, SynthServer, free_port
    port = free_port()
    generate(out, pages=40, seed=0, base_url=f"http://127.0.0.1:{port}")
    with SynthServer(out, port=port, timeout_delay=1.0) as srv:
        ...  # crawl srv.base_url, compare with out / "truth.parquet"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

DEFAULT_BASE_URL = "http://127.0.0.1:8377"
DEFAULT_TIMEOUT_DELAY = 20.0

if TYPE_CHECKING:
    from laitkit.datasets.synth.builder import generate
    from laitkit.datasets.synth.server import SynthServer, free_port, serve

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT_DELAY", "SynthServer", "free_port", "generate", "serve"]

_LAZY = {
    "generate": "laitkit.datasets.synth.builder",
    "SynthServer": "laitkit.datasets.synth.server",
    "free_port": "laitkit.datasets.synth.server",
    "serve": "laitkit.datasets.synth.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
