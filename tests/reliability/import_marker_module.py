"""Creates a marker file when imported: proves whether something imported it.

The marker's path comes from $LK_IMPORT_MARKER (set by the test).
"""

import os
from pathlib import Path

_marker = os.environ.get("LK_IMPORT_MARKER")
if _marker:
    Path(_marker).write_text("imported\n")


def fn(batch):
    return batch
