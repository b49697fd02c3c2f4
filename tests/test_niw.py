"""NIWGaussian and the Normal-Inverse-Wishart family: closed forms against numerical
optimisation, integration and independent implementations (scipy.stats), the exact sampler's
Monte-Carlo moments, PyMC logp equality, the point back-ends against the closed forms, and bad
inputs (the exact and NUTS back-ends' draws against the closed forms: test_agreement.py).

Reference values never come from the code under test: scipy.stats densities, scipy.optimize,
scipy.integrate, numpy moments. Monte-Carlo tolerances are multiples of standard errors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from latentzoo.inference import applicable_backends, fit
from latentzoo.models.core.conjugate import MultivariateT, NormalInverseWishart
from latentzoo.models.datasets import old_faithful
from latentzoo.models.gaussian.niw import NIWGaussian
from latentzoo.models.gaussian.stats import component_stats
from latentzoo.models.ops.pymc_parts import spd_log_jacobian_coefficients

#: Monte-Carlo tolerance in standard errors (two-sided, many comparisons per test)
Z = 4.5


def simulate(n, dim=2, seed=0):
    """Gaussian data with a non-diagonal covariance, simulated with plain numpy."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(dim, dim))
    cov = A @ A.T + dim * np.eye(dim)
    return rng.multivariate_normal(np.arange(dim, dtype=float), cov, size=n)


def gaussian_stats(x, weights=None):
    """(count, mean, scatter) by the models' shared kernel: unbatched for no or 1-D weights, one
    set per column for (N, K) weights."""
    x = np.asarray(x, float)
    single = weights is None or np.ndim(weights) == 1
    weights = np.ones(x.shape[0]) if weights is None else np.asarray(weights, float)
    stats = component_stats(x, weights.reshape(x.shape[0], -1))
    return tuple(value[0] for value in stats) if single else stats


def expected_log_det_precision(niw):
    """E[log|Lambda|] = psi_D(nu/2) + D log 2 - log|S| under NIW (Bishop 2006, eq. 10.65 with
    W = S^{-1}), shape (*batch,): the closed form the VB kernel is checked against."""
    half_degrees = np.asarray(niw.nu)[..., None] / 2.0 + (1.0 - np.arange(1, niw.dim + 1)) / 2.0
    return special.digamma(half_degrees).sum(-1) + niw.dim * np.log(2.0) - np.linalg.slogdet(niw.S)[1]


def expected_mahalanobis(niw, x):
    """E[(x - mu)^T Lambda (x - mu)] = D / kappa + nu (x - m)^T S^{-1} (x - m) (Bishop 2006,
    eq. 10.64), shape (n, *batch) for x of shape (n, D)."""
    x = np.asarray(x, float)
    diff = x.reshape((x.shape[0],) + (1,) * (niw.m.ndim - 1) + (niw.dim,)) - niw.m
    return niw.dim / niw.kappa + niw.nu * np.einsum("...i,...ij,...j->...", diff, np.linalg.inv(niw.S), diff)


def explicit_model(dim=2, seed=1):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(dim, dim))
    return NIWGaussian(m0=rng.normal(size=dim), kappa0=0.5, nu0=dim + 3.0, S0=A @ A.T + np.eye(dim))


def scipy_log_prior(model_or_prior, mu, Sigma):
    """log N(mu | m0, Sigma/kappa0) + log IW(Sigma | nu0, S0) with scipy.stats."""
    m0, kappa0, nu0, S0 = (model_or_prior.m0, model_or_prior.kappa0, model_or_prior.nu0, model_or_prior.S0)
    return stats.invwishart(nu0, np.asarray(S0)).logpdf(Sigma) + stats.multivariate_normal(
        np.asarray(m0), Sigma / kappa0
    ).logpdf(mu)


def scipy_log_joint(model, x, mu, Sigma):
    return scipy_log_prior(model, mu, Sigma) + stats.multivariate_normal(mu, Sigma).logpdf(x).sum()


def vech_to_spd(z, dim):
    """Log-Cholesky vector -> SPD matrix (independent of the code under test)."""
    L = np.zeros((dim, dim))
    rows, cols = np.tril_indices(dim)
    L[rows, cols] = np.where(rows == cols, np.exp(z), z)
    return L @ L.T


def spd_to_vech(Sigma):
    L = np.linalg.cholesky(Sigma)
    rows, cols = np.tril_indices(Sigma.shape[0])
    return np.where(rows == cols, np.log(np.abs(L[rows, cols]) + (rows != cols)), L[rows, cols])


