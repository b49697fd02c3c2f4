"""A catalogue of bad inputs. Each must be refused at the door by latentzoo's own validation,
with a ValueError or TypeError whose message names the offending argument (so not by NumPy,
SciPy or PyTensor internals further down)."""

from __future__ import annotations

import numpy as np
import pytest

from latentzoo.inference import ConvergenceWarning, fit
from latentzoo.models import ThreeCoins

SEED = "1111110000"
GOOD_INIT = {"pi": 0.5, "p": 0.7, "q": 0.3}

# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------
BAD_DATA = [
    ("not binary", [0, 2], ValueError, r"flips must be 0 \(tails\) or 1 \(heads\), found \[2\]"),
    ("negative", [0, -1, 1], ValueError, r"flips must be 0 .* found \[-1\]"),
    ("fraction", [0.0, 0.5], ValueError, r"flips must be 0 .* found \[0.5\]"),
    ("nan", [0.0, np.nan], ValueError, "data contains NaN"),
    ("inf", [1.0, np.inf], ValueError, "data contains NaN or infinite"),
    ("empty list", [], ValueError, "data must contain at least one trial"),
    ("empty 2-D", np.zeros((0, 3)), ValueError, "data must contain at least one trial"),
    ("no flips per trial", np.zeros((3, 0)), ValueError, "each trial must have at least one flip"),
    ("3-D", np.zeros((2, 2, 2)), ValueError, r"data must be 1-D .* or 2-D .* shape \(2, 2, 2\)"),
    ("text with other characters", "1121", ValueError, "data given as text must contain only the characters 0 and 1"),
    ("empty text", "", ValueError, "data given as text"),
    ("list of strings", ["1", "0"], TypeError, "data must be numeric 0/1 flips"),
    ("object array", np.array([0, "a"], dtype=object), TypeError, "data must be numeric 0/1 flips"),
    ("complex", np.array([0, 1j]), TypeError, "data must be numeric 0/1 flips"),
    ("None", None, TypeError, "data must be numeric 0/1 flips"),
    ("ragged", [[0, 1], [1]], TypeError, "data must be an array of 0/1 flips"),
    ("dict", {"flips": [0, 1]}, TypeError, "data must be numeric"),
]


@pytest.mark.parametrize("data, error, match", [case[1:] for case in BAD_DATA], ids=[case[0] for case in BAD_DATA])
def test_bad_data_is_refused(data, error, match):
    with pytest.raises(error, match=match):
        ThreeCoins().check_data(data)
    # every entry point validates the same way
    with pytest.raises(error, match=match):
        fit(ThreeCoins(), data, backend="em", random_seed=0)


@pytest.mark.parametrize(
    "data, expected",
    [
        ("1 1 0", [1, 1, 0]),
        ("1,0,1", [1, 0, 1]),
        ([True, False], [1, 0]),
        (np.array([1.0, 0.0]), [1, 0]),
        ([[1, 0, 1], [0, 0, 0]], [[1, 0, 1], [0, 0, 0]]),
    ],
)
def test_good_data_forms_are_accepted(data, expected):
    flips = ThreeCoins().check_data(data).flips
    np.testing.assert_array_equal(flips, expected)
    assert not flips.flags.writeable


