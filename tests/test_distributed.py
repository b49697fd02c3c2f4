"""EM, VB and Gibbs on Dask: a LocalCluster of two worker processes against the in-memory fits.

The chunked fit runs the model's own hooks per chunk and combines the statistics, so from the
same start it must reach the in-memory answer to round-off (1e-8 here). Data are offset far from
the origin and split into uneven chunks, so that a wrong combine rule of the centred GMM
statistics would show. One module-scoped cluster; tiny data.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from latentzoo.inference import fit, sequences  # noqa: E402
from latentzoo.inference import chunked  # noqa: E402
from latentzoo.models import CategoricalHMM, DiceHMM, GaussianHMM, GaussianMixture, NIWGaussian, ThreeCoins  # noqa: E402
from latentzoo.models.datasets import blobs  # noqa: E402
from latentzoo.models.gaussian.stats import component_stats  # noqa: E402
from latentzoo.models.core.stats_combine import combine_centred, sum_stats  # noqa: E402

from .conftest import Reference, agreement_failures, assert_no_failures, simulate_flips  # noqa: E402
from .test_agreement import niw_references, niw_update  # noqa: E402

PARAMS = ("weights", "means", "covs")
UNEVEN_ROWS = (70, 130, 1, 99, 300)  # 600 rows, one chunk of a single row


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def points():
    x, _ = blobs(600, centers=((-4.0, -2.0), (0.0, 4.0), (4.0, -2.0)), cluster_std=1.0, random_seed=11)
    return x + np.array([1e3, -2e3])  # far from the origin: centred statistics matter


def _chunked(x):
    return da.from_array(x, chunks=(UNEVEN_ROWS, 1))  # columns chunked too: rechunked to one


def _assert_same_params(result, expected, names, atol=1e-8):
    for name in names:
        np.testing.assert_allclose(result.posterior[name].values, expected.posterior[name].values, rtol=1e-8, atol=atol)


# -- the combine rule ------------------------------------------------------------------------------
def test_combined_chunk_stats_equal_the_statistics_of_all_rows(points):
    resp = np.random.default_rng(2).dirichlet(np.ones(3), size=len(points))
    bounds = np.cumsum((0,) + UNEVEN_ROWS)
    parts = [dict(zip(("counts", "means", "scatters"), component_stats(points[a:b], resp[a:b])))
             for a, b in zip(bounds[:-1], bounds[1:])]
    counts, means, scatters = component_stats(points, resp)
    combined = GaussianMixture(3).combine_stats(parts)
    np.testing.assert_allclose(combined["counts"], counts, rtol=1e-12)
    np.testing.assert_allclose(combined["means"], means, rtol=1e-12)
    np.testing.assert_allclose(combined["scatters"], scatters, rtol=1e-9)
    # a plain sum of centred scatters drops the between-chunk spread: far off
    wrong = sum_stats(parts)["scatters"]
    assert np.max(np.abs(wrong - scatters) / np.abs(scatters).max()) > 1e-2


def test_combine_keeps_empty_components_empty_and_ignores_their_placeholder_means():
    empty = {"counts": np.array([0.0, 2.0]), "means": np.zeros((2, 1)), "scatters": np.zeros((2, 1, 1))}
    full = {"counts": np.array([3.0, 0.0]), "means": np.array([[5.0], [0.0]]), "scatters": np.ones((2, 1, 1))}
    combined = combine_centred([empty, full])
    np.testing.assert_array_equal(combined["counts"], [3.0, 2.0])
    np.testing.assert_array_equal(combined["means"], [[5.0], [0.0]])
    with pytest.raises(ValueError, match="parts"):
        combine_centred([])


# -- em, vb, gibbs on the cluster: the same answers as in memory -------------------------------------
def test_gmm_em_and_vb_on_dask_equal_the_in_memory_fits(client, points):
    model = GaussianMixture(3)
    # few iterations: every one is a round trip to the workers (tens of milliseconds on 2 cores)
    for backend, options in (("em", {"n_init": 1, "tol": 1e-5}), ("vb", {"n_init": 1, "draws": 10, "tol": 1e-5})):
        expected = fit(model, points, backend, random_seed=5, progressbar=False, **options)
        result = fit(model, _chunked(points), backend, random_seed=5, progressbar=False, **options)
        if backend == "em":
            _assert_same_params(result, expected, PARAMS)
        else:  # the final q(theta), and draws from it with the same generator
            for name, variable in expected.variational.data_vars.items():
                np.testing.assert_allclose(result.variational[name].values, variable.values, rtol=1e-8, atol=1e-8)
        assert result.attrs["n_iter"] == expected.attrs["n_iter"]
        np.testing.assert_allclose(result.attrs["objective"], expected.attrs["objective"], rtol=1e-10)
        # lazy per-observation results: dask-backed, equal to the in-memory ones once computed
        assert result.log_likelihood["x"].chunks is not None
        np.testing.assert_allclose(result.log_likelihood["x"].values, expected.log_likelihood["x"].values, rtol=1e-9)
        np.testing.assert_allclose(
            result.posterior["responsibilities"].values, expected.posterior["responsibilities"].values, atol=1e-9
        )
        np.testing.assert_array_equal(result.observed_data["x"].values, points)


def test_gmm_hard_assignment_em_on_dask_without_a_client(points):
    model = GaussianMixture(3, m0=(1e3, -2e3), nu0=4.0, S0=((1.0, 0.0), (0.0, 1.0)))
    expected = fit(model, points, "em", random_seed=1, progressbar=False, assignment="hard", n_init=2)
    with dask.config.set(scheduler="sync"):  # before any client: Dask's local schedulers
        result = fit(model, _chunked(points), "em", random_seed=1, progressbar=False, assignment="hard", n_init=2,
                     per_observation="summary")
    _assert_same_params(result, expected, PARAMS)
    assert "log_likelihood" not in result.children and result.attrs["per_observation"] == "summary"
    totals = result["per_observation_summary"]
    np.testing.assert_allclose(totals["log_likelihood_sum"].values, expected.log_likelihood["x"].values.sum(-1))
    np.testing.assert_allclose(totals["responsibilities_sum"].values,
                               expected.posterior["responsibilities"].values.sum(2), rtol=1e-10)


def test_gibbs_on_dask_is_reproducible(client, points):
    model = GaussianMixture(3)
    options = {"draws": 8, "tune": 0, "chains": 1, "progressbar": False}
    first = fit(model, _chunked(points), "gibbs", random_seed=8, **options)
    again = fit(model, _chunked(points), "gibbs", random_seed=8, **options)
    _assert_same_params(again, first, PARAMS, atol=0)
    other = fit(model, _chunked(points), "gibbs", random_seed=9, **options)
    assert not np.allclose(other.posterior["means"].values, first.posterior["means"].values)


#: an explicit prior (the default one is data-driven), centred on the data's offset
GIBBS_MODEL = GaussianMixture(3, m0=(1e3, -2e3), nu0=4.0, S0=((1.0, 0.0), (0.0, 1.0)))
#: 2 chains x 300 draws: ESS above the floor of 400 on every element
GIBBS_OPTIONS = {"draws": 300, "tune": 50, "chains": 2, "progressbar": False}


def _by_first_feature(means: np.ndarray) -> np.ndarray:
    """The component order that sorts each draw's (or the reference's) means along feature 0."""
    return np.argsort(means[..., 0], axis=-1)


def near_exact_gibbs_references(points) -> dict[str, Reference]:
    """The posterior moments given the assignments at EM's mode, components sorted by their mean's
    first coordinate: each component's NIW update (scipy's inverse-Wishart moments, the mean's
    multivariate t) and the weights' Dirichlet (scipy). The blobs are far apart, so conditioning
    on the assignments moves these moments by a small fraction of a Monte-Carlo error (checked:
    the expected number of points off their EM assignment is below 0.5)."""
    prior = GIBBS_MODEL.prior()
    resp = fit(GIBBS_MODEL, points, "em", random_seed=1, progressbar=False).posterior["responsibilities"].values[0, 0]
    assert np.sum(1 - resp.max(1)) < 0.5
    labels = resp.argmax(1)
    niw, counts = prior[("means", "covs")], np.bincount(labels, minlength=3)
    moments = [niw_references(*niw_update(niw.m[k], niw.kappa[k], niw.nu[k], niw.S[k], points[labels == k]))
               for k in range(3)]
    weights = stats.dirichlet(prior["weights"].concentrations + counts)
    order = _by_first_feature(np.array([mu.mean for mu, _ in moments]))
    return {
        "weights": Reference(weights.mean()[order], np.sqrt(weights.var())[order]),
        "means": Reference(np.array([moments[k][0].mean for k in order]), np.array([moments[k][0].sd for k in order])),
        "covs": Reference(np.array([moments[k][1].mean for k in order]), np.array([moments[k][1].sd for k in order])),
    }


def gibbs_failures(draws: dict[str, np.ndarray], references: dict[str, Reference]) -> list[str]:
    order = _by_first_feature(draws["means"])  # (chain, draw, component)
    failures = []
    for name, ref in references.items():
        index = order.reshape(*order.shape, *(1,) * (draws[name].ndim - 3))
        failures += agreement_failures(name, np.take_along_axis(draws[name], index, axis=2), ref)
    return failures


@pytest.mark.filterwarnings("ignore::latentzoo.inference.ConvergenceWarning")
def test_gibbs_on_dask_matches_the_posterior_in_location_and_spread(points):
    """Gibbs on chunked data: the mean and sd of every element of weights, means and covs within
    5 Monte-Carlo errors of the posterior given the (practically certain) assignments, with ESS
    above the floor (conftest.agreement_failures). Power: the draws shifted by one reference sd,
    or shrunk to 0.7 of their spread around their mean, fail."""
    with dask.config.set(scheduler="sync"):
        result = fit(GIBBS_MODEL, _chunked(points), "gibbs", random_seed=8, **GIBBS_OPTIONS)
    draws = {name: result.posterior[name].values for name in PARAMS}
    references = near_exact_gibbs_references(points)
    assert_no_failures(gibbs_failures(draws, references))
    for name, ref in references.items():
        shifted = {**draws, name: draws[name] + ref.sd}
        centre = draws[name].mean(axis=(0, 1))
        narrow = {**draws, name: centre + 0.7 * (draws[name] - centre)}
        assert any(f.startswith(name) and ": mean " in f for f in gibbs_failures(shifted, references)), name
        assert any(f.startswith(name) and ": sd " in f for f in gibbs_failures(narrow, references)), name


def test_three_coins_em_and_vb_on_dask(client):
    flips = simulate_flips(300, 10, 0.4, 0.8, 0.3, seed=3)
    model = ThreeCoins()
    for backend in ("em", "vb"):
        expected = fit(model, flips, backend, random_seed=2, progressbar=False, n_init=1, tol=1e-6)
        result = fit(model, da.from_array(flips, chunks=(77, 5)), backend, random_seed=2, progressbar=False, n_init=1,
                     tol=1e-6)
        _assert_same_params(result, expected, ("pi", "p", "q"))
        np.testing.assert_allclose(result.log_likelihood["flips"].values, expected.log_likelihood["flips"].values)


def test_hmm_em_and_vb_on_many_sequences(client):
    model = CategoricalHMM(2, 3)
    truth = {"init_probs": np.array([0.6, 0.4]), "trans_mat": np.array([[0.9, 0.1], [0.2, 0.8]]),
             "emission_probs": np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])}
    rng = np.random.default_rng(4)
    seqs = [model.simulate(truth, int(n), rng)[0] for n in rng.integers(5, 40, size=30)]
    for backend in ("em", "vb"):
        expected = fit(model, seqs, backend, random_seed=6, progressbar=False, n_init=1, tol=1e-6)
        result = fit(model, sequences(seqs, partitions=3), backend, random_seed=6, progressbar=False, n_init=1, tol=1e-6)
        _assert_same_params(result, expected, ("init_probs", "trans_mat", "emission_probs"))
        # per sequence, and per step: partitions concatenate in order
        np.testing.assert_allclose(result.log_likelihood["symbols"].values, expected.log_likelihood["symbols"].values)
        np.testing.assert_allclose(result.posterior["state_probs"].values, expected.posterior["state_probs"].values,
                                   atol=1e-9)
    # a list of Dask arrays is chunked input as well (one partition per worker)
    result = fit(model, [da.from_array(s) for s in seqs], "vb", random_seed=6, progressbar=False, n_init=1, tol=1e-6)
    _assert_same_params(result, expected, ("trans_mat",))


def test_gaussian_hmm_em_on_many_sequences_without_a_client():
    model = GaussianHMM(2, 2)
    rng = np.random.default_rng(7)
    # two regimes far from the origin, so that the centred statistics must combine pairwise
    seqs = []
    for length in rng.integers(10, 30, size=12):
        states = np.cumsum(rng.random(length) < 0.15) % 2
        seqs.append(np.array([5e3, -1e3]) + 3.0 * states[:, None] + rng.normal(size=(length, 2)))
    expected = fit(model, seqs, "em", random_seed=3, progressbar=False, n_init=1, tol=1e-7)
    with dask.config.set(scheduler="sync"):
        result = fit(model, sequences(seqs, partitions=4), "em", random_seed=3, progressbar=False, n_init=1, tol=1e-7)
    _assert_same_params(result, expected, ("init_probs", "trans_mat", "means", "covs"), atol=1e-7)
    np.testing.assert_allclose(result.log_likelihood["x"].values, expected.log_likelihood["x"].values, rtol=1e-9)


def test_dice_hmm_on_a_dask_bag_of_sequences_without_a_client():
    import dask.bag as db

    model = DiceHMM()
    rng = np.random.default_rng(12)
    seqs = [model.simulate(model.default_params(), int(n), rng)[0] for n in rng.integers(5, 25, size=20)]
    expected = fit(model, seqs, "em", random_seed=4, progressbar=False, n_init=1, tol=1e-7)
    with dask.config.set(scheduler="sync"):
        result = fit(model, db.from_sequence(seqs, npartitions=4), "em", random_seed=4, progressbar=False, n_init=1,
                     tol=1e-7)
    _assert_same_params(result, expected, ("init_probs", "trans_mat", "emission_probs"))


# -- bad input ---------------------------------------------------------------------------------------
def test_nan_in_one_chunk_is_named(client, points):
    x = points.copy()
    x[205, 1] = np.nan  # chunk 2 holds the single row 200
    x[250, 0] = np.nan
    with pytest.raises(ValueError, match=r"data contain NaN.*in data chunk 3 \(rows 201 to 299\)"):
        fit(GaussianMixture(3), _chunked(x), "em", random_seed=0, progressbar=False)


def test_refusals_name_what_is_wrong(points):
    with pytest.raises(ValueError, match="data must be 2-D"):
        fit(GaussianMixture(3), da.from_array(points[:, 0], chunks=100), "em", progressbar=False)
    with pytest.raises(ValueError, match=r"data must have at least one row, got a Dask array of shape \(0, 2\)"):
        fit(GaussianMixture(3), da.zeros((0, 2), chunks=(10, 2)), "em", progressbar=False)
    with pytest.raises(ValueError, match="backend 'exact' does not run on chunked"):
        fit(ThreeCoins(), da.from_array(np.ones(10, int), chunks=5), "exact")
    with pytest.raises(TypeError, match="NIWGaussian cannot be fitted on chunked"):
        fit(NIWGaussian(), _chunked(points), "em", progressbar=False)
    with pytest.raises(ValueError, match="per_observation must be one of"):
        fit(GaussianMixture(3), _chunked(points), "em", per_observation="some")


# -- without a client: Dask's default scheduler; the subsample is bounded ----------------------------
def test_default_scheduler_and_bounded_sample(points, monkeypatch):
    model = GaussianMixture(3)
    expected = fit(model, points, "em", random_seed=5, progressbar=False, n_init=1)
    # the configured scheduler comes before any distributed client: this is the no-client path
    with dask.config.set(scheduler="sync"):
        result = fit(model, _chunked(points), "em", random_seed=5, progressbar=False, n_init=1, per_observation="full")
        monkeypatch.setattr(chunked, "MAX_SAMPLE", 50)
        data = chunked.read_chunked(model, _chunked(points))
    _assert_same_params(result, expected, PARAMS)
    assert result.log_likelihood["x"].chunks is None and result.posterior["responsibilities"].chunks is None
    np.testing.assert_allclose(result.log_likelihood["x"].values, expected.log_likelihood["x"].values, rtol=1e-9)
    assert data.sample.x.shape == (50, 2)
    assert sum(sizes["observation"] for sizes in data.dim_sizes) == 600
