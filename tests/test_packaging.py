"""The wheel holds every subpackage and data file of the source tree, under the tempano.* namespace."""

from __future__ import annotations

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
