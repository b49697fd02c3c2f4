"""The result contract for every model x every applicable back-end, PyMC back-ends included.

One table of models (a new model is one row). Each pair is fitted once, with short settings, in
one test (so that pytest-xdist's workers never fit the same pair twice), and its
``xarray.DataTree`` is checked against what the model declares: groups, variable names, dims,
coords, observed data, the pointwise log-likelihood and latent posteriors at the draws, the
support of every parameter (from its prior's family), and the typed fit record in the attrs;
ArviZ 1 summarises it directly (``az.summary``, ``az.ess``, ``az.rhat``, ``az.loo``); and it
round-trips through NetCDF with identical values. The map pairs also check accuracy, since
their fit is paid for anyway: started off EM's mode, map must climb to it (same point, same
log-posterior), on every model (in the default suite where its map pair is). This is the only layout test: the models'
own tests check values (log-likelihoods against scipy, posteriors against closed forms), which
makes comparing the result's groups with the model's methods here a complete check.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from latentzoo.inference import BACKENDS, applicable_backends, fit
from latentzoo.inference.core import FitRecord
from latentzoo.models import (BernoulliMixture, CategoricalHMM, DiceHMM, GaussianHMM, GaussianMixture, LocalLevel, PoissonHMM,
                              PoissonMixture, ThreeCoins)
from latentzoo.models.core.conjugate import Beta, Dirichlet, Gamma, InverseGamma, MaskedDirichlet, NormalInverseWishart
from latentzoo.models.core.protocols import DataDrivenPrior

from .conftest import EXPECTED_GROUPS, PYMC_BACKENDS, SEED_FLIPS
from .test_gmm import blobs
from .test_hmm import SEED_ROLLS
from .test_niw import MODEL as NIW_MODEL
from .test_niw import SMALL as NIW_DATA

GAUSSIAN_HMM_DATA = np.array([[-1.0, 0.2], [-1.3, 0.1], [np.nan, np.nan], [2.1, 1.4], [1.8, 1.0],
                              [2.4, 1.2], [-0.8, -0.1], [-1.1, 0.3]])

BERNOULLI_DATA = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, np.nan], [0, 1, 1], [1, 1, 0], [0, 0, 1]])

#: no missing count: a missing observation's pointwise log-likelihood is 0 in every draw, which
#: az.loo's Pareto smoothing refuses ("All tail values are the same")
POISSON_MIXTURE_DATA = np.array([1.0, 0.0, 2.0, 9.0, 11.0, 8.0])
POISSON_HMM_DATA = [np.array([2.0, 1.0, 3.0, 0.0]), np.array([9.0, np.nan, 12.0, 10.0])]

#: twelve years of a level that rises and falls, indexed by year (the years are the time
#: coordinate); nothing missing, for az.loo as above
LOCAL_LEVEL_DATA = pd.Series([10.2, 11.0, 9.6, 10.8, 12.1, 12.9, 12.2, 13.4, 11.8, 10.9, 11.5, 10.1],
                             index=np.arange(1990, 2002))

#: (row id, model, data): the data sets of the models' own PyMC tests where there are some, since
#: PyTensor compiles the observations into the graph: a new data set is a new compilation
MODELS = [
    ("three-coins", ThreeCoins(), SEED_FLIPS),
    ("gmm", GaussianMixture(3), blobs(20, seed=5)),
    ("dice-hmm", DiceHMM(), SEED_ROLLS),
    ("categorical-hmm-ragged", CategoricalHMM(2, 3), [[0, 1, 2, 2], [1, 1], [2, 0, 0]]),
    ("niw-gaussian", NIW_MODEL, NIW_DATA),
    # two sequences (one with a missing step), short enough for exact enumeration (2^8 paths)
    ("gaussian-hmm", GaussianHMM(2, 2), [GAUSSIAN_HMM_DATA[:5], GAUSSIAN_HMM_DATA[5:]]),
    # eight binary rows, one feature missing: small enough for the exact enumeration
    ("bernoulli-mixture", BernoulliMixture(2, 3), BERNOULLI_DATA),
    # the data of tests/test_poisson_hmm.py's exact and NUTS checks: two sequences, one missing step
    ("poisson-hmm", PoissonHMM(2, rates_prior=(2.0, 0.3), trans_prior=2.0), POISSON_HMM_DATA),
    # six counts, small enough for the exact enumeration
    ("poisson-mixture", PoissonMixture(2, rates_prior=(2.0, 0.3), weights_prior=1.5), POISSON_MIXTURE_DATA),
    # data-driven priors, resolved by fit
    ("local-level", LocalLevel(), LOCAL_LEVEL_DATA),
]
MODEL_ROWS = {row: (model, data) for row, model, data in MODELS}

#: short runs: the contract is about layout, not accuracy
SHORT = {
    "em": {"progressbar": False},
    "vb": {"draws": 40, "progressbar": False},
    "gibbs": {"draws": 30, "tune": 10, "chains": 2, "progressbar": False},
    "exact": {"draws": 40},
    "nuts": {"draws": 30, "tune": 30, "chains": 2, "cores": 1, "progressbar": False},
    "pymc_gibbs": {"draws": 20, "tune": 10, "chains": 2, "cores": 1, "progressbar": False},
    "advi": {"n_steps": 300, "draws": 40, "progressbar": False},
    "fullrank_advi": {"n_steps": 300, "draws": 40, "progressbar": False},
    "map": {"progressbar": False},
    "smc": {"draws": 40, "chains": 2, "cores": 1, "progressbar": False},
    "laplace": {"draws": 40, "progressbar": False},
    "pathfinder": {"n_paths": 2, "draws": 40, "draws_per_path": 40, "progressbar": False},
    "svgd": {"n_particles": 40, "n_steps": 50, "progressbar": False},  # az.loo needs 40 draws
}
SEED = 5

# Each costs 35-85 s of cold compiling on two cores (measured on a fresh clone), for a layout the
# default suite already checks on this model (nuts and map: the same PyMC declaration and
# to_idata) and with the same back-end on other models (ADVI, full-rank ADVI and PyMC's Gibbs on
# the three coins and the ragged categorical HMM, whose Op and explicit states are the dice
# HMM's): they run with `make test-slow`, which keeps the default suite inside its 15-minute
# budget on a fresh machine.
SLOW_PAIRS = {
    ("gaussian-hmm", "fullrank_advi"), ("gaussian-hmm", "pymc_gibbs"),
    ("gmm", "advi"), ("gmm", "fullrank_advi"), ("gmm", "pymc_gibbs"), ("dice-hmm", "pymc_gibbs"),
    ("gaussian-hmm", "advi"), ("niw-gaussian", "advi"), ("niw-gaussian", "fullrank_advi"),
    # the categorical HMM row runs both through the same forward-backward Op (a fresh-clone make
    # test took 14 min 39 s with them, too close to its 15 minutes)
    ("dice-hmm", "advi"), ("dice-hmm", "fullrank_advi"),
    # the GMM's MAP: tests/test_gmm.py::test_em_fixed_point_equals_pymc_map fits it by default
    ("gmm", "map"),
    # 21-26 s each warm; the Bernoulli mixture's marginalised declaration is checked by its nuts and
    # map pairs, and ADVI on it by tests/test_bernoulli_mixture.py::test_advi_is_near_the_map
    ("bernoulli-mixture", "advi"), ("bernoulli-mixture", "fullrank_advi"),
    # the Poisson HMM's marginalised declaration runs the Gaussian HMM's log-emission Op, whose
    # ADVI pairs are slow already; its nuts and map pairs check the declaration by default
    ("poisson-hmm", "advi"), ("poisson-hmm", "fullrank_advi"),
    # 28 s cold; the explicit states are the Gaussian HMM's (also slow), Poisson's observation only differs
    ("poisson-hmm", "pymc_gibbs"),
    # the mixture's marginalised declaration is the Bernoulli mixture's (whose ADVI pairs are slow)
    ("poisson-mixture", "advi"), ("poisson-mixture", "fullrank_advi"),
    # a fresh-clone make test took 22 min on a loaded machine with the new models' PyMC pairs: the
    # Poisson mixture's declaration is FiniteMixture's, whose nuts, map and pymc_gibbs run on the
    # Bernoulli mixture by default (and tests/test_poisson_mixture.py checks its PyMC log-density);
    # the Poisson HMM's map runs the Gaussian HMM's Op, whose map pair runs by default
    ("poisson-mixture", "nuts"), ("poisson-mixture", "map"), ("poisson-mixture", "pymc_gibbs"),
    ("poisson-hmm", "map"),
    # 11 s warm, 38 s cold at load 13 (the other local-level pairs take 1-4 s warm: the Kalman Op): the
    # only pair of the explicit-level declaration, whose log density tests/test_local_level.py checks
    # by default
    ("local-level", "pymc_gibbs"),
    # the four back-ends of issue 28 run by default on the three coins (and tests/test_more_backends.py
    # runs them on the NIW); every other model's pair compiles the same code path on another graph
    *((row, backend) for row, _, _ in MODELS if row != "three-coins"
      for backend in ("smc", "laplace", "pathfinder", "svgd")),
}


def _marks(row: str, backend: str) -> list:
    marks = [pytest.mark.pymc] if backend in PYMC_BACKENDS else []
    return marks + [pytest.mark.slow] if (row, backend) in SLOW_PAIRS else marks


PAIRS = [
    pytest.param(row, backend, id=f"{row}-{backend}", marks=_marks(row, backend))
    for row, model, _ in MODELS
    for backend in applicable_backends(model)
]


#: the three-coin row's fits of the PyMC back-ends, kept for the session: test_reproducibility's
#: first fit of each pair is this very fit (same row, settings and seed), and a PyMC fit costs
#: 2-5 s even with a warm compile cache. Nothing mutates a result
_KEPT: dict[tuple[str, str], xr.DataTree] = {}


def fit_options(row: str, backend: str) -> dict:
    """The contract's options of a pair: the SHORT settings, and for map a start off the EM mode."""
    options = dict(SHORT[backend])
    if backend == "map":
        # the map pair also checks accuracy (check_map_reaches_the_em_mode), from a start off
        # the EM mode: compiling is the cost of a PyMC fit, so one fit serves both checks
        model, data = MODEL_ROWS[row]
        options["init"] = map_start(model, data, em_point(row))
    return options


