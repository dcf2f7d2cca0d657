"""The wheel holds every subpackage and data file of the source tree, under the tempano.* namespace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("blueprints", "workflows", "activities", "plugins", "api", "store")


def test_wheel_contains_every_module_and_data_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("tempano-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder in CODE_FOLDERS:
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add("tempano/" + path.relative_to(REPO).as_posix())
    missing = sorted(expected - names)
    assert not missing, f"missing from the wheel: {missing[:20]}"
    assert not any(n.startswith(("tests/", "blueprints/", "workflows/")) for n in names), "bare folders leaked"
    assert any(n.endswith("entry_points.txt") for n in names)
    entry_points = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for plugin in ("builtin", "lab", "ansible", "openstack", "sdn"):
        assert f"{plugin} = tempano.plugins." in entry_points


def test_plain_install_into_a_fresh_virtualenv_works(tmp_path: Path) -> None:
    """`pip install .` of a clean source tree (only the tracked files) gives a working tempano: the console script,
    every plugin through its entry point, the type library and the examples as package data."""
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    uv = shutil.which("uv")
    install = (
        [uv, "pip", "install", "-q", "--python", str(python), str(source)]
        if uv
        else [str(python), "-m", "pip", "install", "-q", str(source)]
    )
    done = subprocess.run(install, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    probe = (
        "import importlib.resources, json, tempano.api.cli\n"
        "from tempano.plugins import load_plugins\n"
        "from tempano.blueprints import compile_path\n"
        "plugins = sorted(load_plugins().plugins)\n"
        "hello = importlib.resources.files('tempano.blueprints') / 'examples' / 'hello' / 'hello.yaml'\n"
        "plan = compile_path(str(hello))\n"
        "print(json.dumps({'file': tempano.api.cli.__file__, 'plugins': plugins, 'nodes': sorted(plan.nodes)}))\n"
    )
    ran = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert found["file"].startswith(str(venv)), "tempano must be imported from the virtualenv, not the checkout"
    assert {"builtin", "lab", "ansible", "openstack", "sdn"} <= set(found["plugins"])
    assert found["nodes"] == ["backend", "database", "frontend"]

    helped = subprocess.run([str(venv / "bin" / "tempano"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert helped.returncode == 0 and "install" in helped.stdout, helped.stderr
