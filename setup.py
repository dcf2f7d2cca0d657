"""Maps each top-level code folder onto the ``tempano.<folder>`` import namespace.

The package list is computed, so a new subpackage can never be silently left out of the wheel
(tests/test_packaging.py builds the wheel and checks).
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
CODE_FOLDERS = ("blueprints", "workflows", "activities", "plugins", "api", "store")
DATA_PATTERNS = ["*.yaml", "*.yml", "*.json", "*.j2", "*.sh", "*.cfg", "py.typed", "*.html", "*.css", "*.zip"]


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder in CODE_FOLDERS:
        packages.append(f"tempano.{folder}")
        package_dir[f"tempano.{folder}"] = folder
        for sub in find_packages(folder):
            packages.append(f"tempano.{folder}.{sub}")
            package_dir[f"tempano.{folder}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


def _data_dirs() -> dict[str, list[str]]:
    """Data folders without __init__.py (types, examples, their scripts) ship as data of the nearest package."""
    data: dict[str, list[str]] = {}
    for folder in CODE_FOLDERS:
        base = ROOT / folder
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.suffix == ".pyc" or "__pycache__" in path.parts:
                continue
            if path.suffix == ".py" and (path.parent / "__init__.py").exists():
                continue  # a module of its package; a .py elsewhere (a blueprint's script artifact) is data
            owner = path.parent
            while not (owner / "__init__.py").exists() and owner != base:
                owner = owner.parent
            pkg = "tempano." + ".".join(owner.relative_to(ROOT).parts)
            data.setdefault(pkg, []).append(str(path.relative_to(owner)))
    return data


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir, package_data=_data_dirs())