def fitted(row: str, backend: str) -> xr.DataTree:
    if (row, backend) in _KEPT:
        return _KEPT[row, backend]
    model, data = MODEL_ROWS[row]
    with warnings.catch_warnings():
        # short runs do not converge; the contract is about the layout
        warnings.simplefilter("ignore")
        idata = fit(model, data, backend=backend, random_seed=SEED, **fit_options(row, backend))
    if row == "three-coins" and backend in PYMC_BACKENDS:
        _KEPT[row, backend] = idata
    return idata


# ----------------------------------------------------------------------------------------
# map against em: the same mode of the same log-posterior
# ----------------------------------------------------------------------------------------
#: how far map's start is from the EM mode, as a fraction of the way to a random start (the
#: model's own initial_params): far enough that a map which does not move misses the mode by
#: 0.01-0.3 per element (a hundred times the tolerance below), near enough to stay in the EM
#: mode's basin (a random start lands in worse local optima: see map_start)
MAP_START_OFFSET = 0.2
#: L-BFGS-B and EM both stop on small changes, not at the exact mode: measured |map - em| <=
#: 3.2e-5 per element and |objective difference| <= 2e-9 relative on every row. The bounds
#: leave a margin of 30 (parameters) and 50 (objective)
MAP_PARAM_ATOL, MAP_PARAM_RTOL = 1e-3, 1e-3
MAP_OBJECTIVE_RTOL = 1e-7
#: rows whose MAP is a ridge, not a point: one flip per trial identifies only heads_prob =
#: pi p + (1 - pi) q, so map and em may stop at different points of equal log-posterior
MAP_RIDGE = {"three-coins": lambda p: p["pi"] * p["p"] + (1 - p["pi"]) * p["q"]}
_EM_POINTS: dict = {}


