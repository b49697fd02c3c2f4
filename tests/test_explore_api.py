"""``latentzoo explore``'s JSON API (Starlette's TestClient, no browser).

What it protects: the numbers the page draws are the library's (``fit`` with the same seed and
options, the exact posterior), the exact contours are the posterior density (checked against
numerical integration over pi, independently of the library), and bad input answers 4xx with
the library's message while the server goes on serving. For every view: three coins, the Gaussian
mixture (fits compared with ``fit``; ellipses against the closed-form Mahalanobis distance) and
the dice HMM (smoothing and Viterbi compared with ``fit`` and with brute-force enumeration of
every state path).
"""

from __future__ import annotations

import os
from itertools import product

import numpy as np
import pytest
from scipy import integrate, stats

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from latentzoo.inference import fit  # noqa: E402
from latentzoo.inference.explore import coins, dice, gmm  # noqa: E402
from latentzoo.inference.explore.server import create_app  # noqa: E402
from latentzoo.models import DiceHMM, GaussianMixture, ThreeCoins, datasets  # noqa: E402

SEED_BODY = {"flips": "1111110000", "seed": 3, "tag": 7}


@pytest.fixture(scope="module")
def client():
    """The app with its panels computed in this process (``lanes=0``), so that a test can empty
    a view's cache of recent fits (``RECENT_FITS``) and know that nothing is read from it."""
    with TestClient(create_app(allowed_hosts=("testserver", "127.0.0.1", "localhost"), lanes=0)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def laned():
    """The app as ``latentzoo explore`` serves it: the panels computed in two worker processes."""
    with TestClient(create_app(allowed_hosts=("testserver",), warm_up=False, lanes=2)) as test_client:
        yield test_client


def post(client, method, body, prefix="/api/three-coins/"):
    return client.post(prefix + method, json=body)


def test_page_and_plotly_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<script src="/static/plotly.min.js">' in page.text
    assert "http" not in page.text.split("<body>")[0].replace('http-equiv', '')  # nothing fetched from the network
    plotly_js = client.get("/static/plotly.min.js")
    assert plotly_js.status_code == 200 and len(plotly_js.content) > 1_000_000
    for script in ("shared.js", "coins.js", "gmm.js", "dice.js"):
        assert client.get(f"/static/{script}").status_code == 200


def test_data_panel_shows_the_sufficient_statistics(client):
    answer = post(client, "data", {"flips": "0110\n1111\n0000", "tag": 1}).json()
    assert answer["n_trials"] == 3 and answer["n_flips"] == 4 and answer["total_heads"] == 6
    assert answer["trials_by_heads"] == {"0": 1, "1": 0, "2": 1, "3": 0, "4": 1}
    assert answer["head_rate"] == pytest.approx(0.5)
    assert answer["tag"] == 1


def test_em_fixed_points_are_fits_and_lie_on_the_ridge(client):
    answer = post(client, "em", dict(SEED_BODY, options={"n_starts": 9})).json()
    run = answer["map"]
    idata = fit(ThreeCoins(), "1111110000", backend="em", random_seed=3, init="random", n_init=9, max_iter=200,
                tol=1e-8, progressbar=False)
    for name in ("pi", "p", "q"):
        np.testing.assert_allclose(run["fixed_points"][name], idata["fit_history"][f"final_{name}"].values, rtol=0, atol=1e-12)
    # with one flip per trial the likelihood depends on pi p + (1 - pi) q only: its ML set is that
    # sum = the head rate 6/10 (closed form), and every EM fixed point lies there
    pi, p, q = (np.array(run["fixed_points"][name]) for name in ("pi", "p", "q"))
    np.testing.assert_allclose(pi * p + (1 - pi) * q, 0.6, atol=1e-6)
    assert run["paths_match"]
    assert all(len(path["p"]) >= 2 for path in run["paths"])
    assert answer["ml_is_map"] and "ml" not in answer


def test_em_paths_end_at_fits_fixed_points_with_several_flips_per_trial(client):
    """With several flips per trial EM creeps to its fixed points, so a path that stops one step
    off ``fit``'s loop ends visibly elsewhere (it did: 1e-4 away, and the page said so)."""
    body = {"flips": "0000\n1011\n0010\n1111\n0111\n1110", "seed": 0, "p_prior": [2, 5], "tag": 4}
    answer = post(client, "em", body).json()
    for label in ("map", "ml"):
        run = answer[label]
        assert run["paths_match"], label
        ends = {name: [path[name][-1] for path in run["paths"]] for name in ("pi", "p", "q")}
        for name, values in ends.items():
            np.testing.assert_allclose(values, run["fixed_points"][name], rtol=0, atol=1e-12)
        assert max(len(path["p"]) for path in run["paths"]) > 3  # it did creep


def test_em_shows_ml_beside_map_under_informative_priors(client):
    body = dict(SEED_BODY, p_prior=[5, 1], q_prior=[1, 5])
    answer = post(client, "em", body).json()
    assert not answer["ml_is_map"]
    ml = answer["ml"]
    # ML ignores the priors: still the ridge; MAP is pulled off it by Beta(5, 1) and Beta(1, 5)
    np.testing.assert_allclose(ml["heads_prob"], 0.6, atol=1e-6)
    assert ml["paths_match"] and answer["map"]["paths_match"]
    assert np.mean(answer["map"]["fixed_points"]["p"]) > np.mean(answer["map"]["fixed_points"]["q"])


def test_em_under_priors_below_one_reports_why_map_fails_and_still_shows_ml(client):
    answer = post(client, "em", dict(SEED_BODY, p_prior=[0.5, 0.5])).json()
    assert "MAP does not exist" in answer["map"]["error"]
    np.testing.assert_allclose(answer["ml"]["heads_prob"], 0.6, atol=1e-6)


def _integrated_density(flips, p, q, priors):
    """p(x, p, q) with pi integrated out numerically (scipy quad), up to the evidence."""
    heads = np.array([int(c) for c in flips])

    def integrand(pi):
        per_trial = pi * p**heads * (1 - p) ** (1 - heads) + (1 - pi) * q**heads * (1 - q) ** (1 - heads)
        return np.prod(per_trial) * stats.beta.pdf(pi, *priors[0])

    return integrate.quad(integrand, 0, 1)[0] * stats.beta.pdf(p, *priors[1]) * stats.beta.pdf(q, *priors[2])


def test_exact_contours_are_the_posterior_density(client):
    flips = "110100"
    priors = ([2.0, 2.0], [3.0, 1.5], [1.0, 1.0])
    body = {"flips": flips, "pi_prior": priors[0], "p_prior": priors[1], "q_prior": priors[2], "seed": 0}
    answer = post(client, "exact", body).json()
    grid, density = np.array(answer["grid"]), np.array(answer["density"])  # density[q index, p index]
    evidence = np.exp(answer["log_evidence"])
    for i, j in [(10, 40), (30, 30), (50, 5), (45, 20)]:
        expected = _integrated_density(flips, grid[j], grid[i], priors) / evidence
        assert density[i, j] == pytest.approx(expected, rel=1e-8)
    # the marginal of p integrates to one, and its mean is the exact posterior mean
    x, marginal = np.array(answer["marginals"]["p"]["x"]), np.array(answer["marginals"]["p"]["density"])
    assert np.trapezoid(marginal, x) == pytest.approx(1.0, abs=5e-3)
    assert np.trapezoid(x * marginal, x) == pytest.approx(answer["mean"]["p"], abs=5e-3)
    exact = ThreeCoins(pi_prior=(2, 2), p_prior=(3, 1.5)).exact_posterior(flips)
    assert answer["mean"]["p"] == pytest.approx(float(exact.mean()["p"]), rel=1e-12)


def test_vb_is_the_fit_and_narrower_than_the_exact_posterior(client):
    answer = post(client, "vb", SEED_BODY).json()
    idata = fit(ThreeCoins(), "1111110000", backend="vb", random_seed=3, n_init=2, max_iter=200, draws=1000,
                progressbar=False)
    alpha, beta = float(idata["variational"]["p_alpha"].values), float(idata["variational"]["p_beta"].values)
    assert answer["sd"]["p"] == pytest.approx(stats.beta(alpha, beta).std(), rel=1e-12)
    assert answer["elbo_final"] == pytest.approx(float(idata.attrs["objective"]), rel=1e-12)
    exact = post(client, "exact", SEED_BODY).json()
    assert answer["sd"]["p"] < exact["sd"]["p"]  # mean-field VB under-disperses
    assert answer["kl_gap"] == pytest.approx(exact["log_evidence"] - answer["elbo_final"], rel=1e-12)
    assert answer["kl_gap"] > 0  # the ELBO bounds the log-evidence from below
    assert np.all(np.diff(answer["elbo"]) >= -1e-9)


@pytest.mark.filterwarnings("ignore::latentzoo.inference.ConvergenceWarning")
def test_gibbs_draws_are_the_fit(client):
    body = dict(SEED_BODY, options={"gibbs_chains": 3, "gibbs_draws": 50, "gibbs_tune": 5})
    answer = post(client, "gibbs", body).json()
    idata = fit(ThreeCoins(), "1111110000", backend="gibbs", random_seed=3, chains=3, draws=50, tune=5,
                progressbar=False)
    p, q = idata.posterior["p"].values, idata.posterior["q"].values
    np.testing.assert_array_equal(answer["traces"]["p"], p)
    switches = sum(int(a > b) != int(c > d) for chain_p, chain_q in zip(p, q)
                   for a, b, c, d in zip(chain_p[:-1], chain_q[:-1], chain_p[1:], chain_q[1:]))
    assert answer["label_switches"] == switches


def test_table_rows_are_the_comparison_table(client):
    from latentzoo.inference.comparison.metrics import comparison_table

    post(client, "exact", SEED_BODY)
    rows = post(client, "table/exact", SEED_BODY).json()["table"]
    idata = fit(ThreeCoins(), "1111110000", backend="exact", random_seed=3, draws=coins.DEFAULTS["exact_draws"])
    expected = comparison_table(ThreeCoins(), {"exact": idata}).set_index("parameter")
    for row in rows:
        assert row["mean"] == pytest.approx(expected.loc[row["parameter"], "mean"], rel=1e-12)
        assert row["hdi_3%"] == pytest.approx(expected.loc[row["parameter"], "hdi_3%"], rel=1e-12)
    # the table of a fit that is no longer cached is computed again, not refused
    coins.RECENT_FITS.items.clear()
    again = post(client, "table/vb", SEED_BODY)
    assert again.status_code == 200 and {row["parameter"] for row in again.json()["table"]} >= {"pi", "p", "q"}


@pytest.mark.parametrize(
    ("method", "body", "status", "message"),
    [
        ("em", {"flips": "1121"}, 400, "only the characters 0 and 1"),
        ("exact", {"flips": ""}, 400, "0 and 1"),
        ("vb", {"flips": "1010", "p_prior": [-1, 1]}, 400, "p_prior"),
        ("vb", {"flips": "1010", "p_prior": [1]}, 400, "p_prior"),
        ("gibbs", {"flips": "1010", "options": {"gibbs_draws": 10**6}}, 400, "gibbs_draws"),
        ("em", {"flips": "1" * 300}, 400, "at most 200"),
        ("em", {"flips": "10", "seed": -1}, 400, "seed"),
        ("em", {"flips": "10", "code": "import os"}, 400, "unknown field"),
        ("nope", {"flips": "10"}, 400, "unknown method"),
        ("em", {"flips": 1010}, 400, "flips must be text"),
    ],
)
def test_bad_input_answers_4xx_with_the_message_and_the_server_goes_on(client, method, body, status, message):
    answer = post(client, method, body)
    assert answer.status_code == status
    assert message in answer.json()["error"]["message"]
    assert post(client, "data", SEED_BODY).status_code == 200


def test_unparseable_and_oversized_bodies_are_refused(client):
    answer = client.post("/api/three-coins/em", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]["message"]
    answer = client.post("/api/three-coins/em", content=b"x" * 70_000)
    assert answer.status_code == 413
    assert post(client, "data", SEED_BODY).status_code == 200


def test_only_local_host_names_are_served():
    with TestClient(create_app(), base_url="http://evil.example") as foreign:
        assert foreign.get("/").status_code == 400
    with TestClient(create_app(), base_url="http://127.0.0.1:8000") as local:
        assert local.get("/").status_code == 200


def test_jobs_refuse_bad_input_before_queueing(client):
    assert post(client, "nuts", {"flips": "12"}, prefix="/api/three-coins/jobs/").status_code == 400
    assert post(client, "gibbs", {"flips": "10"}, prefix="/api/three-coins/jobs/").status_code == 400
    assert client.get("/api/jobs/999").status_code == 404


def test_concurrent_tabs_get_their_own_answers(client):
    from concurrent.futures import ThreadPoolExecutor

    bodies = [{"flips": "1" * k + "0" * (10 - k), "seed": k, "tag": k} for k in range(1, 9)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: post(client, "em", b).json(), bodies))
    for k, answer in zip(range(1, 9), answers):
        assert answer["tag"] == k
        np.testing.assert_allclose(answer["map"]["heads_prob"], k / 10, atol=1e-6)


