"""Property tests of data validation (issue 13): the three coins, the Gaussian mixture, NIWGaussian and
GDA, fed arbitrary arrays.

For any input (shapes, dtypes, NaN and infinities anywhere, magnitudes from denormal to 1e308,
pandas and masked wrappers, object arrays of Python integers), validation either returns data
whose values are the input's, on which the model then computes finite numbers, or raises a
ValueError/TypeError that names the argument. Never another exception, never NaN later. No PyMC
compile happens here.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentzoo.models import GaussianMixture, NIWGaussian, ThreeCoins
from latentzoo.models.gaussian.data import GaussianData
from latentzoo.models.gaussian.gda import GaussianDiscriminantAnalysis

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.uint64, np.bool_, np.float16])
MAGNITUDES = st.sampled_from([1.0, 1e-310, 1e-120, 1e-90, 1e90, 1e150, 1e300, 1.7e12])


@st.composite
def arrays(draw, max_dims=3, values=None):
    """An array of a random dtype and shape (0 to ``max_dims`` dims, sides 0..6), scaled by a random
    magnitude when it is floating, with NaN or infinities at random places. Half the time the
    array is well-formed (2-D, finite, or 0/1 values when ``values`` is given), so that the model
    computes with validated data as often as it refuses them."""
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 12)), draw(st.integers(1, 3)))
        if max_dims < 2:
            shape = shape[:1]
        if values is not None:
            return draw(hnp.arrays(np.int64, shape, elements=st.sampled_from([0, 1])))
        base = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3)))
        # magnitudes within the computable range, offsets up to timestamps
        return base * draw(st.sampled_from([1.0, 1e-90, 1e90, 1e-3])) + draw(st.sampled_from([0.0, 1.7e12, -5.0]))
    dtype = np.dtype(draw(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6))
    elements = hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True) if dtype.kind == "f" else None
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    if dtype.kind == "f" and array.size:
        with np.errstate(over="ignore"):
            array = array.astype(np.float64) * draw(MAGNITUDES)
    return array


@st.composite
def wrapped(draw, array_strategy):
    """The array as given, as nested lists, an object array, a pandas object or a masked array."""
    array = draw(array_strategy)
    form = draw(st.sampled_from(["array", "list", "object", "pandas", "masked"]))
    if form == "list":
        return array, array.tolist()
    if form == "object":
        return array, array.astype(object)
    if form == "pandas" and array.ndim == 1:
        return array, pd.Series(array)
    if form == "pandas" and array.ndim == 2:
        return array, pd.DataFrame(array)
    if form == "masked" and array.ndim >= 1:
        mask = draw(hnp.arrays(np.bool_, array.shape))
        return np.where(mask, 0, array), np.ma.masked_array(array, mask=mask)
    return array, array


def _refusal_names(error: Exception, *names: str) -> None:
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    assert any(re.search(rf"\b{name}\b", str(error)) for name in names), f"the message names none of {names}: {error}"


def _validate(check, raw, *names):
    """``check(raw)``, or None after checking the refusal; never another exception type, nor a warning
    from NumPy (an overflow or invalid value inside the check)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return check(raw)
        except (ValueError, TypeError) as error:
            _refusal_names(error, *names)
            return None


# -- the Gaussian models --------------------------------------------------------------------
@SETTINGS
@given(wrapped(arrays()))
def test_gaussian_data_either_keep_the_values_or_name_data(case):
    array, raw = case
    data = _validate(GaussianData, raw, "data")
    if data is None:
        return
    assert not isinstance(raw, np.ma.MaskedArray) or not np.ma.is_masked(raw)
    expected = np.asarray(array, dtype=np.float64)
    np.testing.assert_array_equal(data.x, expected.reshape(data.x.shape))
    assert np.all(np.isfinite(data.x)) and np.max(np.abs(data.x)) <= 1e100
    assert data.x.ndim == 2 and data.x.flags.writeable is False


@SETTINGS
@given(wrapped(arrays(max_dims=2)))
def test_niw_posterior_is_finite_or_the_data_are_named(case):
    _, raw = case
    model = NIWGaussian()
    data = _validate(model.check_data, raw, "data")
    if data is None:
        return
    posterior = _validate(model.posterior, data, "data", "S0")
    if posterior is None:
        return
    for value in (posterior.m, posterior.S, posterior.kappa, posterior.nu):
        assert np.all(np.isfinite(value))
    assert np.isfinite(model.log_evidence(data))