def em_point(row: str) -> xr.DataTree:
    """EM's (MAP-EM's) fit of a row, its best of the default restarts; memoised."""
    if row not in _EM_POINTS:
        model, data = MODEL_ROWS[row]
        _EM_POINTS[row] = fit(model, data, backend="em", random_seed=SEED, progressbar=False)
    return _EM_POINTS[row]


def point_of(idata: xr.DataTree, model) -> dict[str, np.ndarray]:
    return {name: idata.posterior[name].values[0, 0] for name in model.param_names}


def map_start(model, data, em: xr.DataTree) -> dict[str, np.ndarray]:
    """(1 - MAP_START_OFFSET) x the EM mode + MAP_START_OFFSET x a random start. A convex
    combination keeps every constraint (simplex rows, masks, positive rates, SPD covariances).
    A random start alone is not used: from one, map stopped in a worse local optimum than EM's
    best restart on four of the rows (GMM, both categorical HMMs, Gaussian HMM; measured)."""
    other = model.initial_params(model.check_data(data), np.random.default_rng(SEED))
    mode = point_of(em, model)
    return {name: (1 - MAP_START_OFFSET) * mode[name] + MAP_START_OFFSET * np.asarray(other[name], float)
            for name in model.param_names}


def map_em_failures(row: str, map_point: dict, map_objective: float) -> list[str]:
    """How a MAP point disagrees with EM's mode: element by element within
    MAP_PARAM_ATOL + MAP_PARAM_RTOL |em| (on a ridge, the identified quantity), and the
    log-posterior within MAP_OBJECTIVE_RTOL relative."""
    model, _ = MODEL_ROWS[row]
    em = em_point(row)
    em_params, em_objective = point_of(em, model), float(em.posterior.attrs["objective"])
    failures = []
    if abs(map_objective - em_objective) > MAP_OBJECTIVE_RTOL * max(1.0, abs(em_objective)):
        failures.append(f"log-posterior: map {map_objective:.8g} vs em {em_objective:.8g}")
    compared = ({"identified": (MAP_RIDGE[row](map_point), MAP_RIDGE[row](em_params))} if row in MAP_RIDGE
                else {name: (map_point[name], em_params[name]) for name in model.param_names})
    for name, (found, expected) in compared.items():
        off = np.abs(np.asarray(found, float) - expected)
        allowed = MAP_PARAM_ATOL + MAP_PARAM_RTOL * np.abs(expected)
        if np.any(off > allowed):
            failures.append(f"{name}: map off the em mode by up to {off.max():.3g} (allowed {allowed.max():.3g})")
    return failures


