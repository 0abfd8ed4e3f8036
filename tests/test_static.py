"""Static checks that run with the suite: ruff on the source tree, and mypy's
stubtest comparing the .pyi stubs with the installed compiled modules."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import hftcore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOWLIST = os.path.join(ROOT, "tests", "static", "stubtest_allowlist.txt")


def test_tests_import_the_installed_build():
    """src layout: the compiled core comes from the installed package, never from
    an uncompiled source folder on sys.path."""
    import hftcore.book

    assert hftcore.book.__file__.endswith((".so", ".pyd")), hftcore.book.__file__
    assert not os.path.isdir(os.path.join(ROOT, "hftcore")), "the core lives under src/"


def test_ruff_clean():
    ruff = shutil.which("ruff") or os.path.join(os.path.dirname(sys.executable), "ruff")
    if not os.path.exists(ruff):
        pytest.skip("ruff not installed (it is in the [test] extra)")
    proc = subprocess.run([ruff, "check", "--no-cache", "src", "tests", "benchmarks"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_stubtest_matches_the_compiled_modules(tmp_path):
    pytest.importorskip("mypy")
    # run outside the source tree so only the installed package is seen
    proc = subprocess.run([sys.executable, "-m", "mypy.stubtest", "hftcore", "--ignore-disjoint-bases",
                           "--allowlist", ALLOWLIST, "--mypy-config-file", os.devnull],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert hftcore.get_include()
