"""ConjugateMixture (models/core/conjugate_mixture.py): moments against Monte Carlo and closed forms,
and the three models' exact posteriors against values of the code it replaced.

The reference values in ``BEFORE`` were computed by running the original classes
(``ThreeCoinsPosterior``, ``HMMExactPosterior``, ``NIWPosterior`` of commit 9725172), not the
code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from latentzoo.models import CategoricalHMM, DiceHMM, NIWGaussian, ThreeCoins
from latentzoo.models.core.conjugate import Beta, Dirichlet, Gamma, MaskedDirichlet, NormalInverseWishart
from latentzoo.models.core.conjugate_mixture import ConjugateMixture


def _spd(rng, shape, dim):
    factor = rng.normal(size=shape + (dim, dim))
    return factor @ np.swapaxes(factor, -1, -2) + dim * np.eye(dim)


def _mixtures():
    rng = np.random.default_rng(5)
    mask = np.array([[True, True, False], [True, True, True]])
    return {
        "beta": ConjugateMixture(np.log([0.2, 0.5, 0.3]), {"p": Beta([1.0, 4.0, 10.0], [3.0, 2.0, 1.0])}, -1.0),
        "gamma and dirichlet": ConjugateMixture(
            np.log([0.1, 0.6, 0.3]),
            {"rates": Gamma(rng.uniform(1.0, 9.0, size=(3, 2)), rng.uniform(0.5, 3.0, size=(3, 2))),
             "weights": Dirichlet(rng.gamma(2.0, size=(3, 2)) + 0.5)},
            -1.5,
        ),
        "dirichlet rows": ConjugateMixture(
            np.log([0.6, 0.4]), {"trans": Dirichlet(rng.gamma(2.0, size=(2, 3, 4)) + 0.5)}, -2.0
        ),
        "masked dirichlet": ConjugateMixture(
            np.log([0.3, 0.7]), {"emission": MaskedDirichlet(rng.gamma(2.0, size=(2, 2, 3)) + 0.5, mask)}, -3.0
        ),
        "niw components": ConjugateMixture(
            np.log([0.25, 0.75]),
            {
                ("means", "covs"): NormalInverseWishart(
                    rng.normal(size=(2, 2, 2)), np.full((2, 2), 3.0), np.array([[6.0, 7.0], [8.0, 9.0]]),
                    _spd(rng, (2, 2), 2),
                ),
                "weights": Dirichlet(np.array([[2.0, 3.0], [5.0, 1.0]])),
            },
            -4.0,
        ),
        "niw single": ConjugateMixture.single(
            {("mu", "Sigma"): NormalInverseWishart(np.array([1.0, -1.0]), 2.0, 7.0, _spd(rng, (), 2))}, -5.0
        ),
    }


MIXTURES = _mixtures()


@pytest.mark.parametrize("label", list(MIXTURES))
def test_mean_is_the_monte_carlo_mean_of_sample(label):
    mixture = MIXTURES[label]
    n = 40_000
    draws = mixture.sample(np.random.default_rng(11), n)
    means = mixture.mean()
    assert set(draws) == set(means)
    for name, mean in means.items():
        assert draws[name].shape == (n,) + np.shape(mean), name
        standard_error = draws[name].std(axis=0) / np.sqrt(n)
        # masked entries are exactly 0 in every draw and in the mean
        assert np.all(np.abs(draws[name].mean(axis=0) - mean) <= 5 * standard_error + 1e-12), name


def test_two_component_beta_mean_and_sd_in_closed_form():
    w, (a1, b1), (a2, b2) = 0.3, (2.0, 5.0), (6.0, 2.0)
    mixture = ConjugateMixture(np.log([w, 1 - w]), {"p": Beta([a1, a2], [b1, b2])}, 0.0)
    first = w * a1 / (a1 + b1) + (1 - w) * a2 / (a2 + b2)
    second = w * a1 * (a1 + 1) / ((a1 + b1) * (a1 + b1 + 1)) + (1 - w) * a2 * (a2 + 1) / ((a2 + b2) * (a2 + b2 + 1))
    assert mixture.mean()["p"] == pytest.approx(first, rel=1e-14)
    assert mixture.sd()["p"] == pytest.approx(np.sqrt(second - first**2), rel=1e-13)
    assert isinstance(mixture.mean()["p"], float)


def test_two_component_gamma_mean_and_sd_in_closed_form():
    w, (a1, b1), (a2, b2) = 0.3, (2.0, 0.5), (9.0, 3.0)
    mixture = ConjugateMixture(np.log([w, 1 - w]), {"rate": Gamma([a1, a2], [b1, b2])}, 0.0)
    first = w * a1 / b1 + (1 - w) * a2 / b2
    # E[x^2] = shape (shape + 1) / rate^2
    second = w * a1 * (a1 + 1) / b1**2 + (1 - w) * a2 * (a2 + 1) / b2**2
    assert mixture.mean()["rate"] == pytest.approx(first, rel=1e-14)
    assert mixture.sd()["rate"] == pytest.approx(np.sqrt(second - first**2), rel=1e-13)
    # one component, picked by index, is the Gamma at that index
    component = mixture.component(1)["rate"]
    assert isinstance(component, Gamma) and (component.shape, component.rate) == (a2, b2)


def test_sd_covers_the_factors_with_a_variance_only():
    mixture = ConjugateMixture(
        np.log([0.5, 0.5]), {"p": Beta([1.0, 2.0], [1.0, 2.0]), "rows": Dirichlet(np.ones((2, 3)))}, 0.0
    )
    assert set(mixture.sd()) == {"p"}


def test_mode_needs_a_single_component():
    niw = NormalInverseWishart(np.array([1.0, -1.0]), 2.0, 7.0, np.array([[2.0, 0.3], [0.3, 1.0]]))
    single = ConjugateMixture.single({("mu", "Sigma"): niw}, 0.0)
    mu, Sigma = niw.mode()
    np.testing.assert_array_equal(single.mode()["mu"], mu)
    np.testing.assert_array_equal(single.mode()["Sigma"], Sigma)
    with pytest.raises(ValueError, match="single component; this mixture has 3"):
        MIXTURES["beta"].mode()


@pytest.mark.parametrize("log_weights, factors, error, match", [
    (np.zeros((1, 2)), {"p": Beta([1.0, 1.0], [1.0, 1.0])}, ValueError, "log_weights must be a non-empty 1-D"),
    (np.log([0.5, 0.5]), {"p": Beta([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])}, ValueError, r"factors\['p'\] must have the 2 components"),
    (np.log([0.5, 0.5]), {"p": (1.0, 1.0)}, TypeError, "got tuple"),
    (np.log([0.5, 0.5]), {}, TypeError, "non-empty dict"),
])
def test_bad_arguments(log_weights, factors, error, match):
    with pytest.raises(error, match=match):
        ConjugateMixture(log_weights, factors, 0.0)


# ----------------------------------------------------------------------------------------
# the models' exact posteriors, as before the change
# ----------------------------------------------------------------------------------------
_rng = np.random.default_rng(123)
FLIPS_2D = (_rng.random((6, 4)) < 0.6).astype(int)
X_NIW = _rng.normal(size=(20, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]]) + [1.0, -2.0]

CASES = {
    "coins_seed": (ThreeCoins(), "1111110000"),
    "coins_informative_2d": (ThreeCoins(pi_prior=(2, 3), p_prior=(2, 1), q_prior=(1, 2)), FLIPS_2D),
    "coins_pi_fixed_2d": (ThreeCoins(pi=0.5), FLIPS_2D),
    "dice_seed": (DiceHMM(), [1, 6, 3, 5, 2, 7, 3, 5, 2, 4]),
    "dice_small": (DiceHMM(dice=(2, 3)), [1, 3, 2, 2]),
    "cat_many": (CategoricalHMM(2, 3, init_prior=[1.0, 2.0], emission_prior=0.5), [[0, 1], [2, 2, 1], [1]]),
    "niw_data_driven": (NIWGaussian(), X_NIW),
    "niw_explicit": (NIWGaussian(m0=[0.0, 0.0], kappa0=1.0, nu0=5.0, S0=[[1.0, 0.2], [0.2, 2.0]]), X_NIW),
}

# "draws": the first two of ``sample(np.random.default_rng(7), 500)``
BEFORE = {
    "coins_seed": {
        "log_evidence": -7.499202991652485,
        "mean": {"pi": 0.49999999999999983, "p": 0.554311025843584, "q": 0.5543110258435842},
        "sd": {"pi": 0.27300844091902277, "p": 0.24916064905468044, "q": 0.24916064905468044},
        "draws": {
            "pi": [0.7529751142441017, 0.9319923695604683],
            "p": [0.8624189628558272, 0.6900002504004429],
            "q": [0.25724604593792094, 0.13903634586418973],
        },
    },
    "coins_informative_2d": {
        "log_evidence": -9.544622489428525,
        "mean": {"pi": 0.3978558347733545, "p": 0.6734117096683103, "q": 0.4887303241361504},
        "sd": {"pi": 0.19927207736472885, "p": 0.18414773708984125, "q": 0.1580504396976726},
        "draws": {"pi": [0.6380318864883741, 0.9228747748466293], "q": [0.41576198714044316, 0.4256239401874266]},
    },
    "coins_pi_fixed_2d": {
        "log_evidence": -9.595418638151399,
        "mean": {"p": 0.5757682292323514, "q": 0.5757682292323514},
        "sd": {"p": 0.18361760827370144, "q": 0.183617608273701},
        "draws": {"p": [0.8519422022925809, 0.7124715653753301], "q": [0.2340208790191301, 0.9846646762883758]},
    },
    "dice_seed": {
        "log_evidence": -21.33464153015171,
        "mean": {
            "init_probs": [0.3284475011614321, 0.371816497404124, 0.29973600143444146],
            "trans_mat": [
                [0.3078025959855737, 0.31882885275658657, 0.3733685512578381],
                [0.33761924870510657, 0.21497620894043132, 0.44740454235446014],
                [0.3230418211840291, 0.38807114764223716, 0.2888870311737307],
            ],
        },
        "draws": {
            "init_probs": [
                [0.13140311963904672, 0.7679292923449932, 0.1006675880159601],
                [0.22749811893763777, 0.47190761280772386, 0.30059426825463836],
            ],
        },
    },
    "dice_small": {
        "log_evidence": -4.986620417892382,
        "mean": {
            "init_probs": [0.5423728813559321, 0.4576271186440678],
            "trans_mat": [[0.42937853107344637, 0.5706214689265536], [0.47005649717514125, 0.5299435028248588]],
            "emission_probs": [
                [0.45762711864406774, 0.5423728813559322, 0.0],
                [0.25786924939467315, 0.35714285714285715, 0.38498789346246975],
            ],
        },
        "draws": {
            "emission_probs": [
                [[0.2576828852653296, 0.7423171147346703, 0.0], [0.11819740009391334, 0.03918722106629506, 0.8426153788397917]],
                [[0.4171334616224298, 0.5828665383775703, 0.0], [0.08677971278449115, 0.2821606078153333, 0.6310596794001756]],
            ],
        },
    },
    "cat_many": {
        "log_evidence": -7.534040043177242,
        "mean": {
            "init_probs": [0.35976796818351614, 0.6402320318164841],
            "trans_mat": [[0.5036022060600734, 0.4963977939399266], [0.49081848344356316, 0.509181516556437]],
            "emission_probs": [
                [0.23189998022456107, 0.43291951396365724, 0.3351805058117818],
                [0.24257871723319638, 0.42089604710949025, 0.3365252356573138],
            ],
        },
        "draws": {"init_probs": [[0.5720006528476008, 0.4279993471523992], [0.9125592068694565, 0.08744079313054354]]},
    },
    "niw_data_driven": {
        "log_evidence": -55.594382510801466,
        "mean": {
            "mu": [1.3281782337008052, -2.112447981447685],
            "Sigma": [[0.670298379631028, 0.2611302355845845], [0.2611302355845845, 0.4852285237132327]],
        },
        "mode": {"Sigma": [[0.502723784723271, 0.19584767668843833], [0.19584767668843833, 0.3639213927849245]]},
        "draws": {"mu": [[1.5044858822648142, -1.9086732874692338], [1.4005165402526605, -1.9586432268711405]]},
    },
    "niw_explicit": {
        "log_evidence": -57.201189491579605,
        "mean": {
            "mu": [1.2649316511436242, -2.011855220426367],
            "Sigma": [[0.7311828308540336, 0.13689239246130172], [0.13689239246130172, 0.7252049988008782]],
        },
        "mode": {
            "mu": [1.2649316511436242, -2.011855220426367],
            "Sigma": [[0.5546904234065082, 0.10384940117753923], [0.10384940117753923, 0.5501555163317007]],
        },
        "draws": {
            "mu": [[1.4450886413369217, -1.8000250134744251], [1.338637220831302, -1.8323063484927662]],
            "Sigma": [
                [[0.6610806577522546, 0.136989910686431], [0.136989910686431, 0.7436261465139984]],
                [[0.8075461032257769, 0.33519086540259346], [0.33519086540259346, 0.7453242660912521]],
            ],
        },
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_exact_posteriors_are_unchanged(case):
    model, data = CASES[case]
    expected = BEFORE[case]
    posterior = model.exact_posterior(data)
    assert isinstance(posterior, ConjugateMixture)
    assert posterior.log_evidence == pytest.approx(expected["log_evidence"], rel=1e-12)
    assert np.exp(posterior.log_weights).sum() == pytest.approx(1.0, rel=1e-12)
    for what in ("mean", "sd", "mode"):
        values = getattr(posterior, what)() if what in expected else {}
        for name, value in expected.get(what, {}).items():
            np.testing.assert_allclose(values[name], value, rtol=1e-12, atol=1e-15, err_msg=f"{what} {name}")
    draws = posterior.sample(np.random.default_rng(7), 500)
    for name, value in expected["draws"].items():
        np.testing.assert_allclose(draws[name][:2], value, rtol=1e-12, atol=1e-15, err_msg=f"draws {name}")
