"""A connection factory that fails quoting what it was handed (the source's uri, which a
recipe may read from the environment), as user code often does."""


def refuse(name: str) -> None:
    raise LookupError(f"no table at {name}")
