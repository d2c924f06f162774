"""Tape.predict never reads a value that only the last row of training left behind."""
import numpy as np
import pytest

import ourdl
from ourdl import AddNode, MAENode, MSENode, MulNode, Node


def tutorial_net():
    x = [Node(name=f"x{i}") for i in range(3)]
    w = [Node(Value=0.5 + i, Flag=1, name=f"w{i}") for i in range(3)]
    total = MulNode(x[0], w[0])
    for i in range(1, 3):
        total = AddNode(total, MulNode(x[i], w[i]))
    y = Node(name="y")
    return x, y, total, MSENode(total, y)


def test_after_fit_the_default_output_of_a_loss_without_its_target_is_the_prediction():
    x, y, total, loss = tutorial_net()
    tape = ourdl.compile(loss)
    data = np.random.default_rng(0).random((50, 4))
    tape.fit(data, x + [y])
    X = data[:, :3]
    expected = tape.predict(X, x, output=total)
    np.testing.assert_array_equal(tape.predict(X, x), expected)
    # Given the target too, the root is the loss itself, as before.
    losses = tape.predict(data, x + [y])
    np.testing.assert_array_equal(losses, (expected - data[:, 3]) ** 2)


def test_the_target_may_be_papa_and_the_loss_mae():
    x, y, total, _ = tutorial_net()
    loss = MAENode(y, total)
    tape = ourdl.compile(loss)
    data = np.random.default_rng(1).random((20, 4))
    tape.fit(data, x + [y])
    np.testing.assert_array_equal(tape.predict(data[:, :3], x),
                                  tape.predict(data[:, :3], x, output=total))


def test_an_output_that_depends_on_a_leaf_fit_fed_is_refused_without_it():
    x, y, total, loss = tutorial_net()
    tape = ourdl.compile(loss)
    data = np.random.default_rng(2).random((20, 4))
    tape.fit(data, x + [y])
    with pytest.raises(ValueError, match=r"depends on Node\(name='x2'.*which fit fed from data"):
        tape.predict(data[:, :2], x[:2], output=total)
    with pytest.raises(ValueError, match=r"depends on Node\(name='y'"):
        tape.predict(data[:, :3], x, output=loss)


def test_before_any_fit_leaves_are_constants_and_the_root_is_the_default():
    x, y, total, loss = tutorial_net()
    y.value = 1.0
    tape = ourdl.compile(loss)
    data = np.random.default_rng(3).random((10, 3))
    got = tape.predict(data, x)
    np.testing.assert_array_equal(got, (tape.predict(data, x, output=total) - 1.0) ** 2)


def test_data_found_bad_by_a_loop_but_finite_now_is_still_an_error():
    """A loop saw nan or inf, but the data is finite when Python looks (another thread wrote
    it meanwhile): predict and fit still raise a ValueError that says so, never None."""
    from ourdl import _checks
    X = np.ones((3, 2))
    error = _checks.data_error(X, ["a", "b"])
    assert isinstance(error, ValueError) and "changed meanwhile" in str(error)
    X[1, 1] = np.nan
    assert "at row 1" in str(_checks.data_error(X, ["a", "b"]))
