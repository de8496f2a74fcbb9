"""Where a source's bytes live, and the I/O settings that fit there.

On local disk a read costs about half a millisecond of CPU whatever its size, so
small reads are cheap and a block shuffle mixes 128-row blocks. On an object
store each read is a request: tens of milliseconds away, and with a price and a
server cost of its own. There a block shuffle reads 4,096-row blocks (a few MB a
request for typical rows) and keeps 16 reads in flight. Measured in
benchmarks/bench_object_store.py (docs/performance.md); a recipe overrides both
(`sampler.block_rows`, `loader.reads_in_flight`).
"""

from __future__ import annotations

# URI schemes read over the network: Lance's object stores, and LanceDB Cloud.
OBJECT_STORE_SCHEMES = ("s3", "s3a", "s3+ddb", "gs", "gcs", "az", "abfs", "abfss", "oss",
                        "db")

# Rows per block of a block shuffle (one read each).
LOCAL_BLOCK_ROWS = 128
OBJECT_STORE_BLOCK_ROWS = 4096
# Reads one process keeps in flight: on 2 cores 3 read ~1.8x as fast as 1 from local
# disk (most of a read is Lance's fixed CPU cost, which overlaps); an object store's
# latency overlaps further.
LOCAL_READS_IN_FLIGHT = 3
OBJECT_STORE_READS_IN_FLIGHT = 16


def on_object_store(uri: str) -> bool:
    """Whether `uri` names data behind a network request (not a local path or file://)."""
    scheme, sep, _ = uri.partition("://")
    return bool(sep) and scheme.lower() in OBJECT_STORE_SCHEMES


def block_rows(uris: list[str]) -> int:
    """The default block size for sources at `uris` (the object store's if any is remote)."""
    remote = any(on_object_store(uri) for uri in uris)
    return OBJECT_STORE_BLOCK_ROWS if remote else LOCAL_BLOCK_ROWS


def reads_in_flight(uri: str) -> int:
    """The default number of concurrent reads for a source at `uri`."""
    return OBJECT_STORE_READS_IN_FLIGHT if on_object_store(uri) else LOCAL_READS_IN_FLIGHT
