"""LocalLevel and the Kalman kernels: dense Gaussian algebra, statsmodels, quadrature, back-ends.

Reference values come from scipy's multivariate normal on the joint of the series (the levels are a
Gaussian random walk, so ``Cov(y_s, y_t) = P0 + q min(s, t) + h [s = t]``), from statsmodels'
``UnobservedComponents`` and from scipy's numerical integration and optimisation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from latentzoo.inference import fit
from latentzoo.models.datasets import nile
from latentzoo.models.statespace.kalman import kalman_filter, local_level_log_likelihood, rts_smoother, simulation_smoother
from latentzoo.models.statespace.local_level import LocalLevel

NILE = nile()[1]
SHORT = np.array([1.3, 0.2, np.nan, 2.5, 1.9, np.nan, 3.1, 2.2])
SMALL_MODEL = LocalLevel(sigma2_eps_prior=(2.0, 1.0), sigma2_eta_prior=(2.0, 0.5), level_prior=(1.0, 4.0))


def dense_local_level(n, h, q, m0, p0):
    """Mean and covariance of the levels (n,) and of the series (n,) by the random walk's algebra."""
    index = np.arange(n)
    level_cov = p0 + q * np.minimum.outer(index, index)
    return np.full(n, m0), level_cov, level_cov + h * np.eye(n)


@pytest.mark.parametrize("y", [SHORT, SHORT[:2], np.array([0.4, np.nan, np.nan, -1.0, 0.3])])
def test_kalman_log_likelihood_equals_dense_normal(y):
    h, q, m0, p0 = 0.8, 0.3, 1.0, 4.0
    mean, _, cov = dense_local_level(len(y), h, q, m0, p0)
    seen = ~np.isnan(y)
    # the missing entries removed from the likelihood: the marginal of the observed ones
    expected = stats.multivariate_normal(mean[seen], cov[np.ix_(seen, seen)]).logpdf(y[seen])
    general = kalman_filter(y, [1.0], [[1.0]], h, [[np.sqrt(q)]], [m0], [[p0]])[0]
    scalar = local_level_log_likelihood(y, h, q, m0, p0)
    assert general.sum() == pytest.approx(expected, abs=1e-10)
    np.testing.assert_allclose(scalar, general, atol=1e-12)
    assert np.all(general[~seen] == 0)
    # a wrong variance must be detected
    assert local_level_log_likelihood(y, h, 1.3 * q, m0, p0).sum() != pytest.approx(expected, abs=1e-6)


def test_general_kernel_on_a_local_linear_trend_equals_dense_normal():
    # a two-dimensional state (level, slope): the kernels take the system matrices
    rng = np.random.default_rng(3)
    n, h = 7, 0.5
    T = np.array([[1.0, 1.0], [0.0, 1.0]])
    G = np.diag([0.6, 0.2])
    a1, P1 = np.array([0.5, -0.1]), np.diag([2.0, 0.3])
    y = rng.normal(size=n)
    y[3] = np.nan
    # dense: a_t = T^(t) a_1 + sum_s T^(t-1-s) G w_s, y_t = a_t[0] + e_t
    powers = [np.linalg.matrix_power(T, k) for k in range(n)]
    A = np.zeros((n, 2 + 2 * n))
    for t in range(n):
        A[t, :2] = powers[t][0]
        for s in range(t):
            A[t, 2 + 2 * s: 4 + 2 * s] = (powers[t - 1 - s] @ G)[0]
    noise_cov = np.zeros((2 + 2 * n, 2 + 2 * n))
    noise_cov[:2, :2] = P1
    noise_cov[2:, 2:] = np.eye(2 * n)
    mean = A[:, :2] @ a1
    cov = A @ noise_cov @ A.T + h * np.eye(n)
    seen = ~np.isnan(y)
    expected = stats.multivariate_normal(mean[seen], cov[np.ix_(seen, seen)]).logpdf(y[seen])
    assert kalman_filter(y, [1.0, 0.0], T, h, G, a1, P1)[0].sum() == pytest.approx(expected, abs=1e-10)


