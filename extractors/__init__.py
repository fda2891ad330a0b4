"""Models that turn a sample into features (regions, text, relevance). No Ray imports here."""

from laitkit.extractors import native as _native

# Before any submodule is imported: a compiled text module older than its .py must not load.
_native.install()
