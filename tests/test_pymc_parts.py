"""The PyMC Inverse-Wishart (models/ops/pymc_parts.py): log-density against scipy.stats, the
log-Cholesky transform's Jacobian against finite differences, the mode found by find_MAP and
the mean sampled by NUTS against the closed forms S / (nu + D + 1) and S / (nu - D - 1), and
that compiled model functions never factorise Sigma again.

Reference values come from scipy.stats.invwishart, numerical differentiation and the closed
forms, never from the code under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

pm = pytest.importorskip("pymc")
import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

from latentzoo.models.ops.pymc_parts import (  # noqa: E402
    UNROLL_MAX_DIM,
    SPDCholeskyTransform,
    inverse_wishart,
    lower_triangular_inverse,
    mvnormal,
    spd_cholesky,
    mvnormal_logp,
    spd_log_jacobian_coefficients,
)

pytestmark = pytest.mark.pymc

#: Monte-Carlo tolerance in standard errors (two-sided, several comparisons per test)
Z = 4.5


def random_spd(rng, dim, batch=()):
    A = rng.normal(size=(*batch, dim, dim))
    return A @ np.swapaxes(A, -1, -2) + dim * np.eye(dim)


def unpack(z, dim):
    """Log-Cholesky vector -> SPD matrix, written independently of the code under test."""
    L = np.zeros((dim, dim))
    rows, cols = np.tril_indices(dim)
    L[rows, cols] = np.where(rows == cols, np.exp(z), z)
    return L @ L.T


def value_name(model, name):
    (value,) = [v.name for v in model.value_vars if v.name.startswith(name)]
    return value


def iw_model(nu, scale, dims=None, coords=None):
    with pm.Model(coords=coords or {}) as model:
        Sigma, chol = inverse_wishart("Sigma", nu, scale, dims=dims)
    return model, Sigma, chol


@pytest.mark.parametrize("batch", [(), (3,)], ids=["single", "batched"])
@pytest.mark.parametrize("dim", [1, 3])
def test_logp_equals_scipy(batch, dim):
    rng = np.random.default_rng(dim + len(batch))
    nu = dim + 2.5
    scale = random_spd(rng, dim, batch)
    model, Sigma, _ = iw_model(nu, scale)
    logp = model.compile_logp(jacobian=False)
    logp_jacobian = model.compile_logp(jacobian=True)
    value = value_name(model, "Sigma")
    for _ in range(3):
        z = rng.normal(size=(*batch, dim * (dim + 1) // 2))
        matrices = np.array([unpack(row, dim) for row in z.reshape(-1, z.shape[-1])])
        scales = scale.reshape(-1, dim, dim)
        expected = sum(stats.invwishart(nu, s).logpdf(m if dim > 1 else m[0, 0]) for s, m in zip(scales, matrices))
        assert float(logp({value: z})) == pytest.approx(expected, rel=1e-10)
        jacobian = sum(dim * np.log(2) + spd_log_jacobian_coefficients(dim) @ row for row in z.reshape(-1, z.shape[-1]))
        assert float(logp_jacobian({value: z})) == pytest.approx(expected + jacobian, rel=1e-10)


def test_returned_chol_is_the_cholesky_factor_and_dims_apply():
    rng = np.random.default_rng(1)
    coords = {"component": [0, 1], "feature": [0, 1, 2], "feature_bis": [0, 1, 2]}
    model, Sigma, chol = iw_model(5.0, random_spd(rng, 3, (2,)), dims=("component", "feature", "feature_bis"), coords=coords)
    assert model.named_vars_to_dims["Sigma"] == ("component", "feature", "feature_bis")
    z = rng.normal(size=(2, 6))
    transform = model.rvs_to_transforms[Sigma]
    Sigma_value = transform.backward(pt.as_tensor(z)).eval()
    (chol_of_value,) = model.replace_rvs_by_values([chol])
    chol_value = pytensor.function(model.value_vars, chol_of_value)(z)
    np.testing.assert_allclose(chol_value, np.linalg.cholesky(Sigma_value), rtol=1e-12)
    np.testing.assert_allclose(Sigma_value, np.array([unpack(row, 3) for row in z]), rtol=1e-12)


def test_transform_jacobian_by_finite_differences():
    rng = np.random.default_rng(2)
    dim = 3
    transform = SPDCholeskyTransform(dim)
    z_var = pt.dvector("z")
    backward = pytensor.function([z_var], transform.backward(z_var))
    log_jac = pytensor.function([z_var], transform.log_jac_det(z_var))
    rows, cols = np.tril_indices(dim)
    z = rng.normal(size=rows.size)
    eps = 1e-6
    columns = [(backward(z + eps * e)[rows, cols] - backward(z - eps * e)[rows, cols]) / (2 * eps) for e in np.eye(z.size)]
    expected = np.linalg.slogdet(np.column_stack(columns))[1]
    assert float(log_jac(z)) == pytest.approx(expected, rel=1e-7)
    # forward inverts backward
    forward = pytensor.function([z_var], transform.forward(transform.backward(z_var)))
    np.testing.assert_allclose(forward(z), z, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch", [(), (3,)], ids=["single", "batched"])
def test_spd_cholesky_value_and_gradient(batch):
    """Its value is numpy's factor; its gradient matches finite differences (numpy's Cholesky
    reads the lower triangle only, so the upper triangle's derivative is zero)."""
    rng = np.random.default_rng(21)
    dim = 3
    spd = random_spd(rng, dim, batch)
    x = pt.tensor("x", shape=(*batch, dim, dim))
    chol = spd_cholesky(x)
    np.testing.assert_allclose(pytensor.function([x], chol)(spd), np.linalg.cholesky(spd), rtol=1e-12)
    weights = rng.normal(size=(*batch, dim, dim))  # a generic linear functional of L
    gradient = pytensor.function([x], pytensor.grad(pt.sum(weights * chol), x))(spd)
    step = 1e-6
    numeric = np.zeros_like(spd)
    for index in np.ndindex(spd.shape):
        up, down = spd.copy(), spd.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (np.sum(weights * np.linalg.cholesky(up)) - np.sum(weights * np.linalg.cholesky(down))) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)