def test_smoother_and_simulation_smoother_equal_dense_conditioning():
    y, h, q, m0, p0 = SHORT, 0.8, 0.3, 1.0, 4.0
    mean, level_cov, cov = dense_local_level(len(y), h, q, m0, p0)
    seen = ~np.isnan(y)
    gain = level_cov[:, seen] @ np.linalg.inv(cov[np.ix_(seen, seen)])
    post_mean = mean + gain @ (y[seen] - mean[seen])
    post_cov = level_cov - gain @ level_cov[seen]
    a_s, P_s, lag, _ = rts_smoother(y, [1.0], [[1.0]], h, [[np.sqrt(q)]], [m0], [[p0]])
    np.testing.assert_allclose(a_s[:, 0], post_mean, atol=1e-10)
    np.testing.assert_allclose(P_s[:, 0, 0], np.diag(post_cov), atol=1e-10)
    np.testing.assert_allclose(lag[:, 0, 0], np.diag(post_cov, -1), atol=1e-10)
    rng = np.random.default_rng(0)
    n_draws = 4000
    draws = np.array([simulation_smoother(y, [1.0], [[1.0]], h, [[np.sqrt(q)]], [m0], [[p0]], rng)[:, 0]
                      for _ in range(n_draws)])
    sd = np.sqrt(np.diag(post_cov))
    # the mean of 4000 draws is within 4 standard errors; the variance within 4 of its own (chi-square) errors
    assert np.all(np.abs(draws.mean(0) - post_mean) < 4 * sd / np.sqrt(n_draws))
    assert np.all(np.abs(draws.var(0) / sd**2 - 1) < 4 * np.sqrt(2 / n_draws))


def test_expected_stats_equal_dense_moments():
    params = {"sigma2_eps": 0.8, "sigma2_eta": 0.3}
    stats_, loglik = SMALL_MODEL.expected_stats(SHORT, params)
    _, level_cov, cov = dense_local_level(len(SHORT), 0.8, 0.3, 1.0, 4.0)
    seen = ~np.isnan(SHORT)
    gain = level_cov[:, seen] @ np.linalg.inv(cov[np.ix_(seen, seen)])
    m = 1.0 + gain @ (SHORT[seen] - 1.0)
    C = level_cov - gain @ level_cov[seen]
    second = C + np.outer(m, m)  # E[mu mu']
    eps = sum(SHORT[t] ** 2 - 2 * SHORT[t] * m[t] + second[t, t] for t in np.flatnonzero(seen))
    D = np.diff(np.eye(len(SHORT)), axis=0)  # increments mu_t+1 - mu_t
    eta = np.trace(D @ second @ D.T)
    assert stats_["eps_sq"] == pytest.approx(eps, rel=1e-10)
    assert stats_["eta_sq"] == pytest.approx(eta, rel=1e-10)
    assert (stats_["eps_count"], stats_["eta_count"]) == (6, 7)


def test_nile_loglik_and_mle_match_statsmodels_with_the_same_known_start():
    sm = pytest.importorskip("statsmodels.api")
    level_prior = (1000.0, 1e5)
    model = LocalLevel(level_prior=level_prior).with_data_prior(NILE)
    reference = sm.tsa.UnobservedComponents(NILE, level="local level")
    # the same initialisation: level_1 ~ N(1000, 1e5), and no observation left out of the likelihood
    reference.ssm.initialize_known(np.array([level_prior[0]]), np.array([[level_prior[1]]]))
    reference.ssm.loglikelihood_burn = 0
    for point in ([15099.0, 1469.1], [5000.0, 300.0]):
        ours = model.log_likelihood(NILE, {"sigma2_eps": point[0], "sigma2_eta": point[1]}).sum()
        assert ours == pytest.approx(reference.loglike(np.array(point)), abs=1e-8)
    result = reference.fit(disp=False, method="nm", maxiter=5000, xtol=1e-8, ftol=1e-12)
    result = reference.fit(start_params=result.params, disp=False, method="bfgs", gtol=1e-10)
    em = fit(model, NILE, backend="em", mle=True, tol=1e-13, max_iter=20000, n_init=1, random_seed=1, progressbar=False)
    ours = np.array([float(em.posterior[name].values.squeeze()) for name in ("sigma2_eps", "sigma2_eta")])
    np.testing.assert_allclose(ours, result.params, rtol=2e-3)
    # EM reaches at least statsmodels' optimum (within round-off)
    assert model.log_likelihood(NILE, dict(zip(("sigma2_eps", "sigma2_eta"), ours))).sum() >= result.llf - 1e-6