def check_map_reaches_the_em_mode(row: str, idata: xr.DataTree) -> None:
    """pm.find_MAP on the PyMC declaration climbs from off the EM mode to it: the same point and
    the same log-posterior (without Jacobian terms), so both back-ends maximise the same function."""
    model, _ = MODEL_ROWS[row]
    failures = map_em_failures(row, point_of(idata, model), float(idata.posterior.attrs["objective"]))
    assert not failures, "\n".join(failures)


def test_the_tables_cover_every_backend_and_model_kind():
    assert set(SHORT) == set(EXPECTED_GROUPS) == set(BACKENDS)
    covered = {backend for _, model, _ in MODELS for backend in applicable_backends(model)}
    assert covered == set(BACKENDS)


@pytest.mark.parametrize("row, backend", PAIRS)
def test_contract(row, backend, tmp_path):
    idata = fitted(row, backend)
    check_layout(row, backend, idata)
    check_values_match_the_model(row, idata)
    check_support(row, idata)
    check_fit_record(row, backend, idata)
    check_arviz_summarises(row, backend, idata)
    check_netcdf_round_trip(idata, tmp_path / f"{row}-{backend}.nc")
    if backend == "map":
        check_map_reaches_the_em_mode(row, idata)


def check_layout(row: str, backend: str, idata: xr.DataTree) -> None:
    """Groups, names, dims, coords and attrs as the model declares them."""
    model, data = MODEL_ROWS[row]
    assert isinstance(idata, xr.DataTree)
    assert set(idata.children) == EXPECTED_GROUPS[backend]

    checked = model.check_data(data)
    declared_dims = {**model.param_dims(), **model.derived_dims(), **model.latent_dims()}
    posterior = idata.posterior
    assert set(posterior.data_vars) == set(declared_dims)
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    for name, dims in declared_dims.items():
        assert posterior[name].dims == ("chain", "draw", *dims), name
    coords = model.coords(checked)
    for dim in {dim for dims in declared_dims.values() for dim in dims}:
        if dim in coords:
            np.testing.assert_array_equal(posterior.coords[dim].values, np.asarray(coords[dim]), err_msg=dim)
    np.testing.assert_array_equal(posterior.coords["chain"].values, np.arange(n_chain))
    np.testing.assert_array_equal(posterior.coords["draw"].values, np.arange(n_draw))
    point = BACKENDS[backend].kind == "point"
    assert ((n_chain, n_draw) == (1, 1)) == point

    for name in model.param_names:
        assert np.isfinite(posterior[name].values).all(), name
    (observed_name,) = idata.log_likelihood.data_vars
    log_lik = idata.log_likelihood[observed_name]
    assert log_lik.dims == ("chain", "draw", model.observation_dim)
    assert log_lik.shape[:2] == (n_chain, n_draw)
    assert log_lik.shape[2] == model.n_observations(checked)
    assert np.isfinite(log_lik.values).all()
    assert observed_name in idata.observed_data.data_vars
    if "sample_stats" in idata.children:
        for variable in idata.sample_stats.data_vars.values():
            assert variable.dims[:2] == ("chain", "draw")
    if "fit_history" in idata.children:
        for name, variable in idata.fit_history.data_vars.items():
            param = name.removeprefix("final_")
            if name.startswith("final_"):  # where each restart ended (EM): the parameter's dims
                assert variable.dims == ("restart", *model.param_dims()[param]), name
            else:
                assert variable.dims == ("restart", "iteration"), name
    if "variational" in idata.children:
        # q(theta)'s parameters, <factor>_<parameter> for every factor of the prior (a joint factor's
        # variables joined by "_"), over that factor's dims without sample dims
        param_dims = model.param_dims()
        factors = {"_".join(key) if isinstance(key, tuple) else key: key for key in _explicit(model, checked).prior()}
        seen = set()
        for name, variable in idata.variational.data_vars.items():
            (prefix,) = [prefix for prefix in factors if name.startswith(prefix + "_")]
            seen.add(prefix)
            names = factors[prefix] if isinstance(factors[prefix], tuple) else (factors[prefix],)
            assert set(variable.dims) <= {dim for key in names for dim in param_dims[key]}, name
            assert np.isfinite(variable.values).all(), name
        assert seen == set(factors)

    for node in (idata, *idata.children.values()):
        attrs = node.attrs
        assert attrs["backend"] == backend
        assert attrs["model"] == type(model).__name__
        assert attrs["inference_library"] == "latentzoo"
        assert attrs["random_seed"] == SEED
        assert attrs["point_estimate"] == int(point)
        assert attrs["converged"] in (0, 1)
        assert isinstance(attrs["n_iter"], int | np.integer) and attrs["n_iter"] >= 0
        assert isinstance(attrs["runtime_s"], float) and attrs["runtime_s"] > 0