def test_compiled_gradient_calls_no_python_linear_algebra():
    """The speed contract: with mvnormal on the returned chol, the compiled log-density and
    gradient neither factorise Sigma again nor call SciPy (Cholesky, triangular solves)."""
    rng = np.random.default_rng(3)
    with pm.Model() as model:
        _, chol = inverse_wishart("Sigma", 6.0, random_spd(rng, 2, (3,)))
        mu = mvnormal("mu", np.zeros((3, 2)), chol)
        mvnormal("x", mu, chol, observed=rng.normal(size=(10, 3, 2)))
        # a mixture's density as FiniteMixture declares it: logsumexp over the components
        y = rng.normal(size=(10, 2))
        pm.Potential("y", pt.logsumexp(np.log(np.full(3, 1 / 3)) + mvnormal_logp(pt.as_tensor(y)[:, None, :], mu, chol), axis=-1).sum())
    function = model.logp_dlogp_function(ravel_inputs=True)._pytensor_function
    ops = {type(getattr(node.op, "core_op", node.op)).__name__ for node in function.maker.fgraph.toposort()}
    assert not ops & {"Cholesky", "SPDCholesky", "SolveTriangular", "Solve", "MatrixInverse", "AllocDiag"}, ops


@pytest.mark.parametrize("dim", [1, 3, UNROLL_MAX_DIM + 1], ids=["D=1", "D=3", "fallback"])
def test_lower_triangular_inverse(dim):
    rng = np.random.default_rng(dim)
    L = np.linalg.cholesky(random_spd(rng, dim, (2,)))
    chol = pt.tensor3("chol", shape=(None, dim, dim))
    inverse = pytensor.function([chol], lower_triangular_inverse(chol))(L)
    np.testing.assert_allclose(inverse, np.linalg.inv(L), rtol=1e-10, atol=1e-12)


