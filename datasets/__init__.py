"""Formats, schemas, loaders and the synthetic web.

Imports nothing heavy (no Ray, no torch): a notebook can read shards with only pyarrow and numpy.
"""