@SETTINGS
@given(wrapped(arrays(max_dims=2)), st.integers(1, 3))
def test_mixture_prior_and_likelihood_are_finite_or_the_data_are_named(case, n_components):
    _, raw = case
    model = GaussianMixture(n_components)
    data = _validate(model.check_data, raw, "data")
    if data is None:
        return
    fixed = _validate(model.with_data_prior, data, "data", "S0")
    if fixed is None:
        return
    start = fixed.initial_params(data, np.random.default_rng(0), "random")
    log_lik = fixed.log_likelihood(data, start)
    assert log_lik.shape == (data.n_observations,) and np.all(np.isfinite(log_lik))
    assert np.isfinite(fixed.log_prior(start))


@SETTINGS
@given(wrapped(arrays(max_dims=2)), st.integers(0, 2**32 - 1))
def test_gda_fits_finite_or_names_x_or_y(case, seed):
    # the data-driven prior's message speaks of the data (the whole training set X)
    _, raw = case
    n = len(raw) if hasattr(raw, "__len__") and np.ndim(raw) > 0 else 1
    labels = np.random.default_rng(seed).permutation(np.arange(n) % 2)
    clf = GaussianDiscriminantAnalysis(estimator="map")
    fitted = _validate(lambda X: clf.fit(X, labels), raw, "X", "y", "data")
    if fitted is None:
        return
    probabilities = fitted.predict_proba(raw)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(1), 1.0)


# -- the three coins ------------------------------------------------------------------------
@SETTINGS
@given(wrapped(arrays(values=True)))
def test_coin_data_either_keep_the_flips_or_name_data(case):
    array, raw = case
    model = ThreeCoins()
    data = _validate(model.check_data, raw, "data", "flips")
    if data is None:
        return
    np.testing.assert_array_equal(data.flips, np.asarray(array).reshape(data.flips.shape))
    log_lik = model.log_likelihood(data, {"pi": 0.3, "p": 0.8, "q": 0.1})
    assert log_lik.shape == (data.n_trials,) and np.all(np.isfinite(log_lik))


@SETTINGS
@given(st.lists(st.lists(st.sampled_from([0, 1, 2, 2**70, -(2**64), 0.5]), min_size=1, max_size=4), min_size=1, max_size=4))
def test_coin_lists_of_python_numbers_are_read_as_given(rows):
    model = ThreeCoins()
    flat = [value for row in rows for value in row]
    for raw in (flat, rows):
        bad = sorted({value for value in flat if value not in (0, 1)}, key=str)
        ragged = raw is rows and len({len(row) for row in rows}) > 1
        try:
            data = model.check_data(raw)
        except (ValueError, TypeError) as error:
            assert bad or ragged, error
            if bad and not ragged:
                # every bad value is shown as given (2**70 in full, not wrapped into int64)
                assert any(str(value) in str(error) for value in bad), error
            continue
        assert not bad and not ragged
        np.testing.assert_array_equal(data.flips, np.asarray(raw))


@SETTINGS
@given(st.lists(st.text(alphabet="01 \t,\n", max_size=12), min_size=1, max_size=4))
def test_coin_text_reads_like_its_tokens(lines):
    text = "\n".join(lines)
    rows = ["".join(line.replace(",", " ").split()) for line in text.splitlines()]
    rows = [row for row in rows if row]
    try:
        flips = ThreeCoins().check_data(text).flips
    except ValueError as error:
        assert "data given as text" in str(error)
        assert not rows or len({len(row) for row in rows}) > 1
        return
    if len(rows) == 1 or all(len(row) == 1 for row in rows):
        assert flips.tolist() == [int(c) for row in rows for c in row]
    else:
        assert flips.tolist() == [[int(c) for c in row] for row in rows]


@pytest.mark.parametrize("value", [np.array(0.4), np.float32(0.4), 0.4])
def test_coin_init_scalars_of_every_form(value):
    params = ThreeCoins().check_params({"pi": value, "p": 0.3, "q": 0.7}, "init")
    assert float(params["pi"]) == pytest.approx(0.4, rel=1e-6)
