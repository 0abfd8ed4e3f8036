"""Build the example against the installed hftcore: ``python setup.py build_ext --inplace``."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

import hftcore

ext = Extension("imbalance_mm", ["imbalance_mm.pyx"], include_dirs=[hftcore.get_include()])
# the .pxd files ship inside the hftcore package: its parent directory is the include path
setup(name="imbalance_mm", ext_modules=cythonize(
    [ext], include_path=[os.path.dirname(os.path.dirname(os.path.abspath(hftcore.__file__)))], language_level=3))
