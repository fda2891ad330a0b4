"""Stages and how they compose on Ray. Imports point one way: pipeline -> extractors, datasets."""