def maximise(objective, mu0, Sigma0):
    """argmax over (mu, Sigma) of objective(mu, Sigma), by BFGS on (mu, log-Cholesky)."""
    dim = mu0.size

    def negative(theta):
        return -objective(theta[:dim], vech_to_spd(theta[dim:], dim))

    theta0 = np.concatenate([mu0, spd_to_vech(Sigma0)])
    result = optimize.minimize(negative, theta0, method="BFGS", options={"gtol": 1e-9, "maxiter": 10_000})
    return result.x[:dim], vech_to_spd(result.x[dim:], dim)


# -- the conjugate family ---------------------------------------------------------------------
class TestNormalInverseWishart:
    niw = NormalInverseWishart(np.array([1.0, -2.0]), 2.0, 6.0, np.array([[2.0, 0.5], [0.5, 1.0]]))

    def test_log_pdf_matches_scipy(self):
        rng = np.random.default_rng(0)
        for _ in range(3):
            mu = rng.normal(size=2)
            A = rng.normal(size=(2, 2))
            Sigma = A @ A.T + 0.3 * np.eye(2)
            expected = stats.invwishart(6.0, self.niw.S).logpdf(Sigma) + stats.multivariate_normal(
                self.niw.m, Sigma / 2.0
            ).logpdf(mu)
            assert self.niw.log_pdf(mu, Sigma) == pytest.approx(expected, rel=1e-12)

    def test_joint_mode_denominator_is_nu_plus_d_plus_2(self):
        mu_hat, Sigma_hat = maximise(lambda mu, S: float(self.niw.log_pdf(mu, S)), np.zeros(2), np.eye(2))
        mu_mode, Sigma_mode = self.niw.mode()
        np.testing.assert_allclose(mu_mode, mu_hat, atol=1e-6)
        np.testing.assert_allclose(Sigma_mode, Sigma_hat, rtol=1e-5)
        # the numerical maximiser is S / (nu + D + 2), not the IW-marginal mode S / (nu + D + 1)
        np.testing.assert_allclose(Sigma_hat, self.niw.S / (6.0 + 2 + 2), rtol=1e-5)
        assert not np.allclose(Sigma_hat, self.niw.S / (6.0 + 2 + 1), rtol=1e-3)

    def test_sample_moments_and_marginals(self):
        rng = np.random.default_rng(1)
        n = 40_000
        mu, Sigma = self.niw.sample(rng, n)
        assert mu.shape == (n, 2) and Sigma.shape == (n, 2, 2)
        _, Sigma_mean = self.niw.mean()
        # E[mu] = m, E[Sigma] = S / (nu - D - 1): within Z standard errors (Var(Sigma) finite for nu > D + 3)
        se_mu = mu.std(0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(mu.mean(0) - self.niw.m) < Z * se_mu)
        se_Sigma = Sigma.std(0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(Sigma.mean(0) - Sigma_mean) < Z * se_Sigma)
        # marginals against independent laws: Sigma_11 ~ InvGamma((nu - D + 1)/2, S_11/2); mu_1 is t
        df = 6.0 - 2 + 1
        assert stats.kstest(Sigma[:, 0, 0], stats.invgamma(df / 2, scale=self.niw.S[0, 0] / 2).cdf).pvalue > 1e-3
        t = self.niw.marginal_mu()
        scale = np.sqrt(t.shape[0, 0])
        assert float(t.df) == df
        assert stats.kstest(mu[:, 0], stats.t(df, loc=self.niw.m[0], scale=scale).cdf).pvalue > 1e-3
        # and against scipy's own inverse-Wishart sampler (two-sample KS on the off-diagonal)
        reference = stats.invwishart(6.0, self.niw.S).rvs(size=n, random_state=2)
        assert stats.ks_2samp(Sigma[:, 0, 1], reference[:, 0, 1]).pvalue > 1e-3

    def test_multivariate_t_log_pdf_matches_scipy(self):
        t = self.niw.posterior_predictive()
        x = np.array([[0.3, -1.0], [2.0, 1.0]])
        expected = stats.multivariate_t(t.loc, t.shape, df=float(t.df)).logpdf(x)
        np.testing.assert_allclose(t.log_pdf(x), expected, rtol=1e-12)

    def test_posterior_predictive_by_simulation(self):
        rng = np.random.default_rng(3)
        n = 40_000
        mu, Sigma = self.niw.sample(rng, n)
        x = mu + np.einsum("nij,nj->ni", np.linalg.cholesky(Sigma), rng.standard_normal((n, 2)))
        t = self.niw.posterior_predictive()
        scale = np.sqrt(t.shape[1, 1])
        assert stats.kstest(x[:, 1], stats.t(float(t.df), loc=t.loc[1], scale=scale).cdf).pvalue > 1e-3

    def test_update_is_sequential_and_matches_the_direct_formula(self):
        x = simulate(30, seed=4)
        whole = self.niw.update(*gaussian_stats(x))
        halves = self.niw.update(*gaussian_stats(x[:11])).update(*gaussian_stats(x[11:]))
        for a, b in zip((whole.m, whole.kappa, whole.nu, whole.S), (halves.m, halves.kappa, halves.nu, halves.S)):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        n, xbar = 30, x.mean(0)
        scatter = (x - xbar).T @ (x - xbar)
        np.testing.assert_allclose(whole.m, (2.0 * self.niw.m + n * xbar) / 32.0)
        d = xbar - self.niw.m
        np.testing.assert_allclose(whole.S, self.niw.S + scatter + 2.0 * n / 32.0 * np.outer(d, d))
        # zero count changes nothing, even with a garbage mean
        same = self.niw.update(0.0, np.full(2, np.nan), np.zeros((2, 2)))
        np.testing.assert_allclose(same.S, self.niw.S)
        np.testing.assert_allclose(same.m, self.niw.m)

    def test_weighted_stats_match_numpy(self):
        x = simulate(25, seed=5)
        w = np.random.default_rng(5).random((25, 3))
        count, mean, scatter = gaussian_stats(x, w)
        assert count.shape == (3,) and mean.shape == (3, 2) and scatter.shape == (3, 2, 2)
        for k in range(3):
            np.testing.assert_allclose(mean[k], np.average(x, axis=0, weights=w[:, k]))
            np.testing.assert_allclose(scatter[k], np.cov(x.T, aweights=w[:, k], bias=True) * w[:, k].sum())

    def test_batched_equals_one_by_one(self):
        rng = np.random.default_rng(6)
        m = rng.normal(size=(3, 2))
        S = np.stack([np.eye(2) * (k + 1) for k in range(3)])
        batch = NormalInverseWishart(m, np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), S)
        x = simulate(20, seed=6)
        weights = rng.random((20, 3))
        posterior = batch.update(*gaussian_stats(x, weights))
        mu_mode, Sigma_mode = posterior.mode()
        assert mu_mode.shape == (3, 2) and Sigma_mode.shape == (3, 2, 2)
        mu_draw, Sigma_draw = posterior.sample(rng, size=(5,))
        assert mu_draw.shape == (5, 3, 2) and Sigma_draw.shape == (5, 3, 2, 2)
        for k in range(3):
            single = NormalInverseWishart(m[k], k + 1.0, k + 4.0, S[k]).update(*gaussian_stats(x, weights[:, k]))
            np.testing.assert_allclose(single.S, posterior.S[k])
            np.testing.assert_allclose(single.mode()[1], Sigma_mode[k])
            assert posterior.log_pdf(mu_mode, Sigma_mode)[k] == pytest.approx(float(single.log_pdf(*single.mode())))

    def test_flat_update_mode_is_the_mle(self):
        x = simulate(40, seed=7)
        mu, Sigma = NormalInverseWishart.flat(2).update(*gaussian_stats(x)).mode()
        np.testing.assert_allclose(mu, x.mean(0))
        np.testing.assert_allclose(Sigma, np.cov(x.T, bias=True))

    def test_variational_expectations_by_monte_carlo(self):
        rng = np.random.default_rng(8)
        n = 40_000
        mu, Sigma = self.niw.sample(rng, n)
        precision = np.linalg.inv(Sigma)
        log_det = np.linalg.slogdet(precision)[1]
        assert abs(log_det.mean() - expected_log_det_precision(self.niw)) < Z * log_det.std() / np.sqrt(n)
        x = np.array([[0.5, 0.5], [3.0, -1.0]])
        diff = x[None] - mu[:, None, :]
        quad = np.einsum("nki,nij,nkj->nk", diff, precision, diff)
        se = quad.std(0) / np.sqrt(n)
        assert np.all(np.abs(quad.mean(0) - expected_mahalanobis(self.niw, x)) < Z * se)

    def test_kl_by_monte_carlo(self):
        other = NormalInverseWishart(np.array([0.0, 0.0]), 1.0, 5.0, np.eye(2))
        rng = np.random.default_rng(9)
        n = 40_000
        mu, Sigma = self.niw.sample(rng, n)
        log_ratio = self.niw.log_pdf(mu, Sigma) - other.log_pdf(mu, Sigma)
        assert abs(log_ratio.mean() - self.niw.kl(other)) < Z * log_ratio.std() / np.sqrt(n)
        assert self.niw.kl(self.niw) == pytest.approx(0.0, abs=1e-12)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"nu": 0.5}, "nu must be"),
            ({"S": [[1.0, 0.5], [0.0, 1.0]]}, "symmetric"),
            ({"S": [[1.0, 2.0], [2.0, 1.0]]}, "positive definite"),
            ({"S": np.eye(3)}, "shape"),
            ({"kappa": 0.0}, "kappa"),
        ],
    )
    def test_bad_parameters(self, kwargs, match):
        params = {"m": np.zeros(2), "kappa": 1.0, "nu": 4.0, "S": np.eye(2), **kwargs}
        with pytest.raises(ValueError, match=match):
            NormalInverseWishart(**params)


