"""The one compiled piece: the cache mode's prefetching row gather.

Optional: where it cannot be built (no C compiler), loaderkit installs without
it and gathers with numpy (cache-mode epochs ~1.2x slower). Everything else about
the package is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "loaderkit.runtime._gather",
            ["loaderkit/runtime/_gather.c"],
            optional=True,
        )
    ]
)
