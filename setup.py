"""Build of hftmm: the Cython core ``hftcore`` and the pure-Python ``hftmm``.

All Cython compiler directives live here, in one place.

Environment switches:
  HFTCORE_DEBUG=1     bounds/wraparound/initialisation checks on, -O0 -g, asserts on
  HFTCORE_ANNOTATE=1  write Cython's HTML annotation next to each .pyx
  HFTCORE_WERROR=1    compiler warnings are errors (CI sets it)
"""
from __future__ import annotations

import glob
import os
import shutil

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("HFTCORE_DEBUG", "0") not in ("", "0")
ANNOTATE = os.environ.get("HFTCORE_ANNOTATE", "0") not in ("", "0")
WERROR = os.environ.get("HFTCORE_WERROR", "0") not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    # nonecheck stays off: the kernels are nogil, and a None check on self needs the GIL
    "nonecheck": False,
    "cdivision": True,  # C semantics: -7 // 2 == -3; tick rounding never relies on it
    "embedsignature": True,
    "freethreading_compatible": False,
}

cflags = ["-O0", "-g", "-UNDEBUG"] if DEBUG else ["-O3"]
cflags += ["-Wall", "-Wno-unreachable-code"]
if WERROR:
    cflags.append("-Werror")

macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros.append(("HFTCORE_DEBUG", "1"))

include_dirs = [os.path.join("include"), numpy.get_include()]

extensions = [
    Extension(
        "hftcore." + os.path.splitext(os.path.basename(pyx))[0],
        [pyx],
        include_dirs=include_dirs,
        define_macros=macros,
        extra_compile_args=cflags,
    )
    for pyx in sorted(glob.glob(os.path.join("src", "hftcore", "*.pyx")))
]


class BuildPyWithHeaders(build_py):
    """Ship include/hftcore/*.h inside the wheel as hftcore/include/hftcore/*.h."""

    def run(self) -> None:
        super().run()
        dst = os.path.join(self.build_lib, "hftcore", "include", "hftcore")
        os.makedirs(dst, exist_ok=True)
        for header in glob.glob(os.path.join(HERE, "include", "hftcore", "*.h")):
            shutil.copy2(header, dst)


setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
        nthreads=int(os.environ.get("HFTCORE_CYTHON_JOBS", "0")),
        include_path=["src"],
    ),
    cmdclass={"build_py": BuildPyWithHeaders},
)