# ----------------------------------------------------------------------------------------
# model parameters
# ----------------------------------------------------------------------------------------
BAD_MODELS = [
    ("negative prior", {"pi_prior": (-1, 1)}, ValueError, "pi_prior must be a pair"),
    ("zero prior", {"p_prior": (0, 1)}, ValueError, "p_prior must be a pair"),
    ("nan prior", {"q_prior": (np.nan, 1)}, ValueError, "q_prior must be a pair"),
    ("inf prior", {"q_prior": (1, np.inf)}, ValueError, "q_prior must be a pair"),
    ("three numbers", {"q_prior": (1, 1, 1)}, ValueError, "q_prior must be a pair"),
    ("one number", {"q_prior": (1,)}, ValueError, "q_prior must be a pair"),
    ("scalar prior", {"p_prior": 2.0}, TypeError, "p_prior must be a pair"),
    ("non-numeric prior", {"q_prior": ("a", "b")}, TypeError, "q_prior must be a pair"),
    ("string prior", {"q_prior": "12"}, TypeError, "q_prior must be a pair"),
    ("None prior", {"pi_prior": None}, TypeError, "pi_prior must be a pair"),
    ("pi = 0", {"pi": 0}, ValueError, r"pi must lie in \(0, 1\)"),
    ("pi = 1", {"pi": 1.0}, ValueError, r"pi must lie in \(0, 1\)"),
    ("pi > 1", {"pi": 1.5}, ValueError, r"pi must lie in \(0, 1\)"),
    ("pi nan", {"pi": float("nan")}, ValueError, r"pi must lie in \(0, 1\)"),
    ("pi text", {"pi": "0.5"}, TypeError, "pi must be a number"),
    ("pi bool", {"pi": True}, TypeError, "pi must be a number"),
    ("pi list", {"pi": [0.5]}, TypeError, "pi must be a number"),
]


@pytest.mark.parametrize("kwargs, error, match", [case[1:] for case in BAD_MODELS], ids=[case[0] for case in BAD_MODELS])
def test_bad_model_parameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        ThreeCoins(**kwargs)


# ----------------------------------------------------------------------------------------
# init
# ----------------------------------------------------------------------------------------
BAD_INITS = [
    ("value above 1", {"pi": 0.5, "p": 1.2, "q": 0.3}, ValueError, r"init\['p'\] must lie in \(0, 1\)"),
    ("value 0", {"pi": 0.0, "p": 0.2, "q": 0.3}, ValueError, r"init\['pi'\] must lie in \(0, 1\)"),
    ("value not a number", {"pi": 0.5, "p": "x", "q": 0.3}, TypeError, r"init\['p'\] must be a number"),
    ("missing key", {"pi": 0.5, "p": 0.2}, ValueError, r"init must have exactly the keys .* missing \['q'\]"),
    ("extra key", {**GOOD_INIT, "r": 0.1}, ValueError, r"unexpected \['r'\]"),
    ("int", 3, TypeError, "init must be a strategy name or a dict"),
    ("list", [0.5, 0.5, 0.5], TypeError, "init must be a strategy name or a dict"),
    ("unknown strategy", "kmeans", ValueError, "init strategy must be 'random', 'prior' or a dict"),
]


@pytest.mark.parametrize("backend", ["em", "gibbs"])
@pytest.mark.parametrize("init, error, match", [case[1:] for case in BAD_INITS], ids=[case[0] for case in BAD_INITS])
def test_bad_init_is_refused(backend, init, error, match):
    options = {"n_init": 1} if backend == "em" else {"draws": 5, "tune": 0, "chains": 1}
    with pytest.raises(error, match=match):
        fit(ThreeCoins(), SEED, backend=backend, random_seed=0, init=init, progressbar=False, **options)


def test_init_dict_with_several_restarts_is_refused():
    with pytest.raises(ValueError, match="n_init > 1 restarts from the same init dict"):
        fit(ThreeCoins(), SEED, backend="em", random_seed=0, init=GOOD_INIT, n_init=2)
    # and it works with one restart, starting where it was told (one EM step from GOOD_INIT
    # lands on the ridge heads_prob = 0.6)
    with pytest.warns(ConvergenceWarning, match="EM did not converge in 1 iterations"):
        idata = fit(ThreeCoins(), SEED, backend="em", random_seed=0, init=GOOD_INIT, n_init=1, max_iter=1, progressbar=False)
    assert idata.fit_history["log_posterior"].values[0, 0] == pytest.approx(
        ThreeCoins().log_likelihood(SEED, GOOD_INIT).sum(), rel=1e-12
    )


@pytest.mark.pymc
def test_map_init_must_be_a_strategy_or_a_dict_of_valid_params():
    with pytest.raises(ValueError, match="init strategy must be 'random', 'prior' or a dict"):
        fit(ThreeCoins(), SEED, backend="map", init="bogus")
    with pytest.raises(TypeError, match="init must be a strategy name or a dict"):
        fit(ThreeCoins(), SEED, backend="map", init=3)
    with pytest.raises(ValueError, match=r"init\['q'\] must lie in \(0, 1\)"):
        fit(ThreeCoins(), SEED, backend="map", init={"pi": 0.5, "p": 0.5, "q": 2.0})


