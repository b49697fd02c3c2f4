"""``latentzoo explore``'s JSON API (Starlette's TestClient, no browser).

What it protects: the numbers the page draws are the library's (``fit`` with the same seed and
options, the exact posterior), the exact contours are the posterior density (checked against
numerical integration over pi, independently of the library), and bad input answers 4xx with
the library's message while the server goes on serving.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from latentzoo.inference import fit  # noqa: E402
from latentzoo.inference.explore import coins  # noqa: E402
from latentzoo.inference.explore.server import create_app  # noqa: E402
from latentzoo.models import ThreeCoins  # noqa: E402

SEED_BODY = {"flips": "1111110000", "seed": 3, "tag": 7}


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(allowed_hosts=("testserver", "127.0.0.1", "localhost"))) as test_client:
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
