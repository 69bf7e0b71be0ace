"""Layers point down: every import between seqrec's packages goes to a lower level, so there is no cycle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "seqrec"
LEVELS = {
    "seqrec.errors": -1,
    "seqrec": 0, "seqrec.config": 0, "seqrec.io": 0, "seqrec.hashing": 0,
    "seqrec.cli": 1, "seqrec.storage": 1, "seqrec.runfolder": 1,
    "seqrec.metrics": 1, "seqrec.topk": 1,
    "seqrec.data": 2,
    "seqrec.logstats": 3,  # the log's statistics that the baselines and the ranking stage both read
    # one layer: none of them imports another (ranking reads no baseline and never the network)
    "seqrec.baselines": 4, "seqrec.models": 4, "seqrec.ranking": 4, "seqrec.offline": 4,
    "seqrec.inference": 5,  # decoding: the network's scores into the ranking stage; never training
    "seqrec.training": 6, "seqrec.run": 6, "seqrec.report": 6, "seqrec.validate": 6,
    "seqrec.train": 7, "seqrec.evaluate": 7, "seqrec.similar": 7, "seqrec.synth": 7, "seqrec.predict_ddp": 7,
    "seqrec.predict": 8, "seqrec.serve": 8,
    "seqrec.api": 9,
}
"""Every module's layer (a package's modules share its layer)."""
LAZY = {("seqrec", "seqrec.api")}
"""The one import that goes up: `seqrec.load_run`, imported inside the package's __getattr__ on first use."""
NO_LIGHTNING = ("seqrec.models", "seqrec.ranking", "seqrec.inference", "seqrec.run", "seqrec.serve")


def unit(module: str) -> str:
    """The package (or top-level module) a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def imports() -> dict[str, set[str]]:
    """module -> every seqrec module or third-party top-level package it imports."""
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        out[name] = found
    return out


IMPORTS = imports()


@pytest.mark.parametrize("module", sorted(IMPORTS))
def test_every_import_goes_down(module):
    level = LEVELS.get(unit(module))
    assert level is not None, f"{module}: give its package a layer in LEVELS"
    for target in sorted(t for t in IMPORTS[module] if t.startswith("seqrec")):
        if unit(target) == unit(module) or (module, target) in LAZY:
            continue
        assert LEVELS[unit(target)] < level, f"{module} (layer {level}) imports {target} (layer {LEVELS[unit(target)]})"


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if unit(m) in NO_LIGHTNING))
def test_the_model_inference_and_service_run_without_lightning(module):
    assert not any(t.split(".")[0] in ("pytorch_lightning", "lightning") for t in IMPORTS[module]), module


def test_training_fits_rankers_only_in_its_callback_and_the_module_only_trains():
    fitting = {m for m in IMPORTS if unit(m) == "seqrec.training" and "seqrec.ranking.rankers" in IMPORTS[m]}
    assert fitting == {"seqrec.training.ranking_stage"}
    assert not any(t.startswith(("seqrec.ranking", "seqrec.inference")) for t in IMPORTS["seqrec.training.module"])


def test_features_are_built_only_inside_the_ranking_package():
    outside = {m for m in IMPORTS if unit(m) != "seqrec.ranking"}
    assert not {m for m in outside if "seqrec.ranking.features" in IMPORTS[m]}
    for m in outside:  # no candidates with hand-made feature columns
        assert "Candidates(" not in _source(m), m


def test_the_retired_blend_is_gone():
    assert not [m for m in IMPORTS if "Blend" in _source(m)]


def _source(module: str) -> str:
    path = ROOT.parent / Path(*module.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text(encoding="utf-8")


def test_the_walk_sees_the_packages_it_judges():
    assert {"seqrec.models.sasrec", "seqrec.inference.decode", "seqrec.training.module", "seqrec.run",
            "seqrec.ranking.features", "seqrec.training.ranking_stage", "seqrec.logstats"} <= set(IMPORTS)
    assert "seqrec.inference.decode" in IMPORTS["seqrec.run"]  # imports are read, not guessed