# -- the model's closed forms -----------------------------------------------------------------
class TestClosedForms:
    def test_data_driven_prior_is_the_seeds(self):
        x = simulate(50, dim=3, seed=10)
        prior = NIWGaussian().resolved_prior(x)
        np.testing.assert_allclose(prior.m, x.mean(0))
        np.testing.assert_allclose(prior.S, np.diag(np.var(x, axis=0)))  # diag(scatter)/N
        assert float(prior.nu) == 3 + 2 and float(prior.kappa) == 0.01
        explicit = NIWGaussian().with_data_prior(x)
        assert not explicit.data_driven and explicit.map(x)[1] == pytest.approx(NIWGaussian().map(x)[1])

    def test_map_maximises_the_log_posterior(self):
        x = simulate(12, seed=11)
        model = explicit_model()
        mu_hat, Sigma_hat = maximise(lambda mu, S: scipy_log_joint(model, x, mu, S), x.mean(0), np.cov(x.T))
        mu_map, Sigma_map = model.map(x)
        np.testing.assert_allclose(mu_map, mu_hat, atol=1e-5)
        np.testing.assert_allclose(Sigma_map, Sigma_hat, rtol=1e-5)

    def test_mle_matches_numpy_and_optimisation(self):
        x = simulate(15, seed=12)
        mu, Sigma = NIWGaussian().mle(x)
        np.testing.assert_allclose(mu, x.mean(0))
        np.testing.assert_allclose(Sigma, np.cov(x.T, bias=True))
        objective = lambda m, S: stats.multivariate_normal(m, S).logpdf(x).sum()  # noqa: E731
        np.testing.assert_allclose(maximise(objective, np.zeros(2), np.eye(2))[1], Sigma, rtol=1e-5)

    def test_evidence_by_bayes_identity(self):
        """log p(x) = log p(x | theta) + log p(theta) - log p(theta | x) at any theta."""
        x = simulate(9, seed=13)
        model = explicit_model()
        posterior = model.posterior(x)
        for mu, Sigma in [(np.zeros(2), np.eye(2)), (x.mean(0), np.cov(x.T))]:
            log_post = stats.invwishart(float(posterior.nu), posterior.S).logpdf(Sigma) + stats.multivariate_normal(
                posterior.m, Sigma / float(posterior.kappa)
            ).logpdf(mu)
            assert model.log_evidence(x) == pytest.approx(scipy_log_joint(model, x, mu, Sigma) - log_post, rel=1e-10)

    def test_data_driven_evidence_by_bayes_identity(self):
        """The data-driven prior's evidence (D taken from the data) obeys the same identity, with
        the prior resolved from x."""
        x = simulate(9, seed=15)
        model = NIWGaussian()
        explicit = model.with_data_prior(x)
        posterior = model.posterior(x)
        mu, Sigma = x.mean(0), np.cov(x.T)
        log_post = stats.invwishart(float(posterior.nu), posterior.S).logpdf(Sigma) + stats.multivariate_normal(
            posterior.m, Sigma / float(posterior.kappa)
        ).logpdf(mu)
        assert model.log_evidence(x) == pytest.approx(scipy_log_joint(explicit, x, mu, Sigma) - log_post, rel=1e-10)

    def test_evidence_by_quadrature_in_one_dimension(self):
        x = np.array([0.3, 1.1, -0.4, 0.9])
        m0, kappa0, nu0, s0 = 0.2, 1.5, 3.0, 2.0
        model = NIWGaussian(m0=[m0], kappa0=kappa0, nu0=nu0, S0=[[s0]])
        a, b = nu0 / 2, s0 / 2  # a 1-D inverse Wishart is InvGamma(nu0/2, S0/2)

        def integrand(mu, log_var):  # over log variance, hence the Jacobian var
            var = math.exp(log_var)
            log_prior = a * math.log(b) - math.lgamma(a) - (a + 1) * log_var - b / var
            log_prior += -0.5 * math.log(2 * math.pi * var / kappa0) - kappa0 * (mu - m0) ** 2 / (2 * var)
            log_lik = float(np.sum(-0.5 * np.log(2 * np.pi * var) - (x - mu) ** 2 / (2 * var)))
            return math.exp(log_prior + log_lik + log_var)

        value, _ = integrate.dblquad(integrand, -12, 12, -10, 10, epsabs=0, epsrel=1e-9)
        assert model.log_evidence(x[:, None]) == pytest.approx(math.log(value), abs=1e-6)

    def test_evidence_by_monte_carlo_over_the_prior(self):
        x = simulate(4, seed=14)
        model = explicit_model()
        n = 200_000
        Sigma = stats.invwishart(model.nu0, np.asarray(model.S0)).rvs(size=n, random_state=15)
        L = np.linalg.cholesky(Sigma / model.kappa0)
        mu = np.asarray(model.m0) + np.einsum("nij,nj->ni", L, np.random.default_rng(16).standard_normal((n, 2)))
        log_lik = model.log_likelihood(x, {"mu": mu, "Sigma": Sigma}).sum(-1)
        weights = np.exp(log_lik - log_lik.max())
        estimate = np.log(weights.mean()) + log_lik.max()
        se = weights.std() / np.sqrt(n) / weights.mean()  # delta method on the log
        assert abs(estimate - model.log_evidence(x)) < Z * se

    def test_marginal_mu_and_predictive_are_the_posteriors(self):
        x = simulate(20, seed=17)
        posterior = explicit_model().posterior(x)
        t = explicit_model().marginal_mu(x)
        assert isinstance(t, MultivariateT)
        np.testing.assert_allclose(t.loc, posterior.m)
        predictive = explicit_model().posterior_predictive(x)
        np.testing.assert_allclose(predictive.shape, t.shape * (float(posterior.kappa) + 1.0))

    def test_log_likelihood_is_pointwise_and_batched(self):
        x = simulate(7, seed=18)
        rng = np.random.default_rng(18)
        mu = rng.normal(size=(2, 3, 2))
        Sigma = np.broadcast_to(np.cov(x.T), (2, 3, 2, 2))
        values = NIWGaussian().log_likelihood(x, {"mu": mu, "Sigma": Sigma})
        assert values.shape == (2, 3, 7)
        np.testing.assert_allclose(values[1, 2], stats.multivariate_normal(mu[1, 2], Sigma[1, 2]).logpdf(x))


