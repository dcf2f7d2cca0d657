"""Third-party templates (pinned tosca-parser, heat-translator sdists) compile or are refused as indexed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tempano.blueprints import BlueprintError, compile, load


def _corpus_module() -> ModuleType:
    path = Path(__file__).with_name("conformance_corpus.py")
    spec = importlib.util.spec_from_file_location("tempano_conformance_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = _corpus_module()
INDEX: dict[str, Any] = yaml.safe_load(CORPUS.INDEX.read_text())


@pytest.fixture(scope="session")
def corpus() -> Path:
    try:
        return Path(CORPUS.ensure_corpus())
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("TEMPANO_REQUIRE_CORPUS"):
            raise
        pytest.skip(f"conformance corpus unavailable ({exc}); run tests/blueprints/conformance_corpus.py")


def test_index_covers_the_whole_corpus(corpus: Path) -> None:
    listed = set(INDEX["compile"]) | set(INDEX["refuse"])
    assert set(CORPUS.templates(corpus)) == listed
    assert len(INDEX["compile"]) >= 40


@pytest.mark.parametrize("rel", INDEX["compile"])
def test_template_compiles(corpus: Path, rel: str) -> None:
    plan = compile(load(corpus / rel), has_operation=None)
    assert plan.workflows["install"].steps.keys() == plan.nodes.keys()


@pytest.mark.parametrize(("rel", "reason"), sorted(INDEX["refuse"].items()))
def test_template_is_refused_with_its_reason(corpus: Path, rel: str, reason: str) -> None:
    with pytest.raises(BlueprintError) as caught:
        compile(load(corpus / rel), has_operation=None)
    assert reason in str(caught.value)
    assert all(e.file and e.message for e in caught.value.errors)
