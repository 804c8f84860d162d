"""The one compiled module: the allocation kernel (the rest of the project is configured in pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "libs.domain._allocation_kernel",
            ["libs/domain/_allocation_kernel.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)
