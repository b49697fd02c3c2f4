"""The model protocols and the typed fit record: the two seams a newcomer reads.

The tiny model in ``latentzoo.models.core.protocols``'s docstring is run here as written, so the
example cannot drift from the code; its posterior is Beta(a + heads, b + tails) in closed form.
"""

import inspect
import math
import re
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from latentzoo.inference import BACKENDS, ConvergenceWarning, applicable_backends, fit
from latentzoo.inference.core import FitRecord
from latentzoo.models import MODELS
from latentzoo.models.core import protocols

INFERENCE = Path(__file__).resolve().parents[1] / "inference"
FLIPS = [1, 1, 1, 0]  # with the example's Beta(2, 2) prior: posterior Beta(5, 3)


@pytest.fixture(scope="module")
def coin():
    """The docstring's example model, executed from the docstring itself."""
    doc = protocols.__doc__
    code = doc.split(".. code-block:: python", 1)[1].split("``tests/test_protocols.py``", 1)[0]
    code = code.split("\ncoin = Coin(", 1)[0]  # the class only; the tests below make the calls
    namespace = {"__name__": "protocol_example"}
    exec(compile(textwrap.dedent(code), "protocols-example", "exec"), namespace)
    return namespace["Coin"](a=2.0, b=2.0)


def test_example_model_gets_every_backend_its_protocols_allow(coin):
    assert protocols.capability_names(coin) == ["Model", "ConjugateEStep", "ConjugateSweep", "ExactlySolvable"]
    offered = applicable_backends(coin)
    assert {"em", "gibbs", "exact", "nuts", "advi", "fullrank_advi", "map"} <= set(offered)
    assert "vb" not in offered  # no MeanField methods
    with pytest.raises(ValueError, match="lacks MeanField"):
        fit(coin, FLIPS, backend="vb")


def test_example_model_matches_the_closed_form_posterior(coin):
    posterior = stats.beta(5, 3)
    em = fit(coin, FLIPS, backend="em", random_seed=0)
    assert float(em.posterior["theta"].values.squeeze()) == pytest.approx((5 - 1) / (5 + 3 - 2), abs=1e-6)
    # log p(flips) = log B(5, 3) - log B(2, 2) for this sequence of flips
    exact = fit(coin, FLIPS, backend="exact", random_seed=0, draws=20_000)
    record = FitRecord.from_attrs(exact.posterior.attrs)
    assert record.objective_name == "log-evidence"
    assert record.objective == pytest.approx(special.betaln(5, 3) - special.betaln(2, 2), rel=1e-12)
    for backend, options in (("exact", {"draws": 20_000}), ("gibbs", {"draws": 2000, "chains": 2})):
        draws = fit(coin, FLIPS, backend=backend, random_seed=1, **options).posterior["theta"].values.ravel()
        standard_error = posterior.std() / math.sqrt(draws.size)
        assert abs(draws.mean() - posterior.mean()) < 5 * standard_error, backend
        assert draws.std() == pytest.approx(posterior.std(), rel=0.05), backend


@pytest.mark.pymc
def test_example_model_through_pymc(coin):
    result = fit(coin, FLIPS, backend="nuts", random_seed=2, draws=1000, tune=500, chains=2, progressbar=False)
    draws = result.posterior["theta"].values.ravel()
    assert abs(draws.mean() - 5 / 8) < 0.03
    record = FitRecord.from_attrs(result.posterior.attrs)
    # PyMC back-ends split the wall time into compiling and sampling
    assert record.compile_s >= 0 and 0 < record.run_s <= record.runtime_s
    assert record.compile_s + record.run_s == pytest.approx(record.runtime_s, rel=1e-9)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_offers_exactly_what_the_protocols_say(name):
    model = MODELS[name]()
    offered = set(applicable_backends(model))
    for backend, spec in BACKENDS.items():
        satisfied = all(isinstance(model, protocol) for protocol in (protocols.Model, *spec.requires))
        assert (backend in offered) == satisfied, backend
    assert isinstance(model, protocols.Model)


def test_protocols_have_no_probes_by_name():
    """Capabilities are protocols: no back-end, the comparison or the CLI looks hooks up by name."""
    for path in INFERENCE.rglob("*.py"):
        text = path.read_text()
        assert ".supports(" not in text, path.name
        # (the chunked adapter's __getattr__ forwards to its model: delegation, not a probe)
        for probe in ("getattr(model", "getattr(comparison.model", "hasattr(model", "hasattr(comparison.model",
                      "hasattr(self.model"):
            assert probe not in text, (path.name, probe)


