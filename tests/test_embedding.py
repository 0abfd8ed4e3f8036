"""Embedding: a downstream Cython module cimports hftcore and calls its C-level
API without the GIL; a C program includes hftcore's headers. Both are built
against the installed package (its get_include() and shipped .pxd files)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

import hftcore

HERE = os.path.dirname(os.path.abspath(__file__))


def test_headers_and_pxd_are_shipped():
    inc = hftcore.get_include()
    assert os.path.isfile(os.path.join(inc, "hftcore", "types.h"))
    pkg = os.path.dirname(hftcore.__file__)
    assert os.path.isfile(os.path.join(inc, "hftcore", "rng.h"))
    for name in ("__init__.pxd", "types.pxd", "book.pxd", "sync.pxd", "rng.pxd"):
        assert os.path.isfile(os.path.join(pkg, name)), name


def test_c_program_includes_headers(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "embed"
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", hftcore.get_include(),
                    os.path.join(HERE, "embed", "embed.c"), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert out[:4] == [str(hftcore.EVENT_DTYPE.itemsize), str(hftcore.EV_DEPTH), str(hftcore.ASK), "6183764"]
    # the shared generator: the same stream as the pure-Python twin
    sys.path.insert(0, HERE)
    from reference.replay import Xoshiro256ss

    r = Xoshiro256ss(0)
    assert int(out[4]) == r.s[0] == 0xE220A8397B1DCDAF and float(out[5]) == r.u01()


def test_downstream_cython_module_cimports_hftcore(tmp_path):
    pytest.importorskip("Cython")
    src = tmp_path / "downstream.pyx"
    shutil.copy(os.path.join(HERE, "embed", "downstream.pyx"), src)
    setup = tmp_path / "setup_downstream.py"
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(hftcore.__file__)))
    setup.write_text(
        "from setuptools import setup, Extension\n"
        "from Cython.Build import cythonize\n"
        "import hftcore\n"
        "ext = Extension('downstream', ['downstream.pyx'], include_dirs=[hftcore.get_include()])\n"
        f"setup(ext_modules=cythonize([ext], include_path=[{pkg_parent!r}], language_level=3))\n"
    )
    env = dict(os.environ)
    # the build must find this very hftcore (installed, or an in-place build)
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, str(setup), "-q", "build_ext", "--inplace"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    so = [f for f in os.listdir(tmp_path) if f.startswith("downstream") and f.endswith(sysconfig.get_config_var("EXT_SUFFIX"))]
    assert so, os.listdir(tmp_path)
    spec = importlib.util.spec_from_file_location("downstream", tmp_path / so[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    from hftcore.book import L2Book
    from hftcore.sync import BookSync

    book = L2Book(tick_size="0.01")
    bb, ba, crossed = mod.apply_and_read(book, np.array([100, 99], dtype=np.int64),
                                         np.array([5, 7], dtype=np.int64), 0)
    assert (bb, book.best_bid()) == (100, 100) and not crossed
    bb, ba, crossed = mod.apply_and_read(book, np.array([100], dtype=np.int64),
                                         np.array([1], dtype=np.int64), 1)
    assert ba == 100 and crossed
    assert mod.sides() == (0, 1, 64)

    sync = BookSync(market="spot")
    sync.on_snapshot_arrays(10, [100], [1], [101], [1])
    assert mod.feed(sync, 11, 12, np.array([99], dtype=np.int64), np.array([3], dtype=np.int64))
    assert sync.book.qty_at(0, 99) == 3 and sync.last_update_id == 12