@pytest.mark.slow
def test_advi_job_runs_in_the_background(client):
    import time

    started = post(client, "advi", dict(SEED_BODY, options={"advi_iterations": 2000}), prefix="/api/three-coins/jobs/")
    assert started.status_code == 202
    # the page keeps answering while the job compiles and runs
    assert post(client, "data", SEED_BODY).status_code == 200
    for _ in range(600):
        status = client.get(f"/api/jobs/{started.json()['id']}").json()
        if status["state"] in ("done", "error"):
            break
        time.sleep(0.5)
    assert status["state"] == "done", status.get("error")
    assert {row["parameter"] for row in status["result"]["table"]} >= {"p", "q"}


def test_an_unknown_view_answers_404_and_the_limits_name_every_view(client):
    answer = client.post("/api/no-such-model/em", json={})
    assert answer.status_code == 404 and "no-such-model" in answer.json()["error"]["message"]
    assert client.post("/api/no-such-model/jobs/nuts", json={}).status_code == 404
    limits = client.get("/api/limits").json()
    assert limits["limits"] == coins.LIMITS
    assert set(limits["views"]) == set(limits["models"]) and "three-coins" in limits["models"]


# -- the Gaussian-mixture view -----------------------------------------------------------------
BLOBS = datasets.blobs(n_samples=60, centers=3, random_seed=2)[0]
GMM_BODY = {"points": BLOBS.tolist(), "n_components": 3, "seed": 5, "tag": 3, "options": {"n_starts": 4}}


