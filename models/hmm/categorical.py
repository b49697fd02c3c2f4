"""Hidden Markov models with categorical emissions: ``CategoricalHMM`` and the seed's ``DiceHMM``.

Generative model (one sequence; many sequences share the parameters)::

    init_probs ~ Dirichlet(init_prior)                    (state,)
    trans_mat[i] ~ Dirichlet(trans_prior[i])              (state, state_next), one row per state
    emission_probs[k] ~ Dirichlet(emission_prior[k])      (state, symbol), over allowed symbols
    z_1 ~ Categorical(init_probs),  z_t | z_t-1 ~ Categorical(trans_mat[z_t-1])
    x_t | z_t ~ Categorical(emission_probs[z_t])

Missing observations (NaN, None, ``pandas.NA``, masked entries; see
:func:`latentzoo.models.core.sequences.read_sequences`) drop their emission factor: the chain still moves
through the step, which constrains the states around it, and every back-end and method (the
likelihood, filtering, smoothing, Viterbi, FFBS, the expected counts, exact enumeration and the
PyMC Op) sums over the symbol that step could have shown. The kernels see one extra emission
column of ones that the missing steps index (:meth:`~latentzoo.models.core.sequences.Sequences.coded`); the counts of that column
are dropped before any Dirichlet update. In ``observed_data`` a missing step is the label -1
(:data:`~latentzoo.models.core.sequences.MISSING`), so results keep integer symbols through NetCDF.

An optional ``emission_mask`` (state, symbol) says which symbols a state can emit; a row's
Dirichlet lives on its allowed symbols only, so masked probabilities are exactly zero in every
back-end (EM modes, Gibbs draws, VB factors, exact draws). ``DiceHMM`` is the seed's dice game:
the states are dice (D6, D4, D8 by default), the symbols the faces 1..max(dice) as people write
them, and a die can only show its own faces.

Everything is the one hidden Markov model (:class:`~latentzoo.models.hmm.model.HiddenMarkovModel`)
with the Categorical emission family (:class:`~latentzoo.models.families.categorical.Categorical`),
whose table the kernels read as ``emission_probs[k, x_t]`` (no (T, K) matrix is formed); this
module holds the two constructors. Back-ends:

* ``em``: Baum-Welch; the M-step is the mode of the Dirichlet posteriors given the
  forward-backward expected counts (MAP under the priors; ``mle=True``: maximum likelihood);
* ``gibbs``: FFBS draws the state paths, then every row from its Dirichlet posterior;
* ``vb``: variational Bayes (MacKay 1997; Beal 2003, ch. 3): forward-backward with the
  sub-normalised parameters ``exp(E_q[log theta])``; the ELBO is the sum of the log normalisers
  of q(z) minus the KL divergences of the Dirichlet factors from the priors;
* ``exact``: for short data, the exact posterior by enumerating every state path, grouped by
  their sufficient statistics (a mixture of products of Dirichlets;
  :mod:`latentzoo.models.hmm.exact`).

* ``nuts``, ``advi``, ``fullrank_advi``, ``map``: the PyMC declaration sums the states out with
  a custom PyTensor Op whose gradient comes from the same forward-backward expected counts
  (Fisher's identity; :mod:`latentzoo.models.ops.hmm_op`);
* ``pymc_gibbs``: explicit states updated by PyMC's ``CategoricalGibbsMetropolis`` one time
  step at a time (short sequences; it mixes far more slowly than FFBS, which redraws the whole
  path jointly).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..core.base import freeze_prior
from ..core.protocols import DemoPlan
from ..core.sequences import HMMData
from ..core.sizes import check_parameter_size
from ..families.categorical import CategoricalFamily
from .exact import EXACT_MAX_PATHS  # noqa: F401 (public here too)
from .model import HiddenMarkovModel, count

__all__ = ["CategoricalHMM", "DiceHMM", "HMMData", "SEED_ROLLS"]

#: the seed's rolls (seed 001, "1 6 3 5 2 7 3 5 2 4")
SEED_ROLLS = (1, 6, 3, 5, 2, 7, 3, 5, 2, 4)


class _Categorical(HiddenMarkovModel):
    """The emission family both constructors build from their fields."""

    first_label = 0
    observed_name = "symbols"

    @property
    def _mask(self) -> np.ndarray | None:
        return None if self.emission_mask is None else np.array(self.emission_mask, dtype=bool)

    def _describe_symbols(self) -> str:
        return f"integers 0..{self.n_symbols - 1}"

    @cached_property
    def family(self) -> CategoricalFamily:
        return CategoricalFamily(
            n_symbols=self.n_symbols, concentration=self.emission_prior, mask=self.emission_mask,
            first_label=self.first_label, observed_name=self.observed_name, description=self._describe_symbols(),
            component_labels=tuple(self.state_labels), owner=type(self).__name__,
        )

    def _freeze_priors(self) -> None:
        for name in ("init_prior", "trans_prior", "emission_prior"):
            object.__setattr__(self, name, freeze_prior(getattr(self, name)))
        # validates the priors now, with messages naming them
        self._chain_arrays()
        self.family.concentration_array(self.n_states)

    def picture(self, comparison):
        """State probabilities over time at each back-end's posterior mean, with the Viterbi path: a
        matplotlib Figure (see :func:`~latentzoo.models.hmm.picture.hmm_picture`)."""
        # imported here: importing the models must not import matplotlib
        from .picture import hmm_picture

        return hmm_picture(comparison)


@dataclass(frozen=True)
class CategoricalHMM(_Categorical):
    """Hidden Markov model with categorical emissions and Dirichlet priors on every row.

    Parameters
    ----------
    n_states : int >= 2
    n_symbols : int >= 2
        Symbols are written 0..n_symbols-1.
    init_prior : float or array-like of shape (n_states,), default 1
        Dirichlet concentration of ``init_probs``.
    trans_prior : float or array-like of shape (n_states, n_states), default 1
        Dirichlet concentration of each row of ``trans_mat``.
    emission_prior : float or array-like of shape (n_states, n_symbols), default 1
        Dirichlet concentration of each row of ``emission_probs`` (on allowed symbols).
    emission_mask : bool array-like of shape (n_states, n_symbols), optional
        Which symbols each state can emit; every row needs at least one True. None allows all.

    Notes
    -----
    With no mask and scalar priors the states are exchangeable: ``label_dim = "state"`` and
    results are relabelled before comparison (``trans_mat`` along both axes). A mask or
    state-specific priors make the states distinguishable (``label_dim = None``).

    Examples
    --------
    >>> from latentzoo.models.hmm.categorical import CategoricalHMM
    >>> hmm = CategoricalHMM(n_states=2, n_symbols=3)
    >>> data, states = hmm.simulate({"init_probs": [0.5, 0.5], "trans_mat": [[0.9, 0.1], [0.2, 0.8]],
    ...                              "emission_probs": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]}, 100, rng=0)
    >>> data.shape
    (100,)
    """

    n_states: int = 2
    n_symbols: int = 6
    init_prior: object = 1.0
    trans_prior: object = 1.0
    emission_prior: object = 1.0
    emission_mask: object = None

    name = "categorical-hmm"
    lesson = "casino"
    api_page = "latentzoo.models.CategoricalHMM"

    def __post_init__(self):
        self._check_sizes(n_states=(self.n_states, 2), n_symbols=(self.n_symbols, 2))
        # refused before any (K, M) array is made: n_symbols=10**9 would allocate gigabytes
        check_parameter_size({"n_states": self.n_states, "n_symbols": self.n_symbols}, "emission_probs")
        check_parameter_size({"n_states": self.n_states, "n_states (next)": self.n_states}, "trans_mat")
        if self.emission_mask is not None:
            try:
                mask = np.asarray(self.emission_mask)
            except (TypeError, ValueError):
                raise TypeError("emission_mask must be a boolean array of shape (n_states, n_symbols)") from None
            if mask.dtype != bool:
                raise TypeError(f"emission_mask must be a boolean array, got dtype {mask.dtype}")
            if mask.shape != (self.n_states, self.n_symbols):
                raise ValueError(
                    f"emission_mask must have shape (n_states, n_symbols) = {(self.n_states, self.n_symbols)}, got {mask.shape}"
                )
            if not np.all(mask.any(axis=1)):
                raise ValueError(f"emission_mask: state {int(np.argmin(mask.any(axis=1)))} can emit no symbol")
            object.__setattr__(self, "emission_mask", tuple(tuple(bool(v) for v in row) for row in mask))
        self._freeze_priors()

    @property
    def label_dim(self) -> str | None:
        exchangeable = self.emission_mask is None and all(
            isinstance(prior, float) for prior in (self.init_prior, self.trans_prior, self.emission_prior)
        )
        return "state" if exchangeable else None


@dataclass(frozen=True)
class DiceHMM(_Categorical):
    """The seed's dice game: hidden dice, observed faces 1..max(dice).

    Before each roll a die is chosen (a Markov chain over the dice), then rolled; only the
    faces are seen. A die with ``n`` faces shows 1..n, so ``emission_probs[d, f - 1] = 0`` for
    faces ``f > n`` (the mask). The states are distinct, so no relabelling is needed.

    Parameters
    ----------
    dice : tuple of int, default (6, 4, 8)
        Number of faces of each die (each >= 2); the states are the dice, in this order.
    init_prior, trans_prior, emission_prior : float or array-like, default 1
        As for :class:`CategoricalHMM`; ``emission_prior`` matters on a die's own faces only.

    Examples
    --------
    >>> from latentzoo.models.hmm.categorical import DiceHMM
    >>> dice = DiceHMM()
    >>> float(np.exp(dice.log_likelihood([1], dice.default_params()))[0]) * 72   # 13/72
    13.000000000000002
    """

    dice: tuple = (6, 4, 8)
    init_prior: object = 1.0
    trans_prior: object = 1.0
    emission_prior: object = 1.0

    name = "dice-hmm"
    lesson = "casino"
    api_page = "latentzoo.models.DiceHMM"
    label_dim = None  # the mask makes the dice distinct
    first_label = 1
    observed_name = "rolls"

    def __post_init__(self):
        if isinstance(self.dice, str | bytes) or not isinstance(self.dice, tuple | list | np.ndarray):
            raise TypeError(f"dice must be a tuple of face counts such as (6, 4, 8), got {self.dice!r}")
        dice = tuple(count(n, "each entry of dice", 2) for n in self.dice)
        if len(dice) < 2:
            raise ValueError(f"dice must name at least two dice, got {self.dice!r}")
        # refused before any (dice, faces) array is made: a die of 10**9 faces would allocate gigabytes
        check_parameter_size({"len(dice)": len(dice), "max(dice)": max(dice)}, "dice: emission_probs")
        check_parameter_size({"len(dice)": len(dice), "len(dice) (next)": len(dice)}, "dice: trans_mat")
        object.__setattr__(self, "dice", dice)
        self._freeze_priors()

    @property
    def n_states(self) -> int:
        return len(self.dice)

    @property
    def n_symbols(self) -> int:
        return max(self.dice)

    @property
    def emission_mask(self) -> tuple:
        faces = np.arange(1, self.n_symbols + 1)
        return tuple(tuple(bool(v) for v in row) for row in faces[None, :] <= np.array(self.dice)[:, None])

    @property
    def state_labels(self) -> list[str]:
        names = [f"D{n}" for n in self.dice]
        if len(set(names)) < len(names):  # two dice with as many faces: number them
            names = [f"D{n}#{index}" for index, n in enumerate(self.dice)]
        return names

    def _describe_symbols(self) -> str:
        return f"faces 1..{self.n_symbols} (integers; dice {self.dice})"

    def default_params(self) -> dict[str, np.ndarray]:
        """The seed's game: uniform first choice, uniform switching, fair dice."""
        K = self.n_states
        mask = self._mask
        return {
            "init_probs": np.full(K, 1.0 / K),
            "trans_mat": np.full((K, K), 1.0 / K),
            "emission_probs": mask / mask.sum(axis=1, keepdims=True),
        }

    def demo_plan(self) -> DemoPlan:
        return DemoPlan(cost_seconds=48.0)

    def default_data(self) -> HMMData:
        """The seed's rolls ``1 6 3 5 2 7 3 5 2 4``."""
        return self.check_data(list(SEED_ROLLS))