def test_nile_mle_in_the_diffuse_limit_matches_the_published_values():
    # statsmodels (exact diffuse initialisation) publishes 15099 and 1469.1; a proper prior of
    # variance 1e7 on the first level is that limit to four digits
    model = LocalLevel(level_prior=(1120.0, 1e7)).with_data_prior(NILE)
    em = fit(model, NILE, backend="em", mle=True, tol=1e-13, max_iter=20000, n_init=1, random_seed=1, progressbar=False)
    assert float(em.posterior["sigma2_eps"].values.squeeze()) == pytest.approx(15099, rel=1e-3)
    assert float(em.posterior["sigma2_eta"].values.squeeze()) == pytest.approx(1469.1, rel=1e-3)


def test_missing_values_match_statsmodels_nan_handling():
    sm = pytest.importorskip("statsmodels.api")
    y = NILE.copy()
    y[[5, 6, 40, 99]] = np.nan
    reference = sm.tsa.UnobservedComponents(y, level="local level")
    reference.ssm.initialize_known(np.array([1000.0]), np.array([[1e5]]))
    reference.ssm.loglikelihood_burn = 0
    model = LocalLevel(level_prior=(1000.0, 1e5)).with_data_prior(y)
    ours = model.log_likelihood(y, {"sigma2_eps": 15099.0, "sigma2_eta": 1469.1}).sum()
    assert ours == pytest.approx(reference.loglike(np.array([15099.0, 1469.1])), abs=1e-8)
    smoothed = reference.smooth(np.array([15099.0, 1469.1]))
    level = model.latent_posterior(y, {"sigma2_eps": 15099.0, "sigma2_eta": 1469.1})
    np.testing.assert_allclose(level["level"], smoothed.smoothed_state[0], rtol=1e-9)
    np.testing.assert_allclose(level["level_sd"] ** 2, smoothed.smoothed_state_cov[0, 0], rtol=1e-7)


def test_map_em_is_the_numerical_maximum_of_the_log_posterior_and_monotone():
    model = LocalLevel().with_data_prior(NILE)
    em = fit(model, NILE, backend="em", tol=1e-13, max_iter=20000, n_init=1, random_seed=2, progressbar=False)
    ours = np.array([float(em.posterior[name].values.squeeze()) for name in ("sigma2_eps", "sigma2_eta")])

    def negative(log_var):
        params = {"sigma2_eps": np.exp(log_var[0]), "sigma2_eta": np.exp(log_var[1])}
        return -(model.log_likelihood(NILE, params).sum() + model.log_prior(params))

    best = optimize.minimize(negative, np.log([10000.0, 1000.0]), method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10000})
    np.testing.assert_allclose(ours, np.exp(best.x), rtol=1e-3)
    history = em["fit_history"]["log_posterior"].values.reshape(-1)
    history = history[np.isfinite(history)]
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))