def _sorted_rows(means):
    means = np.asarray(means, float)
    return means[np.lexsort(means.T[::-1])]


def test_gmm_em_is_the_fit_and_its_ellipses_are_two_sd_contours(client):
    answer = post(client, "em", GMM_BODY, prefix="/api/gaussian-mixture/").json()
    idata = fit(GaussianMixture(n_components=3), BLOBS, backend="em", random_seed=5, n_init=4, max_iter=200, tol=1e-8,
                progressbar=False)
    final_means = idata["fit_history"]["final_means"].values
    assert len(answer["starts"]) == 4
    for start, expected in zip(answer["starts"], final_means):
        np.testing.assert_allclose(_sorted_rows([c["mean"] for c in start["components"]]), _sorted_rows(expected), atol=1e-10)
    np.testing.assert_allclose(_sorted_rows([c["mean"] for c in answer["best"]]),
                               _sorted_rows(idata["posterior"]["means"].values[0, 0]), atol=1e-10)
    # every point of a drawn ellipse is at Mahalanobis distance 2 from its mean (closed form)
    for component in answer["best"]:
        mean, cov = np.array(component["mean"]), np.array(component["cov"])
        curve = np.stack([component["ellipse"]["x"], component["ellipse"]["y"]], axis=1) - mean
        np.testing.assert_allclose(np.einsum("ni,ij,nj->n", curve, np.linalg.inv(cov), curve), 4.0, rtol=1e-8)
    # EM's objective never decreases along a start's iterations
    for start in answer["starts"]:
        assert np.all(np.diff(start["objective"]) >= -1e-8 * abs(start["objective"][-1]))


