"""The HMMs' data validation as properties (hypothesis), and the input forms around it: pandas
objects, 0-d arrays, text with any whitespace, huge integers, absurd sizes.

The property: for arbitrary nested lists, tuples, arrays, masked arrays and pandas Series of
integers, floats, NaN and None (ragged, empty, out of range, huge), ``check_data`` either returns
an ``HMMData`` whose symbols are the input's (``MISSING`` where the input is missing) or raises a
ValueError/TypeError that names ``data``. What the input "is" comes from a small oracle written
here from the documented rules, not from the code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentzoo.models import CategoricalHMM, DiceHMM
from latentzoo.models.core.sequences import MISSING
from latentzoo.models.core.sizes import MAX_PARAMETER_ELEMENTS

MODELS = {"categorical 0..3": CategoricalHMM(2, 4), "dice 1..8": DiceHMM()}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


class Invalid(Exception):
    """The oracle's verdict: check_data must refuse this input."""


def expected_symbol(value, low: int, high: int):
    """The documented meaning of one value: MISSING, a symbol 0.., or Invalid."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if isinstance(value, float):
        if value in (float("inf"), float("-inf")) or value != int(value):
            raise Invalid
        value = int(value)
    if not low <= value <= high:
        raise Invalid
    return value - low


# values near and in the symbols' range, and far outside it
small_ints = st.integers(-2, 10)
int64s = st.one_of(small_ints, st.integers(-(2**63), 2**63 - 1))
python_ints = st.one_of(int64s, st.integers(-(2**80), 2**80), st.sampled_from([2**63, 2**63 + 1, 2**64, -(2**63) - 1]))
floats = st.one_of(
    small_ints.map(float),
    st.floats(-3, 12).map(lambda x: float(round(x * 2) / 2)),  # halves: some fractional
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300]),
)
#: every container form with the values it can hold (None: a missing step)
FORMS = {
    "list": python_ints | floats | st.none(),
    "tuple": python_ints | floats | st.none(),
    "float array": floats,
    "float Series": floats,
    "masked array": int64s | st.none(),
    "Int64 Series": int64s | st.none(),
    "int array": int64s,
    "uint64 array": st.integers(0, 10) | st.integers(0, 2**64 - 1),
}


@st.composite
def sequence_forms(draw, low: int, high: int):
    """(container, the values as the container holds them), for a model with symbols
    low..high: mostly valid symbols and missing steps, sometimes with one value drawn from
    everything the container can hold (which is often invalid)."""
    form = draw(st.sampled_from(list(FORMS)))
    can_miss = form not in ("int array", "uint64 array")
    clean = st.integers(low, high) | st.none() if can_miss else st.integers(low, high)
    items = draw(st.lists(clean, min_size=0, max_size=8))
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), draw(FORMS[form]))
    if form in ("float array", "float Series"):
        items = [float("nan") if v is None else float(v) for v in items]
    if form == "list":
        return list(items), items
    if form == "tuple":
        return tuple(items), items
    if form == "float array":
        return np.array(items, dtype=float), items
    if form == "float Series":
        return pd.Series(items, dtype=float), items
    if form == "masked array":
        mask = [v is None for v in items]
        return np.ma.masked_array([0 if v is None else v for v in items], mask=mask, dtype=np.int64), items
    if form == "Int64 Series":
        return pd.Series(items, dtype="Int64"), items
    if form == "int array":
        return np.array(items, dtype=np.int64), items
    return np.array(items, dtype=np.uint64), items


@st.composite
def model_and_sequences(draw, max_sequences: int | None):
    """A model and one sequence (max_sequences None) or a list of them."""
    name = draw(st.sampled_from(list(MODELS)))
    model = MODELS[name]
    low, high = model.first_label, model.first_label + model.n_symbols - 1
    if max_sequences is None:
        return model, draw(sequence_forms(low, high))
    return model, draw(st.lists(sequence_forms(low, high), min_size=1, max_size=max_sequences))


def oracle(sequences: list[list], low: int, high: int) -> list[list[int]]:
    if not sequences or any(len(s) == 0 for s in sequences):
        raise Invalid
    symbols = [[expected_symbol(v, low, high) for v in s] for s in sequences]
    if all(x == MISSING for s in symbols for x in s):
        raise Invalid
    return symbols


def check_against_oracle(model, data, sequences, single: bool) -> None:
    low, high = model.first_label, model.first_label + model.n_symbols - 1
    try:
        expected = oracle(sequences, low, high)
    except Invalid:
        with pytest.raises((ValueError, TypeError)) as caught:
            model.check_data(data)
        assert "data" in str(caught.value)
        return
    checked = model.check_data(data)
    assert checked.symbols.dtype == np.int64
    got = [list(s) for s in ([checked.symbols] if single else checked.split(checked.symbols))]
    assert got == expected
    assert checked.single == single
    assert checked.lengths.tolist() == [len(s) for s in expected]
    assert checked.n_missing == sum(x == MISSING for s in expected for x in s)


@SETTINGS
@given(model_and_sequences(None))
def test_one_sequence_is_read_as_written_or_refused(case):
    model, (data, seen) = case
    if isinstance(data, list | tuple) and len(data) == 0:
        with pytest.raises(ValueError, match="data must contain at least one sequence"):
            model.check_data(data)
        return
    check_against_oracle(model, data, [seen], single=True)


@SETTINGS
@given(model_and_sequences(4))
def test_many_ragged_sequences_are_read_as_written_or_refused(case):
    model, forms = case
    data = [container for container, _ in forms]
    check_against_oracle(model, data, [seen for _, seen in forms], single=False)


@SETTINGS
@given(
    st.lists(st.lists(st.one_of(st.integers(1, 8), st.none()), min_size=1, max_size=6), min_size=1, max_size=4),
    st.data(),
)
def test_text_lines_are_sequences_whatever_the_whitespace(sequences, data):
    """Tokens separated by spaces, tabs and commas; one sequence per non-blank line, blank lines
    and trailing whitespace ignored; NA, NaN and ? mark a missing step."""
    lines = []
    for sequence in sequences:
        tokens = [data.draw(st.sampled_from(["NA", "nan", "?", "NaN"])) if v is None else str(v) for v in sequence]
        separators = [data.draw(st.sampled_from([" ", "\t", ",", ", ", " \t ", "  "])) for _ in tokens]
        line = "".join(token + sep for token, sep in zip(tokens, separators))
        lines.append(data.draw(st.sampled_from(["", " ", "\t"])) + line)
    text = data.draw(st.sampled_from(["\n", "\r\n", "\n\n", "\n \t\n"])).join(lines) + data.draw(
        st.sampled_from(["", "\n", " \n\t"]))
    check_against_oracle(DiceHMM(), text, sequences, single=len(sequences) == 1)


# ----------------------------------------------------------------------------------------
# input forms, one by one
# ----------------------------------------------------------------------------------------
def test_text_with_tabs_newlines_and_trailing_whitespace():
    dice = DiceHMM()
    one = dice.check_data("1\t6  3,5 ,2\t\n")
    assert one.single and one.labels.tolist() == [1, 6, 3, 5, 2]
    many = dice.check_data("1 6 3\n\n  5\t2\r\n4,4 \n")
    assert not many.single and [s.tolist() for s in many.split(many.labels)] == [[1, 6, 3], [5, 2], [4, 4]]
    # a string inside a list is one sequence, whatever its lines
    assert dice.check_data(["1 2\n3", "4"]).lengths.tolist() == [3, 1]
    with pytest.raises(ValueError, match="empty string"):
        dice.check_data(" \t\n \n")


def test_pandas_series_and_dataframe_columns():
    dice = DiceHMM()
    frame = pd.DataFrame({"rolls": [1, 6, 3, 5], "other": [2, 2, 4, 8]})
    one = dice.check_data(frame["rolls"])
    assert one.single and one.labels.tolist() == [1, 6, 3, 5]
    many = dice.check_data([frame[name] for name in frame])
    assert [s.tolist() for s in many.split(many.labels)] == [[1, 6, 3, 5], [2, 2, 4, 8]]
    # a Series keeps its values, not its index
    shifted = pd.Series([4, 5], index=[10, 11])
    assert dice.check_data(shifted).labels.tolist() == [4, 5]
    params = dice.default_params()
    np.testing.assert_allclose(dice.log_likelihood(frame["rolls"], params), dice.log_likelihood([1, 6, 3, 5], params))


def test_zero_dimensional_arrays_where_numbers_are_documented():
    hmm = CategoricalHMM(np.array(2), np.array(3), init_prior=np.array(2.0), trans_prior=np.float64(1.5))
    assert (hmm.n_states, hmm.n_symbols, hmm.init_prior) == (2, 3, 2.0)
    assert DiceHMM(dice=(np.array(6), np.int32(4))).dice == (6, 4)
    assert CategoricalHMM(2, 3).check_data([np.array(1), np.array(2), 0]).symbols.tolist() == [1, 2, 0]
    params = CategoricalHMM(2, 3).initial_params(None, np.random.default_rng(0))
    symbols, _ = CategoricalHMM(2, 3).simulate(params, np.array(5), rng=0)
    assert symbols.shape == (5,)
    frame_prior = pd.Series([1.0, 2.0])
    assert CategoricalHMM(2, 3, init_prior=frame_prior).init_prior == (1.0, 2.0)


def test_huge_integers_are_reported_as_given():
    with pytest.raises(ValueError, match=r"contains \[1180591620717411303424\].*faces 1..8"):
        DiceHMM().check_data([1, 2, 2**70])
    with pytest.raises(ValueError, match=r"contains \[18446744073709551615\]"):
        DiceHMM().check_data(np.array([1, 2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match=r"contains \[-9223372036854775809\]"):
        CategoricalHMM(2, 3).check_data([0, -(2**63) - 1])


@pytest.mark.parametrize("make, argument", [
    (lambda: DiceHMM(dice=(6, 10**9)), "dice"),
    (lambda: CategoricalHMM(2, 10**9), "n_symbols"),
    (lambda: CategoricalHMM(10**5, 2), "n_states"),
    (lambda: DiceHMM(dice=(2,) * 10**4), "dice"),
])
def test_absurd_sizes_are_refused_in_the_constructor(make, argument):
    with pytest.raises(ValueError, match=rf"{argument}.*at most {MAX_PARAMETER_ELEMENTS:,}") as caught:
        make()
    assert argument in str(caught.value)


def test_the_largest_allowed_sizes_still_build():
    assert CategoricalHMM(2, MAX_PARAMETER_ELEMENTS // 2).n_symbols == MAX_PARAMETER_ELEMENTS // 2
