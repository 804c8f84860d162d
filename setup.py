"""The compiled modules of the domain: the allocation kernel and the inputs' columns by tree position
(the rest of the project is configured in pyproject.toml)."""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(
    ext_modules=[
        Extension(f"libs.domain.{name}", [f"libs/domain/{name}.c"], extra_compile_args=_FLAGS)
        for name in ("_allocation_kernel", "_columns")
    ]
)