def test_gmm_vb_and_gibbs_are_the_fits(client):
    answer = post(client, "vb", GMM_BODY, prefix="/api/gaussian-mixture/").json()
    idata = fit(GaussianMixture(n_components=3), BLOBS, backend="vb", random_seed=5, init="random", n_init=2, max_iter=200,
                draws=200, progressbar=False)
    np.testing.assert_allclose([c["mean"] for c in answer["components"]], idata["variational"]["means_covs_m"].values,
                               atol=1e-10)
    concentration = idata["variational"]["weights_concentration"].values
    np.testing.assert_allclose([c["weight"] for c in answer["components"]], concentration / concentration.sum(), atol=1e-12)
    gibbs = post(client, "gibbs", GMM_BODY, prefix="/api/gaussian-mixture/").json()
    idata = fit(GaussianMixture(n_components=3), BLOBS, backend="gibbs", random_seed=5, chains=2, draws=25, tune=5,
                init="kmeans++", progressbar=False)
    # the page shows the draws as the sampler labelled them; fit may relabel: compare each draw's set of means
    shown = np.stack([np.stack([d["x"], d["y"]], axis=1) for d in gibbs["draws_by_label"]], axis=1)  # (draw, K, 2)
    expected = idata["posterior"]["means"].values.reshape(-1, 3, 2)
    for a, b in zip(shown, expected):
        np.testing.assert_allclose(_sorted_rows(a), _sorted_rows(b), atol=1e-12)
    assert gibbs["settings"] == {"chains": 2, "draws": 25, "tune": 5}
    table_answer = client.post("/api/gaussian-mixture/table/gibbs", json=GMM_BODY).json()
    rows = {row["parameter"]: row for row in table_answer["table"]}
    assert rows["means[0, 0]"]["r_hat"] is not None and len(rows) == 3 + 6 + 12
    # the panel's run skips the back-end's mixing check; the table brings the number fit reports
    assert table_answer["max_rhat"] == pytest.approx(idata["posterior"].attrs["max_rhat"], rel=1e-12)