# ----------------------------------------------------------------------------------------
# options (all refused before any PyMC model is built or sampled)
# ----------------------------------------------------------------------------------------
BAD_OPTIONS = [
    ("em", {"n_init": 0}, ValueError, "n_init must be an int >= 1"),
    ("em", {"n_init": 2.0}, TypeError, "n_init must be an int"),
    ("em", {"tol": -1}, ValueError, "tol must be a finite number >= 0"),
    ("em", {"tol": float("nan")}, ValueError, "tol must be a finite number >= 0"),
    ("em", {"tol": float("inf")}, ValueError, "tol must be a finite number >= 0"),
    ("em", {"tol": "small"}, TypeError, "tol must be a number"),
    ("em", {"max_iter": 1.5}, TypeError, "max_iter must be an int"),
    ("em", {"max_iter": 0}, ValueError, "max_iter must be an int >= 1"),
    ("em", {"mle": "yes"}, TypeError, "mle must be True or False"),
    ("em", {"progressbar": 1}, TypeError, "progressbar must be True or False"),
    ("vb", {"n_init": -3}, ValueError, "n_init must be an int >= 1"),
    ("vb", {"draws": 0}, ValueError, "draws must be an int >= 1"),
    ("vb", {"tol": -1e-9}, ValueError, "tol must be a finite number >= 0"),
    ("gibbs", {"draws": 0}, ValueError, "draws must be an int >= 1"),
    ("gibbs", {"chains": -1}, ValueError, "chains must be an int >= 1"),
    ("gibbs", {"tune": -1}, ValueError, "tune must be an int >= 0"),
    ("gibbs", {"draws": True}, TypeError, "draws must be an int"),
    ("gibbs", {"check_mixing": "no"}, TypeError, "check_mixing must be True or False"),
    ("exact", {"draws": 0}, ValueError, "draws must be an int >= 1"),
    ("exact", {"chains": 0.5}, TypeError, "chains must be an int"),
    ("nuts", {"draws": 0}, ValueError, "draws must be an int >= 1"),
    ("nuts", {"chains": -1}, ValueError, "chains must be an int >= 1"),
    ("nuts", {"sampler": "foo"}, ValueError, r"sampler must be one of \['pymc', 'nutpie', 'numpyro', 'blackjax'\]"),
    ("nuts", {"target_accept": 1.5}, ValueError, r"target_accept must lie in \(0, 1\)"),
    ("nuts", {"target_accept": 0.0}, ValueError, "target_accept must be a positive number"),
    ("nuts", {"progressbar": "no"}, TypeError, "progressbar must be True or False"),
    ("pymc_gibbs", {"tune": -5}, ValueError, "tune must be an int >= 0"),
    ("advi", {"n_steps": 0}, ValueError, "n_steps must be an int >= 1"),
    ("advi", {"learning_rate": -0.1}, ValueError, "learning_rate must be a positive number"),
    ("fullrank_advi", {"tol": -1.0}, ValueError, "tol must be a finite number >= 0"),
    ("map", {"max_iter": 0}, ValueError, "max_iter must be an int >= 1"),
]


@pytest.mark.parametrize(
    "backend, options, error, match", BAD_OPTIONS, ids=[f"{b}-{next(iter(o))}={next(iter(o.values()))!r}" for b, o, _, _ in BAD_OPTIONS]
)
def test_bad_option_values_are_refused(backend, options, error, match):
    with pytest.raises(error, match=match):
        fit(ThreeCoins(), SEED, backend=backend, random_seed=0, **options)


def test_unknown_option_name_is_refused():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['n_iter'\] for backend 'em'; valid options: .*'max_iter'"):
        fit(ThreeCoins(), SEED, backend="em", n_iter=10)


