"""Optimizers in the compiled loop: Tape.fit with SGD, Momentum and Adam equals
ourdl.reference.fit with their plain-Python twins, bit for bit, on every kernel (the
tutorial's model, fused dense layers, the general passes); PyTorch agrees to 1e-12."""
import struct

import numpy as np
import pytest

import ourdl
from ourdl import nn, optim
from ourdl import reference as ref
from helpers import (mae_with_bias, mirror, mirrored_linear, op_zoo, shared_weight, tanh_mlp,
                     tutorial_net)

OPTIMIZERS = [
    (lambda: optim.SGD(), lambda: ref.SGD()),
    (lambda: optim.SGD(lr=0.03), lambda: ref.SGD(lr=0.03)),
    (lambda: optim.Momentum(), lambda: ref.Momentum()),
    (lambda: optim.Momentum(lr=0.02, beta=0.5), lambda: ref.Momentum(lr=0.02, beta=0.5)),
    (lambda: optim.Adam(), lambda: ref.Adam()),
    (lambda: optim.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6),
     lambda: ref.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6)),
]
IDS = ["sgd", "sgd-lr", "momentum", "momentum-settings", "adam", "adam-settings"]


def mlp_net(M):
    x, y = [ourdl.Node() for _ in range(4)], ourdl.Node()
    root = ourdl.MSENode(nn.MLP([4, 6, 5, 1], bias=True, seed=3, lr=0.02)(x)[0], y)
    if M is ourdl:
        return root, x + [y]
    made = mirror(root, ref)
    return made[id(root)], [made[id(n)] for n in x + [y]]


def net(builder, M):
    if builder is mlp_net:
        return mlp_net(M)
    built = builder(M)
    return built.root, built.inputs


def bits(x):
    return struct.pack("<d", x)


def states(nodes):
    return [(bits(n.value), bits(n.grad)) for n in nodes]


