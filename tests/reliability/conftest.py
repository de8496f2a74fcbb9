"""Fixtures of the reliability suite live in `tests.reliability.support` (importable by tests)."""

from tests.reliability.support import local_dataset, s3, s3_server

__all__ = ["local_dataset", "s3", "s3_server"]
