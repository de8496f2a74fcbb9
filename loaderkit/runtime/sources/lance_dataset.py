"""A Lance dataset named by `source.uri`: a path, file://, s3://, gs:// or az://."""

from __future__ import annotations

from typing import Any

from loaderkit.runtime.sources.kind import SourceKind, storage_options
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import resolve_text, resolve_version


class LanceDataset(SourceKind):
    name = "lance_dataset"
    label = "Lance dataset"

    @staticmethod
    def matches(source: SourceSpec) -> bool:
        return True  # a uri alone names a Lance dataset (the last kind asked)

    @staticmethod
    def open(source: SourceSpec) -> Any:
        import lance

        from loaderkit.runtime import object_cache

        # With `cache`: the local copy once it is whole, else the store (filling the copy).
        return object_cache.opened(source, lambda: lance.dataset(
            resolve_text(source.uri), version=resolve_version(source.version),
            storage_options=storage_options(source)))