def _explicit(model, checked):
    """The model as fit ran it: a data-driven prior resolved from the data."""
    return model.with_data_prior(checked) if isinstance(model, DataDrivenPrior) else model


def check_values_match_the_model(row: str, idata: xr.DataTree) -> None:
    """Observed data, the pointwise log-likelihood and latent posteriors are the model's own,
    evaluated at the result's draws (the model's methods are checked against scipy elsewhere).
    The model is the one fit ran: a state-space model's likelihood depends on its first state's
    prior, which may be data-driven."""
    model, data = MODEL_ROWS[row]
    checked = model.check_data(data)
    model = _explicit(model, checked)
    for name, (array, dims) in model.observed_data(checked).items():
        np.testing.assert_array_equal(idata.observed_data[name].values, array)
        assert idata.observed_data[name].dims == tuple(dims)
    posterior = idata.posterior
    draws = {name: posterior[name].values for name in model.param_names}
    (observed_name,) = idata.log_likelihood.data_vars
    np.testing.assert_allclose(idata.log_likelihood[observed_name].values, model.log_likelihood(checked, draws), rtol=1e-10)
    first = {name: values[0, 0] for name, values in draws.items()}
    for name, values in model.latent_posterior(checked, first).items():
        np.testing.assert_allclose(posterior[name].values[0, 0], values, atol=1e-12, err_msg=name)


