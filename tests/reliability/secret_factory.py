"""A connection factory that fails quoting what it was handed (the source's uri, which a
recipe may read from the environment), as user code often does."""


def refuse(name: str) -> None:
    raise LookupError(f"no table at {name}")


def refuse_region(batch: object) -> object:
    """A transform that fails quoting a storage option it read from the environment."""
    import os

    raise ValueError(f"bad region {os.environ['LK_T_REGION']}")


def warn_region(batch: object) -> object:
    """A transform that warns quoting a storage option it read from the environment."""
    import os
    import warnings

    warnings.warn(f"slow region {os.environ['LK_T_REGION']}", stacklevel=1)
    return batch
