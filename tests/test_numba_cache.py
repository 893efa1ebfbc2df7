"""numba's cache of gpudedup's kernels lands in a per-user folder, never inside the package, and
the user's own numba functions keep caching where numba puts them."""

import os
import subprocess
import sys
import textwrap

import pytest

import gpudedup

PACKAGE_DIRS = [os.path.dirname(gpudedup.__file__),
                os.path.dirname(__import__("gpudedup.kernels").kernels.__file__)]

USER_MODULE = textwrap.dedent("""
    from numba import njit

    @njit(cache=True)
    def user_add(x):
        return x + 1
""")


def _cache_files(folder):
    found = set()
    for root, _, files in os.walk(folder):
        found |= {os.path.join(root, f) for f in files if f.endswith((".nbi", ".nbc"))}
    return found


def _run(code, env, cwd):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("numba_first", [True, False], ids=["numba-first", "gpudedup-first"])
def test_kernel_cache_is_per_user_not_in_package(tmp_path, numba_first):
    before = set().union(*(_cache_files(d) for d in PACKAGE_DIRS))
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    env["PYTHONPATH"] = str(tmp_path)
    imports = "import numba\nimport gpudedup" if numba_first else "import gpudedup\nimport numba"
    _run(imports + """
import numpy as np
from gpudedup.groups import connected_components
from usermod import user_add
assert connected_components(3, np.array([0]), np.array([2])).tolist() == [0, 1, 0]
assert user_add(1) == 2
""", env, tmp_path)
    after = set().union(*(_cache_files(d) for d in PACKAGE_DIRS))
    assert after - before == set(), "numba wrote cache files inside the package"
    ours = _cache_files(tmp_path / "xdg" / "gpudedup" / "numba")
    assert any("groups" in os.path.basename(f) for f in ours)
    # the user's own function: numba's default, beside its source file
    assert _cache_files(tmp_path / "__pycache__")


def test_numba_cache_dir_is_honoured(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               XDG_CACHE_HOME=str(tmp_path / "xdg"))
    _run("""
import numpy as np
from gpudedup.groups import connected_components
connected_components(2, np.array([0]), np.array([1]))
""", env, tmp_path)
    assert _cache_files(tmp_path / "numba-cache")
    assert not (tmp_path / "xdg" / "gpudedup").exists()
