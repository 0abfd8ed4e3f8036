"""hft_parse_units_quoted (the decoder's one-pass shortcut for a decimal inside a
JSON string) never disagrees with hft_parse_units: a C differential check, built
with the SSE2 path (x86-64) and with the portable SWAR path."""
import os
import shutil
import subprocess

import pytest

import hftcore

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "c", "quoted_units_check.c")


@pytest.mark.parametrize("flags", [[], ["-U__SSE2__"]], ids=["default", "portable"])
def test_quoted_shortcut_agrees_with_exact_parser(tmp_path, flags):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "qc"
    subprocess.run([cc, "-O2", "-Wall", "-Werror", *flags, "-I", hftcore.get_include(), SRC, "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
