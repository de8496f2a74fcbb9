"""The two compiled pieces: the prefetching row gather (runtime/_gather.c) and the
samplers' keyed permutation (runtime/samplers/_feistel.c).

Optional: where they cannot be built (no C compiler), loaderkit installs without
them and numpy does the same work, to the same result (cache-mode epochs ~1.2x
slower to gather, and a per-row plan ~10x slower to compute). Everything else about
the package is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "loaderkit.runtime._gather",
            ["loaderkit/runtime/_gather.c"],
            optional=True,
        ),
        Extension(
            "loaderkit.runtime.samplers._feistel",
            ["loaderkit/runtime/samplers/_feistel.c"],
            optional=True,
        ),
    ]
)
