"""Ready-made connection factories for `source.connection_factory`.

A factory is called as `factory(table_name)` inside each worker. These read
everything secret from the worker's own environment, so nothing secret is
pickled when workers start.
"""

from __future__ import annotations

import os
from typing import Any


def remote_table(name: str) -> Any:
    """A LanceDB Cloud / Enterprise table from LANCEDB_URI, LANCEDB_API_KEY, LANCEDB_REGION
    and (optionally) LANCEDB_HOST_OVERRIDE."""
    import lancedb

    options: dict[str, Any] = {"api_key": os.environ["LANCEDB_API_KEY"]}
    for key in ("region", "host_override"):
        value = os.environ.get(f"LANCEDB_{key.upper()}")
        if value:
            options[key] = value
    return lancedb.connect(os.environ["LANCEDB_URI"], **options).open_table(name)