@pytest.mark.parametrize("make, make_ref", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("builder", [tutorial_net, mirrored_linear, mae_with_bias, mlp_net, tanh_mlp,
                                     shared_weight, op_zoo])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_fit_equals_the_reference_bit_for_bit(make, make_ref, builder, batch_size):
    root, inputs = net(builder, ourdl)
    ref_root, ref_inputs = net(builder, ref)
    data = np.random.default_rng(7).random((150, len(inputs)))
    tape = ourdl.compile(root)
    history = tape.fit(data, inputs, epochs=2, batch_size=batch_size, optimizer=make())
    losses = ref.fit(ref_root, data, ref_inputs, epochs=2, batch_size=batch_size,
                     optimizer=make_ref())
    assert [bits(h.loss) for h in history] == [bits(loss) for loss in losses]
    assert states(ourdl.topological_order(root)) == states(ref.topological_order(ref_root))


@pytest.mark.parametrize("make, make_ref", OPTIMIZERS[2:], ids=IDS[2:])
def test_two_fits_continue_like_two_epochs_and_reset_starts_afresh(make, make_ref):
    data = np.random.default_rng(8).random((90, 5))
    root, inputs = mlp_net(ourdl)
    tape = ourdl.compile(root)
    tape.fit(data, inputs, optimizer=make())
    tape.fit(data, inputs, optimizer=make())
    once_root, once_inputs = mlp_net(ourdl)
    ourdl.compile(once_root).fit(data, once_inputs, epochs=2, optimizer=make())
    assert states(ourdl.topological_order(root)) == states(ourdl.topological_order(once_root))

    # After a reset the next fit starts the state afresh, as the reference's new optimizer.
    tape.reset_optimizer()
    copy = mirror(root, ref)
    tape.fit(data, inputs, optimizer=make())
    ref_root, ref_inputs = copy[id(root)], [copy[id(n)] for n in inputs]
    ref.fit(ref_root, data, ref_inputs, optimizer=make_ref())
    assert states(ourdl.topological_order(root)) == states(ref.topological_order(ref_root))


def test_another_kind_of_optimizer_starts_its_own_state():
    data = np.random.default_rng(9).random((40, 5))
    root, inputs = mlp_net(ourdl)
    tape = ourdl.compile(root)
    tape.fit(data, inputs, optimizer=optim.Momentum())
    after_momentum = mirror(root, ref)
    tape.fit(data, inputs, optimizer=optim.Adam())
    ref_root = after_momentum[id(root)]
    ref_inputs = [after_momentum[id(n)] for n in inputs]
    ref.fit(ref_root, data, ref_inputs, optimizer=ref.Adam())
    assert states(ourdl.topological_order(root)) == states(ref.topological_order(ref_root))


def diverging(M):
    """loss = (x*w - y)**2 + z*u: a huge z makes u's momentum step overflow."""
    x, z, y = M.Node(), M.Node(), M.Node()
    w, u = M.Node(Value=0.5, Flag=1), M.Node(Value=0.0, Flag=1)
    root = M.AddNode(M.MSENode(M.MulNode(x, w), y), M.MulNode(z, u))
    return root, [x, z, y], w, u


def test_divergence_takes_back_the_optimizer_state_with_the_parameters():
    rng = np.random.default_rng(3)
    data = np.column_stack([rng.random(6), np.zeros(6), rng.random(6)])
    data[3, 1] = 1e308  # u's gradient: its step overflows at row 3
    root, inputs, w, u = diverging(ourdl)
    tape = ourdl.compile(root)
    with pytest.raises(FloatingPointError, match="at row 3 of data: a parameter"):
        tape.fit(data, inputs, optimizer=optim.Momentum(lr=1e10))
    calm = np.column_stack([rng.random(8), np.zeros(8), rng.random(8)])
    tape.fit(calm, inputs, optimizer=optim.Momentum(lr=1e10))

    ref_root, ref_inputs, ref_w, ref_u = diverging(ref)
    momentum = ref.Momentum(lr=1e10)
    ref.fit(ref_root, data[:3], ref_inputs, optimizer=momentum)  # the three updates kept
    ref.fit(ref_root, calm, ref_inputs, optimizer=momentum)
    assert (bits(w.value), bits(u.value)) == (bits(ref_w.value), bits(ref_u.value))


def test_bad_optimizers_are_refused_before_anything_changes():
    root, inputs = mlp_net(ourdl)
    tape = ourdl.compile(root)
    data = np.random.default_rng(1).random((5, 5))
    with pytest.raises(TypeError, match="optimizer must be one of ourdl.optim's"):
        tape.fit(data, inputs, optimizer="adam")
    for bad in (lambda: optim.Adam(lr=-1), lambda: optim.Momentum(beta=1.0),
                lambda: optim.Adam(eps=0), lambda: optim.SGD(lr=float("nan"))):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_pytorch_agrees_to_1e_12(kind):
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    x, y = [ourdl.Node() for _ in range(3)], ourdl.Node()
    mlp = nn.MLP([3, 5, 1], bias=True, seed=4, lr=0.01)
    root = ourdl.MSENode(mlp(x)[0], y)
    data = np.random.default_rng(2).random((60, 4))
    layers = [torch.nn.Linear(3, 5), torch.nn.Linear(5, 1)]
    with torch.no_grad():
        for layer, ours in zip(layers, mlp.layers):
            layer.weight.copy_(torch.tensor(ours.weights.T))
            layer.bias.copy_(torch.tensor(ours.biases))
    params = [p for layer in layers for p in layer.parameters()]
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=0.01),
           "momentum": lambda: torch.optim.SGD(params, lr=0.01, momentum=0.9),
           "adam": lambda: torch.optim.Adam(params, lr=0.01)}[kind]()
    for row in data:
        opt.zero_grad()
        out = layers[1](torch.tanh(layers[0](torch.tensor(row[:3]))))
        ((out[0] - row[3]) ** 2).backward()
        opt.step()
    ours = {"sgd": optim.SGD(lr=0.01), "momentum": optim.Momentum(lr=0.01),
            "adam": optim.Adam(lr=0.01)}[kind]
    ourdl.compile(root).fit(data, x + [y], optimizer=ours)
    for layer, mine in zip(layers, mlp.layers):
        np.testing.assert_allclose(layer.weight.detach().numpy().T, mine.weights, rtol=0, atol=1e-12)
        np.testing.assert_allclose(layer.bias.detach().numpy(), mine.biases, rtol=0, atol=1e-12)
