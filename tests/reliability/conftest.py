"""Fixtures of the reliability suite live in `reliability_support` (importable by tests)."""

from reliability_support import local_dataset, s3, s3_server

__all__ = ["local_dataset", "s3", "s3_server"]