# -- the PyMC declaration ---------------------------------------------------------------------
def test_log_cholesky_jacobian_by_finite_differences():
    rng = np.random.default_rng(19)
    dim = 3
    z = rng.normal(size=dim * (dim + 1) // 2)
    rows, cols = np.tril_indices(dim)

    def vech(values):
        return vech_to_spd(values, dim)[rows, cols]

    eps = 1e-6
    jacobian = np.column_stack([(vech(z + eps * e) - vech(z - eps * e)) / (2 * eps) for e in np.eye(z.size)])
    expected = np.linalg.slogdet(jacobian)[1]
    assert dim * np.log(2) + spd_log_jacobian_coefficients(dim) @ z == pytest.approx(expected, rel=1e-7)


@pytest.mark.pymc
@pytest.mark.parametrize("model", [explicit_model(), NIWGaussian()], ids=["explicit", "data-driven"])
def test_pymc_logp_equals_numpy_log_joint(model):
    x = old_faithful()[:40]
    pm_model = model.pymc_model(x)
    (value_name,) = [v.name for v in pm_model.value_vars if v.name.startswith("Sigma")]
    resolved = model.with_data_prior(x)
    logp = pm_model.compile_logp(jacobian=False)
    logp_jacobian = pm_model.compile_logp(jacobian=True)
    rng = np.random.default_rng(20)
    for _ in range(3):
        mu = x.mean(0) + rng.normal(size=2)
        A = rng.normal(size=(2, 2))
        Sigma = np.cov(x.T) + A @ A.T
        z = spd_to_vech(Sigma)
        point = {value_name: z, "mu": mu}
        expected = scipy_log_joint(resolved, x, mu, Sigma)
        assert float(logp(point)) == pytest.approx(expected, rel=1e-10)
        # with the documented Jacobian of the log-Cholesky transform
        jacobian = 2 * np.log(2) + spd_log_jacobian_coefficients(2) @ z
        assert float(logp_jacobian(point)) == pytest.approx(expected + jacobian, rel=1e-10)


# -- back-ends ---------------------------------------------------------------------------------
SMALL = simulate(30, seed=21)
MODEL = explicit_model()
SETTINGS = {
    "em": {"progressbar": False},
    "exact": {"draws": 4000},
    "nuts": {"draws": 500, "tune": 500, "chains": 2, "cores": 1, "progressbar": False},
    # short optimisations: the contract checks layout, not accuracy
    "advi": {"draws": 500, "n_steps": 3000, "progressbar": False},
    "fullrank_advi": {"draws": 500, "n_steps": 3000, "progressbar": False},
    # a random start, not map's default em-start (EM's closed-form mode itself): find_MAP must climb
    # to the closed form on the PyMC declaration alone
    "map": {"init": "random", "progressbar": False},
}
_CACHE: dict = {}


def fitted(backend, model=MODEL, data=SMALL, **extra):
    key = (repr(model), backend, repr(sorted(extra.items())), id(data))
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[key] = fit(model, data, backend=backend, random_seed=3, **{**SETTINGS[backend], **extra})
    return _CACHE[key]


def test_applicable_backends():
    assert applicable_backends(NIWGaussian()) == ["em", "exact", "nuts", "advi", "fullrank_advi", "map", "smc", "laplace", "pathfinder", "svgd"]
    for backend in ("gibbs", "vb", "pymc_gibbs"):
        with pytest.raises(ValueError, match="does not apply"):
            fit(NIWGaussian(), SMALL, backend=backend)


def test_em_is_the_closed_form_map_and_mle():
    idata = fitted("em")
    mu_map, Sigma_map = MODEL.map(SMALL)
    np.testing.assert_allclose(idata.posterior["mu"].values[0, 0], mu_map, rtol=1e-12)
    np.testing.assert_allclose(idata.posterior["Sigma"].values[0, 0], Sigma_map, rtol=1e-12)
    assert idata.posterior.attrs["converged"]
    mle = fit(NIWGaussian(), SMALL, backend="em", mle=True, random_seed=0, progressbar=False)
    np.testing.assert_allclose(mle.posterior["Sigma"].values[0, 0], np.cov(SMALL.T, bias=True), rtol=1e-12)
    np.testing.assert_allclose(mle.posterior["mu"].values[0, 0], SMALL.mean(0), rtol=1e-12)
    # the data-driven prior through its explicit twin
    data_driven = fit(NIWGaussian().with_data_prior(SMALL), SMALL, backend="em", random_seed=0, progressbar=False)
    np.testing.assert_allclose(data_driven.posterior["Sigma"].values[0, 0], NIWGaussian().map(SMALL)[1], rtol=1e-12)


def test_em_errors():
    explicit = NIWGaussian(m0=np.zeros(2), kappa0=1.0, nu0=4.0, S0=np.eye(2))
    with pytest.raises(ValueError, match="singular with N = 1"):
        fit(explicit, SMALL[:1], backend="em", mle=True, progressbar=False)
    # the data-driven prior cannot be built from one observation either, and says why
    with pytest.raises(ValueError, match="S0 = diag\\(scatter\\)/N needs every feature to vary"):
        fit(NIWGaussian(), SMALL[:1], backend="em", mle=True, progressbar=False)
    # a data-free log_prior of a data-driven prior is refused with advice ...
    with pytest.raises(ValueError, match="with_data_prior"):
        NIWGaussian().log_prior({"mu": np.zeros(2), "Sigma": np.eye(2)})
    # ... and fit resolves the prior from the data first, so MAP-EM gives the closed-form MAP
    idata = fit(NIWGaussian(), SMALL, backend="em", progressbar=False)
    np.testing.assert_allclose(idata.posterior["Sigma"].values[0, 0], NIWGaussian().map(SMALL)[1], rtol=1e-10)


def test_exact_backend_log_evidence():
    # (the exact back-end's draws, means and sds, against scipy's closed forms: test_agreement.py)
    assert fitted("exact").posterior.attrs["log_evidence"] == pytest.approx(MODEL.log_evidence(SMALL))


@pytest.mark.pymc
def test_map_backend_is_the_closed_form_map():
    idata = fitted("map")
    mu_map, Sigma_map = MODEL.map(SMALL)
    np.testing.assert_allclose(idata.posterior["mu"].values[0, 0], mu_map, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(idata.posterior["Sigma"].values[0, 0], Sigma_map, rtol=1e-4)


# -- bad inputs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"S0": [[1.0, 0.5], [0.0, 1.0]]}, ValueError, "S0 must be symmetric"),
        ({"S0": [[1.0, 2.0], [2.0, 1.0]]}, ValueError, "S0 must be positive definite"),
        ({"S0": [[1.0, 0.0]]}, ValueError, "S0 must be a square"),
        ({"S0": "eye"}, TypeError, "S0"),
        ({"m0": [0.0, 0.0, 0.0], "S0": np.eye(2)}, ValueError, "S0 must have shape \\(3, 3\\)"),
        ({"m0": [np.nan, 0.0]}, ValueError, "m0 must be finite"),
        ({"m0": [[0.0]]}, ValueError, "m0 must be a non-empty 1-D"),
        ({"nu0": 0.5, "S0": np.eye(2)}, ValueError, "nu0 must be > D - 1 = 1"),
        ({"nu0": -1.0}, ValueError, "nu0 must be a positive"),
        ({"kappa0": 0.0}, ValueError, "kappa0 must be a positive"),
        ({"kappa0": "1"}, TypeError, "kappa0"),
    ],
)
def test_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        NIWGaussian(**kwargs)