#: what latentzoo.inference reaches on a model that is not a protocol member: the wrapped model of
#: the chunked (Dask) adapter, itself a model
NOT_MODEL_METHODS = {"model"}


def called_on_models(text: str) -> set[str]:
    """Names used as ``model.<name>`` (also ``self.model.``, ``comparison.model.``) in source text."""
    return set(re.findall(r"(?<![\w])model\.(\w+)", text))


def declared_members() -> set[str]:
    members = set()
    for name in protocols.__all__:
        protocol = getattr(protocols, name)
        if isinstance(protocol, type) and getattr(protocol, "_is_protocol", False) and protocol is not protocols.ComponentFamily:
            members |= {member for member in vars(protocol) if not member.startswith("_")}
            members |= set(getattr(protocol, "__annotations__", {}))
    return members


def test_every_model_method_inference_calls_is_declared_on_a_protocol():
    called = set()
    for path in INFERENCE.rglob("*.py"):
        called |= called_on_models(path.read_text())
    assert {"check_params", "derived", "latent_posterior", "objective_scale", "pymc_initial_point"} <= called
    assert sorted(called - declared_members() - NOT_MODEL_METHODS) == []


def test_the_declaration_check_can_fail():
    """A call of an undeclared hook is caught (the scan sees it, the protocols do not have it)."""
    called = called_on_models("x = self.model.secret_hook(data) + model.log_prior(p) + pm_model.value_vars")
    assert called == {"secret_hook", "log_prior"}
    assert called - declared_members() == {"secret_hook"}