def check_support(row: str, idata: xr.DataTree) -> None:
    """Every parameter lies where its prior family lives: probabilities in (0, 1) or [0, 1],
    simplex rows summing to one, rates finite and >= 0, covariance matrices symmetric positive definite."""
    model, data = MODEL_ROWS[row]
    posterior = idata.posterior
    for key, family in _explicit(model, model.check_data(data)).prior().items():
        if isinstance(family, Beta):
            values = posterior[key].values
            assert np.all((values >= 0) & (values <= 1)), key
        elif isinstance(family, Dirichlet | MaskedDirichlet):
            values = posterior[key].values
            assert np.all(values >= 0), key
            np.testing.assert_allclose(values.sum(-1), 1.0, atol=1e-9, err_msg=key)
        elif isinstance(family, Gamma):
            values = posterior[key].values
            assert np.all(np.isfinite(values) & (values >= 0)), key
        elif isinstance(family, InverseGamma):  # a variance
            values = posterior[key].values
            assert np.all(np.isfinite(values) & (values > 0)), key
        elif isinstance(family, NormalInverseWishart):
            covariances = posterior[key[1]].values
            np.testing.assert_allclose(covariances, np.swapaxes(covariances, -1, -2), atol=1e-10 * np.abs(covariances).max())
            assert np.all(np.linalg.eigvalsh(covariances) > 0), key
        else:
            raise AssertionError(f"no support check for the prior family {type(family).__name__} of {key}")


#: what each kind of back-end reports as its objective
#: smc reports its log-evidence estimate, laplace its Laplace log-evidence, svgd no objective
OBJECTIVE_NAMES = {"point": {"log-posterior", "log-likelihood"}, "variational": {"ELBO", "log-evidence", ""},
                   "exact": {"log-evidence"}, "sampler": {"", "log-evidence"}}


def check_fit_record(row: str, backend: str, idata: xr.DataTree) -> None:
    """The typed record reads back from the attrs of the root and of every group."""
    model, data = MODEL_ROWS[row]
    record = FitRecord.from_attrs(idata.attrs)
    for node in idata.children.values():
        assert FitRecord.from_attrs(node.attrs) == record
    assert record.backend == backend and record.random_seed == SEED
    assert record.objective_name in OBJECTIVE_NAMES[BACKENDS[backend].kind]
    assert np.isfinite(record.objective) == (record.objective_name != "")
    assert record.runtime_s > 0 and 0 < record.run_s <= record.runtime_s * (1 + 1e-9)
    assert np.isnan(record.compile_s) == (BACKENDS[backend].library == "latentzoo")
    # the recorded spec is the model the back-end ran: data-driven priors resolved
    assert idata.attrs["model_spec"] == repr(_explicit(model, model.check_data(data)))


def check_arviz_summarises(row: str, backend: str, idata: xr.DataTree) -> None:
    """az.summary, az.ess, az.rhat and az.loo work on the DataTree as it is."""
    model, _ = MODEL_ROWS[row]
    names = list(model.param_names)
    with warnings.catch_warnings():
        # a point estimate or a short run: ArviZ warns about too few draws
        warnings.simplefilter("ignore")
        summary = az.summary(idata, var_names=names)
    n_elements = sum(int(np.prod(idata.posterior[name].shape[2:])) for name in names)
    assert len(summary) == n_elements
    # the means are the posterior means, element by element, in ArviZ's row order
    means = np.concatenate([idata.posterior[name].mean(("chain", "draw")).values.ravel() for name in names])
    np.testing.assert_allclose(summary["mean"].to_numpy(float), means, atol=0.01 * np.abs(means).max() + 1e-9)
    if BACKENDS[backend].kind == "point":
        return
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        ess = az.ess(idata, var_names=names)
        try:
            loo = az.loo(idata)
        except ValueError as error:
            # Pathfinder's draws are importance-resampled (with replacement): where its Pareto
            # k-hat is large they repeat, and PSIS-LOO cannot fit a Pareto tail to repeated values
            # (the GaussianHMM's 40 draws held 9-16 distinct ones, depending on the machine's last
            # bits). Only that case is excused.
            flat = np.concatenate([idata.posterior[name].values.reshape(-1, int(np.prod(idata.posterior[name].shape[2:])))
                                   for name in names], axis=1)
            distinct = len(np.unique(flat, axis=0))
            assert backend == "pathfinder" and "tail values are the same" in str(error), error
            assert distinct <= flat.shape[0] // 2, f"loo failed with {distinct} distinct draws of {flat.shape[0]}: {error}"
            loo = None
    assert all(np.nanmin(ess[name].values) > 0 for name in names)
    assert loo is None or np.isfinite(loo.elpd)
    if idata.posterior.sizes["chain"] > 1:
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore")
            rhat = az.rhat(idata, var_names=names)
        # entries fixed by the model (a die's impossible faces) have no R-hat; the rest do
        assert all(np.isfinite(rhat[name].values).any() for name in names)