def test_mvnormal_logp_equals_scipy_and_broadcasts():
    rng = np.random.default_rng(7)
    dim = 3
    covs = random_spd(rng, dim, (2,))
    L = np.linalg.cholesky(covs)
    mu = rng.normal(size=(2, dim))
    x = rng.normal(size=(5, 2, dim))
    logp = mvnormal_logp(pt.as_tensor(x), pt.as_tensor(mu), pt.as_tensor(L)).eval()
    expected = np.stack([stats.multivariate_normal(mu[k], covs[k]).logpdf(x[:, k]) for k in range(2)], axis=1)
    np.testing.assert_allclose(logp, expected, rtol=1e-10)
    # as a PyMC variable: the observed log-density, and prior draws with the right moments
    with pm.Model() as model:
        mvnormal("x", mu, L, observed=x)
        y = mvnormal("y", mu[0], L[0])
    logp_x = model.compile_logp(vars=[model["x"]])
    assert float(logp_x({"y": mu[0]})) == pytest.approx(expected.sum(), rel=1e-10)
    draws = pm.draw(y, draws=20_000, random_seed=8)
    n = draws.shape[0]
    sd = np.sqrt(np.diag(covs[0]))
    assert np.all(np.abs(draws.mean(0) - mu[0]) < Z * sd / np.sqrt(n))
    # sample covariances: standard error of s_ij is about sqrt((s_ii s_jj + s_ij^2) / n)
    se = np.sqrt((np.outer(np.diag(covs[0]), np.diag(covs[0])) + covs[0] ** 2) / n)
    assert np.all(np.abs(np.cov(draws.T) - covs[0]) < Z * se)


@pytest.mark.parametrize("batch", [(), (2,)], ids=["single", "batched"])
def test_find_map_is_the_mode(batch):
    rng = np.random.default_rng(4)
    dim, nu = 3, 6.0
    scale = random_spd(rng, dim, batch)
    model, _, _ = iw_model(nu, scale)
    start = {"Sigma": np.broadcast_to(np.eye(dim), scale.shape).copy()}
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(start=start, progressbar=False)
    mode = scale / (nu + dim + 1)
    np.testing.assert_allclose(point["Sigma"], mode, rtol=1e-5, atol=1e-5 * np.abs(mode).max())


# slow only (make test-slow): NUTS on the IW alone. NIWGaussian's NUTS against the closed form
# (test_agreement.py) is slow-only as well. By default the IW part is checked through its log
# density and find_MAP's mode (above), NIWGaussian's PyMC log density against scipy
# (test_niw.py), and ADVI and full-rank ADVI on NIWGaussian against the closed-form posterior
# (test_accuracy_pymc.py)
@pytest.mark.slow
def test_nuts_reproduces_the_mean():
    rng = np.random.default_rng(5)
    dim, nu = 2, 9.0
    scale = random_spd(rng, dim)
    model, _, _ = iw_model(nu, scale)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws=1000, tune=500, chains=2, cores=1, random_seed=6, progressbar=False, compute_convergence_checks=False
        )
    import arviz as az

    draws = idata.posterior["Sigma"]
    ess = az.ess(idata, var_names=["Sigma"])["Sigma"].values
    sd = draws.std(("chain", "draw")).values
    error = draws.mean(("chain", "draw")).values - scale / (nu - dim - 1)
    assert np.all(np.abs(error) < Z * sd / np.sqrt(ess)), error / (sd / np.sqrt(ess))
    # and the spread: the variance of the diagonal, Var(Sigma_ii) = 2 s_ii^2 / ((nu-D-1)^2 (nu-D-3))
    expected_sd = np.sqrt(2 * np.diag(scale) ** 2 / ((nu - dim - 1) ** 2 * (nu - dim - 3)))
    ratio = np.diag(sd) / expected_sd
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


@pytest.mark.parametrize(
    "nu, scale, error, match",
    [
        (1.5, np.eye(3), ValueError, "nu must be a finite number > D - 1 = 2"),
        ("4", np.eye(2), TypeError, "nu must be a real number"),
        (4.0, np.ones(3), ValueError, "scale must have shape"),
        (4.0, [[1.0, 0.5], [0.0, 1.0]], ValueError, "scale must be symmetric"),
        (4.0, [[1.0, 2.0], [2.0, 1.0]], ValueError, "scale must be positive definite"),
        (4.0, "eye", TypeError, "scale must be"),
        (4.0, [[np.nan, 0.0], [0.0, 1.0]], ValueError, "scale must be finite"),
    ],
)
def test_bad_parameters(nu, scale, error, match):
    with pm.Model(), pytest.raises(error, match=match):
        inverse_wishart("Sigma", nu, scale)