@pytest.mark.parametrize("backend", ["foo", "EM", None, 3])
def test_unknown_backend_is_refused(backend):
    with pytest.raises(ValueError, match=r"unknown backend .*; valid backends for ThreeCoins: \['em'"):
        fit(ThreeCoins(), SEED, backend=backend)


@pytest.mark.parametrize(
    "seed, error, match",
    [
        (-1, ValueError, "random_seed must be a non-negative int"),
        (1.5, TypeError, "random_seed must be a non-negative int or None, got float"),
        ("1", TypeError, "random_seed must be a non-negative int or None, got str"),
        (True, TypeError, "random_seed must be a non-negative int or None, got bool"),
    ],
)
def test_bad_random_seed_is_refused(seed, error, match):
    with pytest.raises(error, match=match):
        fit(ThreeCoins(), SEED, backend="em", random_seed=seed)


def test_em_map_with_prior_concentration_below_one_points_to_mle():
    model = ThreeCoins(p_prior=(0.5, 0.5))
    with pytest.raises(ValueError, match="prior on 'p' has a concentration below 1.*use mle=True"):
        fit(model, SEED, backend="em", random_seed=0)
    # the advice works: maximum likelihood does not use the prior
    idata = fit(model, SEED, backend="em", random_seed=0, mle=True, progressbar=False)
    assert float(idata.posterior["heads_prob"].values[0, 0]) == pytest.approx(0.6, abs=1e-6)


# ----------------------------------------------------------------------------------------
# model-level helpers
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, size, error, match",
    [
        ({"pi": 0.5, "p": 0.5}, 3, ValueError, r"missing \['q'\]"),
        ("params", 3, TypeError, "params must be a dict"),
        ({"pi": 0.5, "p": 0.5, "q": 1.5}, 3, ValueError, r"params\['q'\] must lie in \(0, 1\)"),
        ({"pi": 0.5, "p": 0.5, "q": 0.5}, 0, ValueError, "size must be a positive int"),
        ({"pi": 0.5, "p": 0.5, "q": 0.5}, (2, 3, 4), ValueError, "size must be a positive int or"),
    ],
)
def test_simulate_refuses_bad_arguments(params, size, error, match):
    with pytest.raises(error, match=match):
        ThreeCoins().simulate(params, size, rng=0)


def test_simulate_refuses_bad_rng():
    with pytest.raises(TypeError, match="rng must be an int seed, None or a numpy.random.Generator"):
        ThreeCoins().simulate(GOOD_INIT, 3, rng="seed")
    with pytest.raises(ValueError, match="non-negative"):
        ThreeCoins().simulate(GOOD_INIT, 3, rng=-2)


# -- tol = 0 and seeds (robustness round 2) ---------------------------------------------------
@pytest.mark.parametrize("backend", ["em", "vb"])
def test_tol_zero_runs_exactly_max_iter_iterations(backend):
    """As in scikit-learn and hmmlearn: tol=0 never stops early, and the run is not converged."""
    from latentzoo.inference import ConvergenceWarning, fit
    from latentzoo.inference.core import FitRecord
    from latentzoo.models import ThreeCoins

    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = fit(ThreeCoins(), "1111110000", backend=backend, tol=0, max_iter=7, n_init=2, random_seed=0,
                     progressbar=False)
    record = FitRecord.from_attrs(result.attrs)
    assert record.n_iter == 7 and not record.converged
    history = next(iter(result["fit_history"].data_vars.values())).values
    # every restart ran all 7 iterations: the history holds the objective at the start and after each
    assert np.isfinite(history).sum(axis=-1).tolist() == [8, 8]


def test_seeds_that_netcdf_cannot_store_are_refused_up_front(tmp_path):
    from latentzoo.inference import fit
    from latentzoo.models import ThreeCoins

    with pytest.raises(ValueError, match=r"random_seed must be below 2\*\*63"):
        fit(ThreeCoins(), "1111110000", backend="em", random_seed=2**63)
    largest = fit(ThreeCoins(), "1111110000", backend="em", random_seed=2**63 - 1, progressbar=False)
    largest.to_netcdf(tmp_path / "largest.nc")  # the largest accepted seed saves