def test_exact_log_evidence_equals_numerical_integration():
    model, y = SMALL_MODEL, SHORT
    posterior = model.exact_posterior(y)

    (a_eps, b_eps), (a_eta, b_eta) = model.sigma2_eps_prior, model.sigma2_eta_prior
    normaliser = a_eps * np.log(b_eps) - special.gammaln(a_eps) + a_eta * np.log(b_eta) - special.gammaln(a_eta)

    def density(v, u):  # p(y | s) p(s) s_eps s_eta at s = exp(u, v): the Inverse-Gamma densities written out
        loglik = local_level_log_likelihood(y, np.exp(u), np.exp(v), 1.0, 4.0).sum()
        return np.exp(loglik + normaliser - a_eps * u - b_eps * np.exp(-u) - a_eta * v - b_eta * np.exp(-v))

    e, f = posterior.eps_edges, posterior.eta_edges
    value, error = integrate.dblquad(density, e[0], e[-1], f[0], f[-1], epsabs=0, epsrel=1e-6)
    assert posterior.log_evidence == pytest.approx(np.log(value), abs=1e-4)
    # the grid covers the posterior: its border cells hold almost nothing
    w = posterior.weights
    assert max(w[0].sum(), w[-1].sum(), w[:, 0].sum(), w[:, -1].sum()) < 1e-8
    # and the posterior mean of sigma2_eps from the quadrature equals a direct integral (the cells'
    # piecewise-constant density costs about 1e-4 of it on a 200 x 200 grid)
    first = integrate.dblquad(lambda v, u: np.exp(u) * density(v, u), e[0], e[-1], f[0], f[-1], epsabs=0, epsrel=1e-6)[0]
    assert posterior.mean()["sigma2_eps"] == pytest.approx(first / value, rel=5e-4)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sigma2_eps_prior"):
        LocalLevel(sigma2_eps_prior=(0.0, 1.0))
    with pytest.raises(TypeError, match="level_prior"):
        LocalLevel(level_prior="ab")
    with pytest.raises(ValueError, match="at least 2 steps"):
        SMALL_MODEL.check_data([1.0, np.nan, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        SMALL_MODEL.check_data(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="sigma2_eta"):
        SMALL_MODEL.check_params({"sigma2_eps": 1.0, "sigma2_eta": -1.0})
    with pytest.raises(ValueError, match="with_data_prior"):
        LocalLevel().prior()


def test_a_pandas_series_gives_the_times_and_bad_times_are_refused():
    import pandas as pd

    years = np.arange(1950, 1958)
    checked = SMALL_MODEL.check_data(pd.Series(SHORT, index=years.astype(float)))
    np.testing.assert_array_equal(checked.y, SHORT)
    assert checked.time.dtype == np.int64 and list(SMALL_MODEL.coords(checked)["time"]) == list(years)
    # a plain array counts its steps; the same values give the same likelihood whatever the times
    assert list(SMALL_MODEL.coords(SHORT)["time"]) == list(range(SHORT.size))
    params = {"sigma2_eps": 0.7, "sigma2_eta": 0.2}
    np.testing.assert_array_equal(SMALL_MODEL.log_likelihood(checked, params), SMALL_MODEL.log_likelihood(SHORT, params))
    dates = pd.date_range("2020-01-01", periods=SHORT.size, freq="MS")
    assert SMALL_MODEL.check_data(pd.Series(SHORT, index=dates)).time.dtype.kind == "M"
    for bad in (years[::-1], np.r_[years[:-1], years[-2]], np.r_[years[:-1], np.nan]):
        with pytest.raises(ValueError, match="strictly increasing"):
            SMALL_MODEL.check_data(pd.Series(SHORT, index=bad))


NILE_MODEL = LocalLevel().with_data_prior(NILE)


@pytest.fixture(scope="module")
def nile_exact():
    posterior = NILE_MODEL.exact_posterior(NILE)
    draws = posterior.sample(np.random.default_rng(11), 20000)
    return posterior, draws


def _draws(result, name):
    return result.posterior[name].values.reshape(-1)


def test_gibbs_matches_the_exact_posterior(nile_exact):
    import arviz as az

    posterior, exact = nile_exact
    gibbs = fit(NILE_MODEL, NILE, backend="gibbs", draws=1500, tune=200, chains=2, random_seed=3, progressbar=False)
    for name in ("sigma2_eps", "sigma2_eta"):
        ess = float(az.ess(gibbs.posterior[name].values).squeeze()) if hasattr(az, "ess") else 500.0
        samples = _draws(gibbs, name)
        # Monte-Carlo standard error of the mean from the effective sample size; tolerance 4 of them
        mcse = samples.std() / np.sqrt(ess)
        assert abs(samples.mean() - posterior.mean()[name]) < 4 * mcse
        # quantiles: the exact quartiles hold a quarter of the Gibbs draws each (within 5 points)
        quartiles = np.quantile(exact[name], [0.25, 0.5, 0.75])
        shares = np.diff(np.searchsorted(np.sort(samples), quartiles)) / samples.size
        assert np.all(np.abs(shares - 0.25) < 0.05)
    # power: the same tolerance rejects the posterior under a prior ten times wider on sigma2_eta
    other = LocalLevel(sigma2_eps_prior=NILE_MODEL.sigma2_eps_prior,
                       sigma2_eta_prior=(1.0, 10 * NILE_MODEL.sigma2_eta_prior[1]),
                       level_prior=NILE_MODEL.level_prior).exact_posterior(NILE)
    samples = _draws(gibbs, "sigma2_eta")
    assert abs(samples.mean() - other.mean()["sigma2_eta"]) > 4 * samples.std() / np.sqrt(500)


def dense_cavi(model, y, scale_eps, scale_eta, n_iter=1):
    """Mean-field VB written with dense Gaussian algebra: q(levels) from the precision matrix of the
    chain with the variances 1 / E[1 / sigma2], then each Inverse-Gamma factor from its expected
    squared residuals; ``n_iter`` updates from the given scales. Returns the (shape, scale) pairs."""
    n, seen = len(y), ~np.isnan(y)
    m0, p0 = model.level_prior
    D = np.diff(np.eye(n), axis=0)
    (a_eps, b_eps), (a_eta, b_eta) = model.sigma2_eps_prior, model.sigma2_eta_prior
    shape_eps, shape_eta = a_eps + seen.sum() / 2, a_eta + (n - 1) / 2
    for _ in range(n_iter):
        precision = D.T @ D * shape_eta / scale_eta + np.diag(seen * shape_eps / scale_eps)
        precision[0, 0] += 1 / p0
        cov = np.linalg.inv(precision)
        mean = cov @ (np.where(seen, y, 0.0) * shape_eps / scale_eps + np.eye(n)[0] * m0 / p0)
        second = cov + np.outer(mean, mean)
        eps_sq = np.sum(y[seen] ** 2 - 2 * y[seen] * mean[seen] + np.diag(second)[seen])
        scale_eps, scale_eta = b_eps + eps_sq / 2, b_eta + np.trace(D @ second @ D.T) / 2
    return (shape_eps, scale_eps), (shape_eta, scale_eta)


def test_vb_is_close_to_the_exact_posterior_and_its_elbo_never_drops(nile_exact):
    posterior, exact = nile_exact
    vb = fit(NILE_MODEL, NILE, backend="vb", draws=4000, tol=1e-12, max_iter=5000, n_init=1, random_seed=4, progressbar=False)
    # VB's factors are a fixed point of an independent dense-algebra CAVI update (CAVI creeps along
    # the coupling of the levels and sigma2_eta, so one more step still moves it by about 1e-6)
    q = vb["variational"]
    (shape_eps, scale_eps), (shape_eta, scale_eta) = dense_cavi(
        NILE_MODEL, NILE, float(q["sigma2_eps_scale"]), float(q["sigma2_eta_scale"]))
    assert float(q["sigma2_eps_shape"]) == pytest.approx(shape_eps, rel=1e-12)
    assert float(q["sigma2_eps_scale"]) == pytest.approx(scale_eps, rel=1e-5)
    assert float(q["sigma2_eta_scale"]) == pytest.approx(scale_eta, rel=1e-5)
    # against the exact posterior: the observation variance's mean within 5%; the level variance's
    # mean is biased low (mean-field drops the coupling of the level increments and sigma2_eta;
    # on the Nile it is 0.71 of the exact 1302), and its spread is narrower
    assert _draws(vb, "sigma2_eps").mean() == pytest.approx(posterior.mean()["sigma2_eps"], rel=0.05)
    assert 0.6 < _draws(vb, "sigma2_eta").mean() / posterior.mean()["sigma2_eta"] < 0.85
    assert _draws(vb, "sigma2_eta").std() < exact["sigma2_eta"].std()
    # the ELBO is a lower bound on the exact log evidence, and not far below it
    elbo = float(vb.attrs["objective"]) if "objective" in vb.attrs else None
    history = vb["fit_history"]["elbo"].values.reshape(-1)
    history = history[np.isfinite(history)]
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    best = history.max() if elbo is None else elbo
    assert posterior.log_evidence - 3.0 < best <= posterior.log_evidence + 1e-3


@pytest.mark.pymc
def test_pymc_log_density_equals_the_numpy_log_posterior():
    # the scan's Kalman log-likelihood plus the PyMC priors, at two points, against the numpy twin
    # (log-variances: PyMC's free variables carry the log transform's Jacobian)
    model = SMALL_MODEL
    pymc_model = model.pymc_model(SHORT)
    logp = pymc_model.compile_logp()
    for point in ({"sigma2_eps": 0.8, "sigma2_eta": 0.3}, {"sigma2_eps": 2.0, "sigma2_eta": 0.05}):
        free = {f"{name}_log__": np.log(value) for name, value in point.items()}
        expected = model.log_likelihood(SHORT, point).sum() + model.log_prior(point) + np.log(point["sigma2_eps"] * point["sigma2_eta"])
        assert float(logp(free)) == pytest.approx(float(expected), abs=1e-8)


@pytest.mark.pymc
def test_kalman_op_value_and_gradient_equal_the_scan_and_finite_differences():
    # the Op (benchmarks/local_level.py's alternative to the scan) compiled by PyTensor's default
    # (Numba) linker: its value and analytic gradient against the scan's autodiff and against central
    # differences of the numpy filter, on a series with missing steps
    import pytensor
    import pytensor.tensor as pt

    from latentzoo.models.ops.kalman_op import local_level_log_likelihood_op
    from latentzoo.models.statespace.local_level import pymc_kalman_log_likelihood

    h, q = pt.dscalar("h"), pt.dscalar("q")
    op_value = local_level_log_likelihood_op(SHORT, h, q, 1.0, 4.0)
    scan_value = pymc_kalman_log_likelihood(SHORT, h, q, 1.0, 4.0).sum()
    both = pytensor.function([h, q], [op_value, *pt.grad(op_value, [h, q]), scan_value, *pt.grad(scan_value, [h, q])])
    step = 1e-6
    for point in ((0.8, 0.3), (2.0, 0.05), (0.01, 5.0)):
        op, op_dh, op_dq, scan, scan_dh, scan_dq = (float(v) for v in both(*point))
        numpy = local_level_log_likelihood(SHORT, *point, 1.0, 4.0).sum()
        dh = (local_level_log_likelihood(SHORT, point[0] + step, point[1], 1.0, 4.0).sum()
              - local_level_log_likelihood(SHORT, point[0] - step, point[1], 1.0, 4.0).sum()) / (2 * step)
        dq = (local_level_log_likelihood(SHORT, point[0], point[1] + step, 1.0, 4.0).sum()
              - local_level_log_likelihood(SHORT, point[0], point[1] - step, 1.0, 4.0).sum()) / (2 * step)
        assert op == pytest.approx(numpy, abs=1e-10) and scan == pytest.approx(numpy, abs=1e-10)
        assert (op_dh, op_dq) == pytest.approx((scan_dh, scan_dq), rel=1e-9)
        assert (op_dh, op_dq) == pytest.approx((dh, dq), rel=1e-5)


@pytest.mark.pymc
def test_pymc_explicit_level_density_equals_scipy():
    # pymc_gibbs's declaration: the levels explicit (first level and increments), written out with
    # scipy's densities; the missing steps of SHORT add no observation term
    model = SMALL_MODEL
    logp = model.pymc_model(SHORT, marginalized=False).compile_logp()
    rng = np.random.default_rng(3)
    (a_eps, b_eps), (a_eta, b_eta), (m0, p0) = model.sigma2_eps_prior, model.sigma2_eta_prior, model.level_prior
    for h, q in ((0.8, 0.3), (2.0, 0.05)):
        level = np.cumsum(rng.normal(size=SHORT.size)) + 1.0
        free = {"sigma2_eps_log__": np.log(h), "sigma2_eta_log__": np.log(q), "level_1": level[0], "level_step": np.diff(level)}
        seen = ~np.isnan(SHORT)
        expected = (stats.invgamma(a_eps, scale=b_eps).logpdf(h) + stats.invgamma(a_eta, scale=b_eta).logpdf(q) + np.log(h * q)
                    + stats.norm(m0, np.sqrt(p0)).logpdf(level[0]) + stats.norm(0, np.sqrt(q)).logpdf(np.diff(level)).sum()
                    + stats.norm(level[seen], np.sqrt(h)).logpdf(SHORT[seen]).sum())
        assert float(logp(free)) == pytest.approx(float(expected), abs=1e-8)


@pytest.mark.slow
@pytest.mark.pymc
def test_nuts_matches_the_exact_posterior(nile_exact):
    import arviz as az

    posterior, _ = nile_exact
    nuts = fit(NILE_MODEL, NILE, backend="nuts", draws=1000, tune=1000, chains=2, cores=1, random_seed=5, progressbar=False)
    for name in ("sigma2_eps", "sigma2_eta"):
        samples = _draws(nuts, name)
        mcse = samples.std() / np.sqrt(float(az.ess(nuts.posterior[name].values).squeeze()))
        assert abs(samples.mean() - posterior.mean()[name]) < 4 * mcse


def mean_field_log_normal_optimum(model, y, n_nodes: int = 40) -> np.ndarray:
    """The best factorised normal q(log sigma2_eps) q(log sigma2_eta) for the numpy log posterior:
    the ELBO by Gauss-Hermite quadrature, maximised by Nelder-Mead. Returns (mean_eps, mean_eta,
    sd_eps, sd_eta) of the log-variances: what ADVI converges to, whatever its start."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    weights = weights / weights.sum()

    def negative_elbo(theta):
        mean_u, mean_v, log_sd_u, log_sd_v = theta
        grid = model.log_posterior_grid(y, mean_u + np.exp(log_sd_u) * nodes, mean_v + np.exp(log_sd_v) * nodes)
        return -(weights @ grid @ weights + log_sd_u + log_sd_v)

    centre = np.log(np.nanvar(model.check_data(y).y))
    result = optimize.minimize(negative_elbo, [centre, centre - 2.0, np.log(0.3), np.log(0.3)], method="Nelder-Mead",
                               options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    assert result.success
    return np.r_[result.x[:2], np.exp(result.x[2:])]


@pytest.mark.slow
@pytest.mark.pymc
def test_advi_reaches_the_mean_field_optimum():
    # The Nile with the default (data-driven) priors. PyMC starts ADVI at the priors' mode, var(y)/200,
    # 4.7 nats below log sigma2_eps's posterior; Adam at 0.01 crawls there, and the default stopping rule
    # (the ELBO moving less than 0.01 nat per step over 500) fires on the crawl: 3000 steps or the default
    # options leave sigma2_eta about three times too large. From EM's point it converges.
    optimum = mean_field_log_normal_optimum(NILE_MODEL, NILE)

    def log_moments(idata):
        logs = [np.log(_draws(idata, name)) for name in ("sigma2_eps", "sigma2_eta")]
        return np.r_[[v.mean() for v in logs], [v.std() for v in logs]]

    def close(moments):
        # the means of the logs within 0.05 (a tenth of a posterior sd and five Monte-Carlo errors), the sds within 10%
        return bool(np.all(np.abs(moments[:2] - optimum[:2]) < 0.05) and np.all(np.abs(moments[2:] / optimum[2:] - 1) < 0.1))

    options = {"draws": 4000, "progressbar": False, "random_seed": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converged = fit(LocalLevel(), NILE, backend="advi", start="em", **options)
        stopped_early = fit(LocalLevel(), NILE, backend="advi", n_steps=3000, **options)
    assert close(log_moments(converged)), (log_moments(converged), optimum)
    assert not close(log_moments(stopped_early))