#: the protocols each registered model must satisfy: the back-ends it is meant to get (a new
#: model is one line)
EXPECTED_CAPABILITIES = {
    "three-coins": {"ConjugateEStep", "ConjugateSweep", "BatchedSweep", "MeanField", "ExactlySolvable",
                    "IdentificationRule", "Demo", "Pictured", "ChunkedStats"},
    "dice-hmm": {"ConjugateEStep", "ConjugateSweep", "MeanField", "ExactlySolvable", "Demo", "Pictured", "ChunkedStats"},
    "categorical-hmm": {"ConjugateEStep", "ConjugateSweep", "MeanField", "ExactlySolvable", "Pictured", "ChunkedStats"},
    "niw-gaussian": {"ConjugateEStep", "ExactlySolvable", "DataDrivenPrior", "Demo", "Pictured"},
    "gmm": {"ConjugateEStep", "ConjugateSweep", "HardAssignments", "MeanField", "DataDrivenPrior", "Demo", "Pictured",
            "ChunkedStats", "ChunkValidation", "ChunkedDataPrior", "SelectableSize"},
    "gaussian-hmm": {"ConjugateEStep", "ConjugateSweep", "MeanField", "ExactlySolvable", "DataDrivenPrior", "Demo",
                     "Pictured", "ChunkedStats", "ChunkedDataPrior"},
    "bernoulli-mixture": {"ConjugateEStep", "ConjugateSweep", "HardAssignments", "MeanField", "ExactlySolvable",
                          "Demo", "Pictured", "ChunkedStats", "ChunkValidation", "SelectableSize"},
    "poisson-hmm": {"ConjugateEStep", "ConjugateSweep", "MeanField", "ExactlySolvable", "Demo", "ChunkedStats"},
    "poisson-mixture": {"ConjugateEStep", "ConjugateSweep", "HardAssignments", "MeanField", "ExactlySolvable", "Demo",
                        "ChunkedStats", "ChunkValidation", "SelectableSize"},
    "local-level": {"ConjugateEStep", "ConjugateSweep", "MeanField", "ExactlySolvable", "DataDrivenPrior", "Demo",
                    "Pictured"},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_satisfies_what_its_backends_require(name):
    model = MODELS[name]()
    assert {"Model", *EXPECTED_CAPABILITIES[name]} <= set(protocols.capability_names(model))
    for backend in applicable_backends(model):
        for protocol in (protocols.Model, *BACKENDS[backend].requires):
            members = {member for member in vars(protocol) if not member.startswith("_")}
            members |= set(getattr(protocol, "__annotations__", {}))
            missing = [member for member in members if not hasattr(model, member)]
            assert missing == [], (backend, protocol.__name__)


def test_example_model_gets_the_model_defaults(coin):
    """The tiny model inherits LatentModel's defaults of the core protocol: an init dict is
    checked by name, a tolerance is per flip, nothing derived."""
    assert coin.param_names == ("theta",) and coin.derived({"theta": 0.5}) == {} and coin.latent_dims() == {}
    assert coin.objective_scale(coin.check_data(FLIPS)) == 4 and coin.objective_round_off(FLIPS) == 0.0
    result = fit(coin, FLIPS, backend="em", random_seed=0, init={"theta": 0.3})
    assert float(result.posterior["theta"].values.squeeze()) == pytest.approx(4 / 6, abs=1e-6)
    with pytest.raises(ValueError, match=r"init must have exactly the keys \['theta'\]"):
        fit(coin, FLIPS, backend="em", random_seed=0, init={"p": 0.3})
    with pytest.raises(ValueError, match=r"init\['theta'\] must be finite"):
        fit(coin, FLIPS, backend="em", random_seed=0, init={"theta": float("nan")})


def test_register_refuses_hook_names():
    from latentzoo.inference.registry import register

    with pytest.raises(TypeError, match="protocol classes"):
        register("broken", requires=("expected_stats",), kind="point", description="")


# -- the fit record ------------------------------------------------------------------------------
def test_record_round_trips_through_attrs():
    record = FitRecord(converged=False, n_iter=7, point_estimate=True, objective=-3.5, objective_name="log-posterior",
                       objective_spread=0.25, run_s=1.5, runtime_s=2.0, warnings=("ConvergenceWarning: a", "UserWarning: b"),
                       backend="em", random_seed=3)
    attrs = record.to_attrs()
    assert attrs["converged"] == 0 and "compile_s" not in attrs  # NaN fields are left out
    assert FitRecord.from_attrs(attrs) == record


def test_record_refuses_foreign_attrs():
    with pytest.raises(ValueError, match="no latentzoo fit record.*converged"):
        FitRecord.from_attrs({"n_iter": 3})


def test_fit_records_objective_timing_and_warnings():
    from latentzoo.models import ThreeCoins

    trials = [[1, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 0], [0, 1, 0, 0]]  # EM needs many steps here
    with pytest.warns(ConvergenceWarning, match="did not converge"):  # still shown to the user
        result = fit(ThreeCoins(), trials, backend="em", random_seed=0, max_iter=2, n_init=2)
    record = FitRecord.from_attrs(result.attrs)
    assert record == FitRecord.from_attrs(result.posterior.attrs)
    assert not record.converged and record.n_iter == 2
    assert record.objective_name == "log-posterior" and np.isfinite(record.objective)
    assert any(w.startswith("ConvergenceWarning: EM did not converge") for w in record.warnings)
    assert math.isnan(record.compile_s) and record.run_s == record.runtime_s > 0
    assert record.backend == "em" and record.random_seed == 0
    # the best restart's final objective is the recorded one
    history = result["fit_history"]["log_posterior"].values
    finals = [row[np.isfinite(row)][-1] for row in history]
    assert record.objective == pytest.approx(max(finals), rel=1e-12)
    assert record.objective_spread == pytest.approx(max(finals) - min(finals), abs=1e-9) and record.objective_spread > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = fit(ThreeCoins(), "1111110000", backend="em", random_seed=0)
    assert FitRecord.from_attrs(quiet.attrs).warnings == ()


def test_every_backend_documents_its_record_fields():
    """A new back-end's author learns what to emit from FitRecord alone."""
    documented = inspect.getdoc(FitRecord)
    for name in ("converged", "n_iter", "point_estimate", "objective", "objective_name", "objective_spread",
                 "run_s", "compile_s", "runtime_s", "warnings"):
        assert f"{name} :" in documented, name


def test_readme_shows_the_same_tiny_model():
    """The design page of the docs (docs/contributing/design.md, once the README's Design
    section) repeats the docstring's example; this test keeps them equal."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "contributing" / "design.md").read_text()
    readme_code = readme.split("```python\nfrom dataclasses import dataclass", 1)[1].split("```", 1)[0]
    doc_code = textwrap.dedent(protocols.__doc__.split(".. code-block:: python", 1)[1].split("``tests/test_protocols.py``", 1)[0])
    assert ("from dataclasses import dataclass" + readme_code).strip() == doc_code.strip()


def test_the_hidden_markov_models_and_only_they_decode_states():
    decoders = {name for name in MODELS if isinstance(MODELS[name](), protocols.HiddenStates)}
    assert decoders == {"dice-hmm", "categorical-hmm", "gaussian-hmm", "poisson-hmm"}