def test_gmm_label_switches_are_counted_against_a_constructed_chain():
    # two well-separated means whose labels swap at draws 3 and 7 of chain 0, never in chain 1
    a, b = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    chain0 = [[a, b]] * 3 + [[b, a]] * 4 + [[a, b]] * 3
    chain1 = [[a, b]] * 10
    means = np.array([chain0, chain1]) + np.random.default_rng(0).normal(0, 0.01, (2, 10, 2, 2))
    assert gmm.count_label_switches(means, np.ones(2)) == 2


def test_gmm_data_and_datasets(client):
    answer = post(client, "data", {"points": "1, 2\n3 4\n# a comment\n\n5;6", "n_components": 1},
                  prefix="/api/gaussian-mixture/").json()
    assert answer["n_points"] == 3 and answer["x"] == [1, 3, 5] and answer["y"] == [2, 4, 6]
    faithful = post(client, "dataset", {"dataset": "old_faithful"}, prefix="/api/gaussian-mixture/").json()
    np.testing.assert_allclose(gmm.parse_points(faithful["points"]), datasets.old_faithful(), rtol=1e-5)
    assert post(client, "dataset", {"dataset": "/etc/passwd"}, prefix="/api/gaussian-mixture/").status_code == 400


def _library_message(model, data):
    with pytest.raises((ValueError, TypeError)) as error:
        model.check_data(data)
    return str(error.value)


@pytest.mark.parametrize("body, message", [
    ({"points": [[0.0, float(i)] for i in range(301)]}, "at most 300"),
    ({"points": "1, 2\n3, x\n"}, "line 2"),
    ({"points": [[1, 2], [3, 4]], "n_components": 6}, "n_components must be an integer in [1, 5]"),
    ({"points": [[1, 2, 3], [3, 4, 5]], "n_components": 1}, "2-D points"),
])
def test_gmm_bad_input_answers_400_and_the_server_goes_on(client, body, message):
    answer = post(client, "em", body, prefix="/api/gaussian-mixture/")
    assert answer.status_code == 400 and message in answer.json()["error"]["message"]
    assert post(client, "data", GMM_BODY, prefix="/api/gaussian-mixture/").status_code == 200


def test_gmm_non_numbers_and_too_few_points_get_the_librarys_message(client):
    for points, K in (([[1, "a"], [2, 3]], 1), ([[1, 2]], 2)):
        answer = post(client, "vb", {"points": points, "n_components": K}, prefix="/api/gaussian-mixture/")
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == _library_message(GaussianMixture(n_components=K), points)


# -- the dice-HMM view --------------------------------------------------------------------------
def _brute_force(rolls, params):
    """p(z_t | x) and the most probable path by enumerating all 3^T state paths (no recursion)."""
    init, trans, emission = (np.asarray(params[k], float) for k in ("init_probs", "trans_mat", "emission_probs"))
    T = len(rolls)
    paths = np.array(list(product(range(3), repeat=T)))
    with np.errstate(divide="ignore"):
        log_joint = np.log(init[paths[:, 0]]) + np.log(emission[paths[:, 0], rolls[0] - 1])
        for t in range(1, T):
            log_joint += np.log(trans[paths[:, t - 1], paths[:, t]]) + np.log(emission[paths[:, t], rolls[t] - 1])
    weights = np.exp(log_joint - log_joint.max())
    weights /= weights.sum()
    marginals = np.stack([[weights[paths[:, t] == k].sum() for k in range(3)] for t in range(T)])
    return marginals, paths[np.argmax(log_joint)], log_joint.max()


def test_dice_data_panel_shows_the_faces_as_typed(client):
    answer = post(client, "data", {"rolls": "1 6 3 5 2 7 3 5 2 4, 8", "seed": 0}, prefix="/api/dice-hmm/").json()
    assert answer["rolls"] == [1, 6, 3, 5, 2, 7, 3, 5, 2, 4, 8] and answer["n_rolls"] == 11


def test_dice_em_smoothing_and_viterbi_are_the_library_and_brute_force(client):
    rolls = [1, 6, 3, 5, 2, 7]
    body = {"rolls": " ".join(map(str, rolls)), "seed": 1, "options": {"n_starts": 3}, "tag": 2}
    answer = post(client, "em", body, prefix="/api/dice-hmm/").json()
    idata = fit(DiceHMM(), rolls, backend="em", random_seed=1, n_init=3, max_iter=50, tol=1e-8, progressbar=False)
    posterior = idata["posterior"]
    np.testing.assert_allclose(answer["state_probs"], posterior["state_probs"].values[0, 0], atol=1e-12)
    params = {name: posterior[name].values[0, 0] for name in ("init_probs", "trans_mat", "emission_probs")}
    np.testing.assert_allclose(answer["emission_probs"], params["emission_probs"], atol=1e-12)
    marginals, path, log_prob = _brute_force(rolls, params)
    np.testing.assert_allclose(answer["state_probs"], marginals, atol=1e-10)
    assert answer["viterbi"] == path.tolist()
    assert answer["viterbi_log_prob"] == pytest.approx(log_prob, rel=1e-10)


