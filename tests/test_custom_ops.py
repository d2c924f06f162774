"""Ops written in Python (ourdl.CustomNode) and the Huber loss: in graphs, tapes, fit and
predict, equal to ourdl.reference bit for bit, gradients checked by finite differences."""
import math
import struct

import numpy as np
import pytest

import ourdl
from ourdl import reference as ref


def bits(x):
    return struct.pack("<d", x)


def softplus_class(base):
    class Softplus(base):
        arity = 1

        def compute(self, a, b):
            return math.log1p(math.exp(a))

        def derivatives(self, a, b):
            return 1.0 / (1.0 + math.exp(-a))
    return Softplus


def scaled_product_class(base):
    class ScaledProduct(base):  # a * b * k, with its own constant k
        arity = 2
        k = 1.5

        def compute(self, a, b):
            return a * b * self.k

        def derivatives(self, a, b):
            return b * self.k, a * self.k
    return ScaledProduct


def network(M):
    Softplus, ScaledProduct = softplus_class(M.CustomNode), scaled_product_class(M.CustomNode)
    x = [M.Node(name="x0"), M.Node(name="x1")]
    w = [M.Node(Value=0.3, Flag=1), M.Node(Value=-0.2, Flag=1), M.Node(Value=0.1, Flag=1)]
    h = Softplus(M.AddNode(M.MulNode(x[0], w[0]), M.MulNode(x[1], w[1])))
    out = ScaledProduct(h, w[2])
    y = M.Node(name="y")
    return M.HuberNode(out, y, delta=0.5), x + [y], w


def states(root, M):
    return [(bits(n.value), bits(n.grad), bits(n.Papa_grad), bits(n.Mama_grad))
            for n in M.topological_order(root)]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_custom_ops_and_huber_train_as_the_reference_does(batch_size):
    root, inputs, _ = network(ourdl)
    ref_root, ref_inputs, _ = network(ref)
    data = np.random.default_rng(0).normal(size=(80, 3)) * 2
    history = ourdl.compile(root).fit(data, inputs, epochs=2, batch_size=batch_size)
    losses = ref.fit(ref_root, data, ref_inputs, epochs=2, batch_size=batch_size)
    assert [bits(h.loss) for h in history] == [bits(loss) for loss in losses]
    assert states(root, ourdl) == states(ref_root, ref)
    predicted = ourdl.compile(root).predict(data[:, :2], inputs[:2])
    assert predicted.shape == (80,) and np.isfinite(predicted).all()


def test_node_forward_and_backward_call_them_too():
    root, inputs, w = network(ourdl)
    ref_root, ref_inputs, ref_w = network(ref)
    for node, ref_node, value in zip(inputs, ref_inputs, (0.7, -1.2, 0.4)):
        node.value = ref_node.value = value
    assert bits(root.forward()) == bits(ref_root.forward())
    root.backward()
    ref_root.backward()
    assert states(root, ourdl) == states(ref_root, ref)


def finite_difference(root, node, eps=1e-6):
    keep = node.value
    node.value = keep + eps
    up = root.forward()
    node.value = keep - eps
    down = root.forward()
    node.value = keep
    root.forward()
    return (up - down) / (2 * eps)


def test_gradients_match_finite_differences():
    root, inputs, w = network(ourdl)
    for node, value in zip(inputs, (0.7, -1.2, 3.0)):
        node.value = value
    for delta_side in (3.0, 0.1):  # the Huber loss on either side of delta
        inputs[2].value = delta_side
        root.forward()
        root.backward(update=False)
        for param in w:
            assert param.grad == pytest.approx(finite_difference(root, param), rel=1e-6, abs=1e-9)


def test_an_exception_in_a_custom_op_comes_out_of_every_call_as_raised():
    class Broken(ourdl.CustomNode):
        arity = 1

        def compute(self, a, b):
            if a > 1.0:
                raise ArithmeticError(f"too big: {a}")
            return a

        def derivatives(self, a, b):
            return 1.0

    x, w = ourdl.Node(Value=0.5), ourdl.Node(Value=1.0, Flag=1)
    root = ourdl.MSENode(Broken(ourdl.MulNode(x, w)), ourdl.Node())
    assert root.forward() == 0.25
    x.value = 2.0
    with pytest.raises(ArithmeticError, match="too big: 2.0"):
        root.forward()
    tape = ourdl.compile(root)
    data = np.array([[0.5, 0.0]] * 5 + [[3.0, 0.0]])
    with pytest.raises(ArithmeticError, match="too big: 2.9"):  # 3 * w, w trained a little
        tape.fit(data, [x, root.Mama])
    with pytest.raises(ArithmeticError, match="too big: 2.9"):
        tape.predict(data, [x, root.Mama])
    assert tape.predict(data[:5], [x, root.Mama]).shape == (5,)  # usable afterwards


def test_bad_custom_ops_and_deltas_are_refused():
    class NoArity(ourdl.CustomNode):
        arity = 3
    with pytest.raises(TypeError, match="arity must be 1 .* or 2"):
        NoArity(ourdl.Node())
    with pytest.raises(ValueError, match="delta must be a positive number"):
        ourdl.HuberNode(ourdl.Node(), ourdl.Node(), delta=0)
    assert ourdl.HuberNode(ourdl.Node(), ourdl.Node(), delta=2.5).delta == 2.5


@pytest.mark.parametrize("lib", [ourdl, ref])
def test_max_sends_its_gradient_to_the_larger_parent_ties_to_papa(lib):
    for a, b, papa_gets in ((2.0, 1.0, 1.0), (1.0, 2.0, 0.0), (1.5, 1.5, 1.0)):
        x, y = lib.Node(Value=a, Flag=1), lib.Node(Value=b, Flag=1)
        root = lib.MaxNode(x, y)
        assert root.forward() == max(a, b)
        root.backward(update=False)
        assert (x.grad, y.grad) == (papa_gets, 1.0 - papa_gets)


@pytest.mark.parametrize("lib", [ourdl, ref])
@pytest.mark.parametrize("z", [1000.0, -1000.0, 40.0, -40.0, 0.0, 1e-300])
@pytest.mark.parametrize("t", [0.0, 1.0, 0.3])
def test_logloss_is_finite_and_right_for_any_logit(lib, z, t):
    """max(z, 0) - z*t + log1p(exp(-|z|)): no overflow at +-1000, no ln(0); the slope is
    sigmoid(z) - t."""
    logit, target = lib.Node(Value=z, Flag=1), lib.Node(Value=t)
    root = lib.LogLossNode(logit, target)
    value = root.forward()
    root.backward(update=False)
    exact = max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))
    assert math.isfinite(value) and value == exact
    sigmoid = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    assert math.isfinite(logit.grad) and abs(logit.grad - (sigmoid - t)) <= 1e-15
    assert target.grad == -z