@pytest.mark.parametrize(
    "data, error, match",
    [
        (np.array([1.0, 2.0, 3.0]), ValueError, "reshape\\(-1, 1\\)"),
        (np.zeros((2, 2, 2)), ValueError, "2-D"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN"),
        (np.zeros((0, 2)), ValueError, "at least one observation"),
        ("1 2 3", TypeError, "2-D numeric"),
        (np.array([["a", "b"]]), TypeError, "real numbers"),
    ],
)
def test_bad_data(data, error, match):
    with pytest.raises(error, match=match):
        NIWGaussian().check_data(data)


def test_bad_data_against_the_prior_and_params():
    with pytest.raises(ValueError, match="D = 3 features but the prior"):
        explicit_model().check_data(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="feature\\(s\\) \\[1\\] are constant"):
        NIWGaussian().map(np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="D - 1"):
        NIWGaussian(nu0=1.5).map(simulate(10, dim=3))
    with pytest.raises(ValueError, match="init\\['Sigma'\\] must be positive definite"):
        fit(MODEL, SMALL, backend="em", init={"mu": [0.0, 0.0], "Sigma": [[1.0, 2.0], [2.0, 1.0]]}, progressbar=False)
    with pytest.raises(ValueError, match="missing"):
        MODEL.log_likelihood(SMALL, {"mu": np.zeros(2)})
    with pytest.raises(ValueError, match="prior\\(\\) needs the prior"):
        NIWGaussian().prior()


def test_log_likelihood_names_sigma_when_not_positive_definite():
    """The user passed Sigma, so the message names Sigma (and the draw), not the family's covs."""
    x = np.random.default_rng(0).normal(size=(20, 2))
    model = NIWGaussian()
    with pytest.raises(ValueError, match=r"params\['Sigma'\] must be symmetric positive definite; its smallest eigenvalue is -1"):
        model.log_likelihood(x, {"mu": np.zeros(2), "Sigma": np.array([[1.0, 2.0], [2.0, 1.0]])})
    draws = np.stack([np.eye(2), np.eye(2), -np.eye(2)])
    with pytest.raises(ValueError, match=r"Sigma'\] must be symmetric positive definite \(flat draws \[2\]\)"):
        model.log_likelihood(x, {"mu": np.zeros((3, 2)), "Sigma": draws})
