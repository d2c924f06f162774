"""ourdl: the seed's computation-graph nodes (Papa, Mama, value, grad, Flag, lr), compiled.

``from ourdl import *`` gives the tutorial's ``Node``, ``AddNode``, ``MulNode``, ``MSENode``
and friends, backed by the Cython core; ``ourdl.compile(root)`` flattens a graph into a
``Tape`` that trains whole epochs in compiled code. ``ourdl.reference`` is the same thing in
plain Python, for reading. ``ourdl.Regressor`` trains the tutorial's model (or a deeper one)
behind scikit-learn's fit/predict, without needing scikit-learn.
"""

try:
    from ourdl import _core
except ImportError as exc:  # never fall back to slow code silently
    raise ImportError(
        "ourdl's compiled core (ourdl._core) is not built. Install the package with "
        "`pip install .` from the source tree (it needs a C compiler), or build it in place "
        "with `python setup.py build_ext --inplace`."
    ) from exc

from ourdl._core import (
    AbsNode, AddNode, CosNode, CustomNode, DivNode, EpochStats, ExpNode, HuberNode, LnNode,
    MAENode, MSENode, MulNode,
    NegNode, Node, PowNode, ReluNode, SigmoidNode, SinNode, SqrtNode, SubNode, TanhNode, TanNode,
    Tape, compile, topological_order,
)


def _unary(node_class):
    def apply(x):
        return node_class(x if isinstance(x, Node) else Node(Value=x))
    apply.__name__ = node_class.__name__[:-4].lower()
    apply.__qualname__ = apply.__name__
    apply.__doc__ = f"A new {node_class.__name__} on x (a node, or a number made a constant node)."
    return apply


from ourdl.estimator import Regressor  # noqa: E402 - after the core it is built on

sin, cos, tan = _unary(SinNode), _unary(CosNode), _unary(TanNode)
ln, exp, sqrt, abs = _unary(LnNode), _unary(ExpNode), _unary(SqrtNode), _unary(AbsNode)
tanh, sigmoid, relu = _unary(TanhNode), _unary(SigmoidNode), _unary(ReluNode)

from ourdl.inspect import draw, dump, gradcheck, named, to_dot  # noqa: E402 (needs the core)
from ourdl.persist import load, load_info, save  # noqa: E402

__version__ = "0.1.0"

# What `from ourdl import *` brings: the seed's names and the op functions. `compile` and
# `abs` stay out of it so they do not shadow Python's builtins (use ourdl.compile, ourdl.abs).
__all__ = [
    "Node", "AddNode", "SubNode", "MulNode", "DivNode", "PowNode", "MSENode", "MAENode",
    "HuberNode", "CustomNode", "NegNode", "ExpNode", "LnNode", "SinNode", "CosNode", "TanNode",
    "TanhNode", "SigmoidNode", "ReluNode", "AbsNode", "SqrtNode", "Tape", "EpochStats",
    "sin", "cos", "tan", "ln", "exp", "tanh", "sigmoid", "relu", "sqrt",
]