@pytest.mark.parametrize("method, options", [("exact", {"draws": 200}),
                                             ("vb", {"init": "random", "n_init": 1, "max_iter": 200, "draws": 100}),
                                             ("gibbs", {"init": "random", "chains": 2, "draws": 50, "tune": 20})])
def test_dice_smoothed_probabilities_are_the_fits(client, method, options):
    body = {"rolls": "1 6 3 5 2 7 3 5 2 4", "seed": 4, "tag": 1}
    answer = post(client, method, body, prefix="/api/dice-hmm/").json()
    idata = fit(DiceHMM(), [1, 6, 3, 5, 2, 7, 3, 5, 2, 4], backend=method, random_seed=4, progressbar=False, **options) \
        if method != "exact" else fit(DiceHMM(), [1, 6, 3, 5, 2, 7, 3, 5, 2, 4], backend="exact", random_seed=4, **options)
    expected = idata["posterior"]["state_probs"].mean(("chain", "draw")).values
    np.testing.assert_allclose(answer["state_probs"], expected, atol=1e-10)
    np.testing.assert_allclose(np.sum(answer["state_probs"], axis=1), 1.0, atol=1e-10)
    np.testing.assert_allclose(answer["emission_probs"], idata["posterior"]["emission_probs"].mean(("chain", "draw")).values,
                               atol=1e-12)
    # a face above 4 cannot come from the four-sided die (the mask): p(D4) is 0 at roll 2 (a 6)
    assert answer["state_probs"][1][1] == 0
    if method == "gibbs":  # R-hat comes with the table, and is the one fit's mixing check reports
        table = client.post("/api/dice-hmm/table/gibbs", json=body).json()
        assert table["max_rhat"] == pytest.approx(idata["posterior"].attrs["max_rhat"], rel=1e-12)


def test_dice_exact_says_when_the_paths_are_too_many_and_the_rest_answers(client):
    body = {"rolls": " ".join(["1", "2", "3"] * 60), "seed": 0}
    exact = post(client, "exact", body, prefix="/api/dice-hmm/").json()
    assert exact["available"] is False and "paths" in exact["reason"]
    em = post(client, "em", body, prefix="/api/dice-hmm/").json()
    assert len(em["viterbi"]) == 180 and len(em["state_probs"]) == 180


@pytest.mark.parametrize("rolls, message", [("1 2 9 3", None), ("1 2 x 3", None), ("0 1", None),
                                            (" ".join(["1"] * 201), "at most 200")])
def test_dice_bad_rolls_answer_400_with_the_librarys_message(client, rolls, message):
    answer = post(client, "em", {"rolls": rolls}, prefix="/api/dice-hmm/")
    assert answer.status_code == 400
    expected = message or _library_message(DiceHMM(), rolls)
    assert expected in answer.json()["error"]["message"]
    assert post(client, "data", {"rolls": "1 6 3"}, prefix="/api/dice-hmm/").status_code == 200


def test_every_view_declares_the_interface():
    for view in (coins, gmm, dice):
        for name in ("parse_request", "run_method", "run_table", "run_job", "JOB_METHODS", "LIMITS", "DEFAULTS", "warm_up"):
            assert hasattr(view, name), (view.__name__, name)
        # each panel in exactly one lane (worker process)
        assert sorted(m for lane in view.LANES for m in lane) == sorted(view.METHODS), view.__name__
    assert gmm.LIMITS["points"] == 300 and dice.LIMITS["rolls"] == 200


def test_serve_names_the_views_it_has():
    from latentzoo.inference.explore.server import MODELS, serve

    assert MODELS == ("three-coins", "gaussian-mixture", "dice-hmm")
    with pytest.raises(ValueError, match="gaussian-mixture"):
        serve("no-such-view", open_browser=False)


