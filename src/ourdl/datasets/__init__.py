"""Datasets for ourdl's applications; `ourdl.datasets.pubg` is the tutorial's PUBG placement data."""

__all__ = ["pubg"]
