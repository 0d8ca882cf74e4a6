"""Offline training of the shipped classifiers from the public corpora in ``../shared/data`` (never run in CI)."""
