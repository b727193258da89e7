"""The package as installed from a wheel (not the checkout): its Hydra configs travel inside it as the package
hyperbench.conf and are found by package name from any directory; the version has one source."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hyperbench
from hyperbench.config import CONF_DIR, GROUPS

from .conftest import ROOT


def test_the_version_has_one_source():
    meta = configparser.ConfigParser()
    meta.read(ROOT / "setup.cfg")
    assert meta["metadata"]["version"] == "attr: hyperbench.__version__"
    assert hyperbench.__version__.count(".") == 2


def test_the_configs_are_found_as_the_package_hyperbench_conf():
    assert (CONF_DIR / "config.yaml").exists() and all((CONF_DIR / g).is_dir() for g in GROUPS)
    assert CONF_DIR.resolve() == (ROOT / "conf").resolve()  # in a checkout: hyperbench/conf links to conf/


@pytest.mark.slow
def test_a_wheel_holds_every_config_and_runs_from_another_directory(tmp_path):
    src = tmp_path / "src"
    keep = {"hyperbench", "conf", "setup.cfg", "pyproject.toml", "README.md"}
    shutil.copytree(ROOT, src, symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == ROOT and n not in keep]
                    + [n for n in names if n == "__pycache__"])
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("hyperbench-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    shipped = {n.removeprefix("hyperbench/") for n in names if n.startswith("hyperbench/conf/") and n.endswith(".yaml")}
    assert shipped == {f"conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}  # the wheel's files only, not the checkout
    code = ("import sys, hyperbench.config as c; from hyperbench.cli import main; "
            "print('CONF', c.CONF_DIR); sys.argv = ['hyperbench', '--cfg', 'job', 'model=vgg_block2']; main()")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=elsewhere,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"CONF {tmp_path / 'site' / 'hyperbench' / 'conf'}" in p.stdout
    assert "name: vgg_block${.blocks}" in p.stdout and "blocks: 2" in p.stdout