def test_jobs_of_the_new_views_refuse_bad_input_and_run(client):
    import time

    assert post(client, "nuts", {"rolls": "1 9"}, prefix="/api/dice-hmm/jobs/").status_code == 400
    assert post(client, "advi", {"points": "1, x"}, prefix="/api/gaussian-mixture/jobs/").status_code == 400
    assert post(client, "gibbs", {"rolls": "1 2"}, prefix="/api/dice-hmm/jobs/").status_code == 400
    body = {"rolls": "1 6 3 5 2 7 3 5 2 4", "seed": 2, "options": {"advi_iterations": 500}}
    started = post(client, "advi", body, prefix="/api/dice-hmm/jobs/")
    assert started.status_code == 202
    assert post(client, "data", body, prefix="/api/dice-hmm/").status_code == 200  # the page keeps answering
    for _ in range(600):
        status = client.get(f"/api/jobs/{started.json()['id']}").json()
        if status["state"] in ("done", "error"):
            break
        time.sleep(0.5)
    assert status["state"] == "done", status.get("error")
    result = status["result"]
    np.testing.assert_allclose(np.sum(result["state_probs"], axis=1), 1.0, atol=1e-9)
    assert {row["parameter"] for row in result["table"]} >= {"init_probs[D6]", "trans_mat[D4, D8]"}


# -- one request per edit ------------------------------------------------------------------------
EDIT_BODIES = {
    "three-coins": (coins, {"flips": "0111\n1110\n0000\n1011", "p_prior": [2, 1], "seed": 5, "tag": 11}),
    "gaussian-mixture": (gmm, {"points": "0, 0\n0.2, 0.1\n0.1, -0.3\n5, 5\n5.3, 4.8\n4.9, 5.2\n0.3, 0.2",
                               "n_components": 2, "seed": 2, "tag": 12}),
    "dice-hmm": (dice, {"rolls": "1 6 3 5 2 7 3 5 2 4", "seed": 1, "tag": 13}),
}


def _without_time(answer: dict) -> dict:
    """An answer without the times it reports (each computation's own): the numbers only."""
    answer = {key: value for key, value in answer.items() if key != "elapsed_ms"}
    if answer.get("table") is not None:
        answer["table"] = [{key: value for key, value in row.items() if key != "time_s"} for row in answer["table"]]
    return answer


@pytest.mark.filterwarnings("ignore::latentzoo.inference.ConvergenceWarning")
@pytest.mark.parametrize("view", list(EDIT_BODIES))
def test_an_edit_answers_every_panel_and_table_as_their_own_routes_do(client, view):
    """``/edit`` (what the page asks) gives, for each panel, exactly the answer of that panel's
    own route, whose numbers the tests above compare with ``fit``; both computed from scratch
    (the cache of recent fits emptied in between), so neither is read from the other."""
    module, body = EDIT_BODIES[view]
    module.RECENT_FITS.items.clear()
    edit = client.post(f"/api/{view}/edit", json=body)
    assert edit.status_code == 200, edit.text
    edit = edit.json()
    assert edit["tag"] == body["tag"] and list(edit["panels"]) == list(module.METHODS)
    tables = client.post(f"/api/{view}/tables", json=body).json()
    assert tables["tag"] == body["tag"] and list(tables["tables"]) == list(module.TABLE_METHODS)
    module.RECENT_FITS.items.clear()
    for method in module.METHODS:
        alone = client.post(f"/api/{view}/{method}", json=body).json()
        assert _without_time(edit["panels"][method]) == _without_time(alone), method
    for method in module.TABLE_METHODS:
        alone = client.post(f"/api/{view}/table/{method}", json=body).json()
        assert _without_time(tables["tables"][method]) == _without_time(alone), method


@pytest.mark.filterwarnings("ignore::latentzoo.inference.ConvergenceWarning")
def test_an_edits_gibbs_panel_is_the_fit(client):
    coins.RECENT_FITS.items.clear()
    body = dict(SEED_BODY, options={"gibbs_chains": 2, "gibbs_draws": 30, "gibbs_tune": 5})
    panel = client.post("/api/three-coins/edit", json=body).json()["panels"]["gibbs"]
    idata = fit(ThreeCoins(), "1111110000", backend="gibbs", random_seed=3, chains=2, draws=30, tune=5,
                progressbar=False)
    np.testing.assert_array_equal(panel["traces"]["q"], idata.posterior["q"].values)


def test_a_bad_edit_answers_400_with_the_librarys_message_and_the_server_goes_on(client):
    for view, body, message in [("three-coins", {"flips": "11x0"}, "0 and 1"),
                                ("gaussian-mixture", {"points": "1, 2\n3, x"}, "line 2"),
                                ("dice-hmm", {"rolls": "1 2 9"}, "9"),
                                ("three-coins", {"flips": "10", "code": "import os"}, "unknown field")]:
        for route in ("edit", "tables"):
            answer = client.post(f"/api/{view}/{route}", json=body)
            assert answer.status_code == 400, (view, route, answer.text)
            assert message in answer.json()["error"]["message"]
    assert client.post("/api/nowhere/edit", json={}).status_code == 404
    assert client.post("/api/three-coins/edit", json=SEED_BODY).status_code == 200


