"""Optimizers for ``Tape.fit``: how a trainable node takes its step from its gradient.

The update runs inside the tape's compiled loop (in the fused kernels too); these classes
only say which rule and with which settings. ``g`` below is a node's gradient (averaged
over the batch), ``lr`` the optimizer's ``lr``, or each node's own ``lr`` when it is None
(the tutorial's rule).

- ``SGD(lr=None)``: ``value = value - lr * g``. The default: bit for bit the tutorial.
- ``Momentum(lr=None, beta=0.9)``: ``torch.optim.SGD(momentum=beta)``'s rule:
  ``b = g`` on the first step, then ``b = beta * b + g``; ``value = value - lr * b``.
- ``Adam(lr=None, beta1=0.9, beta2=0.999, eps=1e-8)``: ``torch.optim.Adam``'s rule, with
  bias correction: at step t, ``m = beta1 * m + (1 - beta1) * g``,
  ``v = beta2 * v + (1 - beta2) * g * g``,
  ``value = value - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.

The state (momentum buffers, moments, the step count) lives with the tape: a second
``fit`` continues where the first stopped, like a second epoch. ``Tape.reset_optimizer()``
forgets it. ``ourdl.reference`` has the same three rules in plain Python.
"""
import math

from ourdl._checks import fraction, positive_number
from ourdl._tape import OPTIMIZERS

__all__ = ["SGD", "Momentum", "Adam"]


class SGD:
    """Plain gradient descent: ``value = value - lr * g`` (lr None: each node's own)."""

    code = OPTIMIZERS.index("sgd")

    def __init__(self, lr=None):
        self.lr = positive_number("lr", lr, or_none=True)

    def settings(self):
        """(code, lr or nan, beta1, beta2, eps) as the compiled loop takes them."""
        return (self.code, math.nan if self.lr is None else self.lr, 0.0, 0.0, 0.0)

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self):
        return hash((type(self), *self.__dict__.values()))


class Momentum(SGD):
    """Gradient descent with momentum, as ``torch.optim.SGD(momentum=beta)``."""

    code = OPTIMIZERS.index("momentum")

    def __init__(self, lr=None, beta=0.9):
        super().__init__(lr)
        self.beta = fraction("beta", beta)

    def settings(self):
        return (self.code, math.nan if self.lr is None else self.lr, self.beta, 0.0, 0.0)

    def __repr__(self):
        return f"Momentum(lr={self.lr!r}, beta={self.beta!r})"


class Adam(SGD):
    """Adam with bias correction, as ``torch.optim.Adam`` (its defaults too)."""

    code = OPTIMIZERS.index("adam")

    def __init__(self, lr=None, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = fraction("beta1", beta1)
        self.beta2 = fraction("beta2", beta2)
        self.eps = positive_number("eps", eps)

    def settings(self):
        return (self.code, math.nan if self.lr is None else self.lr, self.beta1, self.beta2,
                self.eps)

    def __repr__(self):
        return f"Adam(lr={self.lr!r}, beta1={self.beta1!r}, beta2={self.beta2!r}, eps={self.eps!r})"
