"""Datasets for ourdl's applications; `ourdl.datasets.pubg` is the seed's PUBG placement data."""

__all__ = ["pubg"]
