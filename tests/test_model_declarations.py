"""What the command line and the demo know about a model comes from the model's declarations
(``latentzoo.models.core.protocols``: ``DataFileFormat``, ``Demo``), never from its class or name.

A model added here, outside the package, joins the CLI's file reading and the demo's plan without
any edit to ``latentzoo.inference``.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import latentzoo.models as models
from latentzoo.inference.cli.demo import _demo_plan, demo_order
from latentzoo.inference.cli.input import load_data
from latentzoo.models import MODELS, ThreeCoins
from latentzoo.models.core.protocols import FEATURE_ROWS, TIME_SERIES, VALUES, DataFileFormat, Demo, DemoPlan

INFERENCE = Path(__file__).resolve().parents[1] / "inference"


@dataclass(frozen=True)
class RowsRecorder(ThreeCoins):
    """A model that declares feature rows and hands its data back untouched (to see what the CLI read)."""

    name = "rows-recorder"
    data_file_format = FEATURE_ROWS

    def check_data(self, data):
        return data


@dataclass(frozen=True)
class ValuesRecorder(RowsRecorder):
    name = "values-recorder"
    data_file_format = VALUES


@dataclass(frozen=True)
class CostlyCoins(ThreeCoins):
    """Three coins with a demo plan of its own: no VB, a longer EM, and a large measured cost."""

    name = "costly-coins"

    def demo_plan(self):
        return DemoPlan(skips={"vb": "a reason printed by the demo"}, options={"em": {"n_init": 7}},
                        cost_seconds=1e6)


def test_every_registered_model_declares_its_data_file_format():
    # a file's columns are features for these; a series with its times for the state-space models;
    # flips, symbols and counts for the others
    feature_rows = {"gmm", "niw-gaussian", "gaussian-hmm", "bernoulli-mixture"}
    time_series = {"local-level"}
    for name, cls in MODELS.items():
        model = cls()
        assert isinstance(model, DataFileFormat)
        expected = FEATURE_ROWS if name in feature_rows else TIME_SERIES if name in time_series else VALUES
        assert model.data_file_format == expected, cls.__name__


@pytest.mark.parametrize("header", [True, False])
def test_a_new_model_declaring_feature_rows_gets_a_table(tmp_path, header):
    path = tmp_path / "data.csv"
    path.write_text(("speed\n" if header else "") + "1.5\n2.5\n4.0\n", encoding="utf-8")
    rows = load_data(str(path), RowsRecorder())
    values = load_data(str(path), ValuesRecorder())
    if header:  # the header names the feature
        assert isinstance(rows, pd.DataFrame) and list(rows.columns) == ["speed"]
        rows = rows.to_numpy()
    # feature rows: one column stays 2-D (N, 1); values: one column is flattened
    np.testing.assert_array_equal(rows, [[1.5], [2.5], [4.0]])
    np.testing.assert_array_equal(values, [1.5, 2.5, 4.0])


def test_a_new_models_ragged_file_reaches_it_as_text_only_when_it_reads_values(tmp_path):
    from latentzoo.inference.cli.input import UsageError

    path = tmp_path / "ragged.txt"
    path.write_text("1 2 3\n4 5\n", encoding="utf-8")
    assert load_data(str(path), ValuesRecorder()) == "1 2 3\n4 5"
    with pytest.raises(UsageError, match="line 2 has 2 value"):
        load_data(str(path), RowsRecorder())


def test_a_new_model_joins_the_demo_with_its_own_plan(monkeypatch):
    monkeypatch.setattr(models, "MODELS", {**MODELS, CostlyCoins.name: CostlyCoins})
    assert isinstance(CostlyCoins(), Demo)
    _, data, names, reference, options, notes = _demo_plan("costly-coins", quick=True, all_backends=False)
    assert "vb" not in names and notes == ["vb left out of the demo: a reason printed by the demo"]
    assert options["em"] == {"n_init": 7}
    assert reference == "exact"  # exact is not skipped, so it stays the reference
    # costliest first (after models whose cost is not measured); the plain coins keep their smaller cost
    demo = {name: cls() for name, cls in models.MODELS.items() if isinstance(cls(), Demo)}
    measured = [name for name in demo_order(demo) if demo[name].demo_plan().cost_seconds is not None]
    assert measured[0] == "costly-coins" and measured.index("three-coins") > measured.index("niw-gaussian")


def test_demo_runs_unmeasured_models_first_and_skipping_exact_makes_nuts_the_reference():
    @dataclass(frozen=True)
    class NoExact(ThreeCoins):
        def demo_plan(self):
            return DemoPlan(skips={"exact": "why"})

    order = demo_order({"coins": ThreeCoins(), "unmeasured": NoExact()})
    assert order == ["unmeasured", "coins"]
    assert ThreeCoins().demo_plan().cost_seconds is not None
    _, _, names, reference, _, notes = _demo_plan("gaussian-hmm", quick=True, all_backends=True)
    assert reference == "nuts_reference" and "exact" not in names and "2^100" in notes[0]


def test_a_model_can_name_the_demos_reference(monkeypatch):
    """BernoulliMixture's NUTS runs take minutes on the digits: its plan skips them and makes its
    Gibbs sampler the reference, and no long NUTS run is planned."""
    _, _, names, reference, options, notes = _demo_plan("bernoulli-mixture", quick=False, all_backends=False)
    assert reference == "gibbs" and "gibbs" in names
    assert not {"nuts", "nuts_reference", "exact"} & set(names)
    assert any(note.startswith("nuts left out of the demo") for note in notes)


# the shipped data sets are data, not a model (the explorer's GMM view loads Old Faithful)
ALLOWED = ("latentzoo.models.core", "latentzoo.models.ops", "latentzoo.models.datasets")


def concrete_model_imports(source: str, package: str) -> list[str]:
    """``from ... import ...`` statements of ``source`` (a module of ``package``) that reach a
    model class: anything under latentzoo.models but its core, its Ops, its data sets and the
    MODELS registry."""
    offenders = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            names = {alias.name for alias in node.names}
            if module.startswith("latentzoo.models") and not module.startswith(ALLOWED) and not (
                module == "latentzoo.models" and names <= {"MODELS", "datasets"}
            ):
                offenders.append(f"from {module} import {', '.join(sorted(names))}")
    return offenders


def test_inference_imports_no_concrete_model():
    """inference/ may import the models' core (protocols, conjugate families, plotting helpers),
    their Ops and the MODELS registry, never a model class: everything else it learns from the
    protocols."""
    offenders = []
    for path in sorted(INFERENCE.rglob("*.py")):
        package = ".".join(("latentzoo", *path.relative_to(INFERENCE.parent).parts[:-1]))
        offenders += [f"{path.name}: {line}" for line in concrete_model_imports(path.read_text(encoding="utf-8"), package)]
    assert offenders == []


def test_the_import_scan_can_fail():
    source = ("from latentzoo.models.hmm.gaussian import GaussianHMM\n"
              "from ...models.gaussian.data import GaussianObservations\n"
              "from ...models.core.protocols import Model\n"
              "from latentzoo.models import MODELS\n")
    assert concrete_model_imports(source, "latentzoo.inference.cli") == [
        "from latentzoo.models.hmm.gaussian import GaussianHMM",
        "from latentzoo.models.gaussian.data import GaussianObservations",
    ]