def test_a_panel_that_cannot_answer_leaves_the_others_of_the_edit(client):
    # 21 rolls of faces every die has: too many state paths for the exact panel, which says so
    rolls = " ".join(["1", "2", "3"] * 7)
    panels = client.post("/api/dice-hmm/edit", json={"rolls": rolls, "tag": 2}).json()["panels"]
    assert panels["exact"]["available"] is False and "paths" in panels["exact"]["reason"]
    for method in ("em", "vb", "gibbs"):
        np.testing.assert_allclose(np.sum(panels[method]["state_probs"], axis=1), 1.0, atol=1e-9)


def test_concurrent_tabs_get_their_own_edits(client):
    from concurrent.futures import ThreadPoolExecutor

    bodies = [{"flips": "1" * k + "0" * (10 - k), "seed": k, "tag": k} for k in range(1, 7)]
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda b: client.post("/api/three-coins/edit", json=b).json(), bodies))
    for k, answer in zip(range(1, 7), answers):
        assert answer["tag"] == k and all(panel["tag"] == k for panel in answer["panels"].values())
        np.testing.assert_allclose(answer["panels"]["em"]["map"]["heads_prob"], k / 10, atol=1e-6)
        assert answer["panels"]["data"]["head_rate"] == pytest.approx(k / 10)


@pytest.mark.filterwarnings("ignore::latentzoo.inference.ConvergenceWarning")
def test_an_edit_can_ask_for_some_panels_only(client):
    """``panels`` names the panels an edit answers; each equals its own route's answer, and a
    list naming something else (or not a list) is refused with a message naming ``panels``."""
    body = {"flips": "0111\n1110\n0000\n1011", "seed": 4, "tag": 21}
    answer = client.post("/api/three-coins/edit", json=dict(body, panels=["vb", "gibbs"])).json()["panels"]
    assert list(answer) == ["vb", "gibbs"]
    for method in ("vb", "gibbs"):
        assert _without_time(answer[method]) == _without_time(client.post(f"/api/three-coins/{method}", json=body).json())
    assert answer["gibbs"]["settings"]["chains"] == coins.DEFAULTS["gibbs_chains"]
    for bad in [{"panels": ["em", "nuts"]}, {"panels": "em"}, {"preview": True}]:
        refused = client.post("/api/three-coins/edit", json=dict(body, **bad))
        assert refused.status_code == 400 and next(iter(bad)) in refused.json()["error"]["message"]


@pytest.mark.filterwarnings("ignore::latentzoo.inference.ConvergenceWarning")
@pytest.mark.parametrize("view", list(EDIT_BODIES))
def test_worker_processes_answer_as_the_server_process_does(client, laned, view):
    """Every panel and table of an edit, and every panel's own route, computed in the two worker
    processes (each view's ``LANES`` uses both) equals the answer computed in this process from an
    emptied cache."""
    module, body = EDIT_BODIES[view]
    lanes = laned.app.state.lanes
    pids = lanes.pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert {lanes.lane_of(module, method) for method in module.METHODS} == {0, 1}
    module.RECENT_FITS.items.clear()
    for route, field in (("edit", "panels"), ("tables", "tables")):
        here = client.post(f"/api/{view}/{route}", json=body).json()
        there = laned.post(f"/api/{view}/{route}", json=body)
        assert there.status_code == 200, there.text
        there = there.json()
        assert there["tag"] == body["tag"] and list(there[field]) == list(here[field])
        for method in here[field]:
            assert _without_time(there[field][method]) == _without_time(here[field][method]), (route, method)
    for method in module.METHODS:
        alone = laned.post(f"/api/{view}/{method}", json=body).json()
        assert _without_time(alone) == _without_time(client.post(f"/api/{view}/{method}", json=body).json()), method
    refused = laned.post(f"/api/{view}/edit", json=dict(body, seed=-1))
    assert refused.status_code == 400 and "seed" in refused.json()["error"]["message"]


def test_a_worker_that_dies_is_replaced_and_its_edit_still_answered(laned):
    import signal

    lanes = laned.app.state.lanes
    before = lanes.pids()
    os.kill(before[1], signal.SIGKILL)
    answer = laned.post("/api/three-coins/edit", json=SEED_BODY)
    assert answer.status_code == 200, answer.text
    assert list(answer.json()["panels"]) == list(coins.METHODS)
    after = lanes.pids()
    assert after[0] == before[0] and after[1] != before[1]
    again = laned.post("/api/three-coins/edit", json=dict(SEED_BODY, flips="1111111111"))
    assert again.json()["panels"]["em"]["map"]["heads_prob"] == pytest.approx([1.0] * coins.DEFAULTS["n_starts"], abs=1e-3)