def check_netcdf_round_trip(idata: xr.DataTree, path) -> None:
    """DataTree.to_netcdf, then xarray.open_datatree and arviz.from_netcdf: identical values and attrs."""
    idata.to_netcdf(path)
    for loaded in (xr.open_datatree(path), az.from_netcdf(path)):
        try:
            assert set(loaded.children) == set(idata.children)
            for group in idata.children:
                xr.testing.assert_identical(loaded[group].to_dataset().load(), idata[group].to_dataset())
            assert dict(loaded.attrs) == dict(idata.attrs)
        finally:
            loaded.close()


def test_map_check_fails_off_the_em_mode():
    """check_map_reaches_the_em_mode's power: a MAP that does not move from its start, one at the
    EM mode shifted by 0.01, and the mode with half the data dropped all fail it. (The last is
    computed by EM, which the map pairs show to equal map: a PyMC fit here would cost 5-10 s.)"""
    model, data = MODEL_ROWS["dice-hmm"]
    em = em_point("dice-hmm")
    objective = float(em.posterior.attrs["objective"])
    assert not map_em_failures("dice-hmm", point_of(em, model), objective)  # EM itself passes
    assert map_em_failures("dice-hmm", map_start(model, data, em), objective)
    shifted = {name: value + 0.01 for name, value in point_of(em, model).items()}
    assert map_em_failures("dice-hmm", shifted, objective)
    # three coins, heads_prob identified: the first five trials only (six heads of ten -> five of five)
    model, data = MODEL_ROWS["three-coins"]
    dropped = fit(model, data[:5], backend="em", random_seed=SEED, progressbar=False)
    # its log-posterior on the whole data, as map's objective would be
    params = point_of(dropped, model)
    objective = float(model.log_likelihood(data, params).sum() + model.log_prior(params))
    failures = map_em_failures("three-coins", params, objective)
    assert any(f.startswith("identified") for f in failures) and any(f.startswith("log-posterior") for f in failures)


@pytest.mark.pymc
@pytest.mark.parametrize("row", ["gmm", "dice-hmm"])
def test_default_map_start_reaches_the_em_mode(row):
    """map's default start (init='em-start', the best of several short MAP-EM runs) finds the
    mode of EM's restarts on two models with worse local optima. The check's power: from the
    former default, one random start (init='random'), map stops in a worse optimum on the dice
    HMM (log-posterior 3.31 against EM's 8.17, measured), and map_em_failures says so."""
    model, data = MODEL_ROWS[row]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converged or not, the point is what is checked
        idata = fit(model, data, backend="map", random_seed=SEED, progressbar=False)
    assert idata.posterior.attrs["init"] == "em-start"
    check_map_reaches_the_em_mode(row, idata)
    if row == "dice-hmm":  # the cheaper of the two PyMC models (about 7 s against 11 s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old = fit(model, data, backend="map", init="random", random_seed=SEED, progressbar=False)
        failures = map_em_failures(row, point_of(old, model), float(old.posterior.attrs["objective"]))
        assert any(f.startswith("log-posterior") for f in failures), failures
