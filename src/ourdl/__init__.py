"""ourdl: the tutorial's computation-graph nodes (Papa, Mama, value, grad, Flag, lr), compiled.

``from ourdl import *`` gives the tutorial's ``Node``, ``AddNode``, ``MulNode``, ``MSENode``
and friends, backed by the Cython core; ``ourdl.compile(root)`` flattens a graph into a
``Tape`` that trains whole epochs in compiled code. ``ourdl.reference`` is the same thing in
plain Python, for reading. ``ourdl.Regressor`` and ``ourdl.Classifier`` train linear
models and MLPs behind scikit-learn's fit/predict, without needing scikit-learn
(``ourdl.Regressor.tutorial()`` is the tutorial's model).
"""

try:
    from ourdl import _core
except ImportError as exc:  # never fall back to slow code silently
    raise ImportError(
        "ourdl's compiled core (ourdl._core) is not built. Install the package with "
        "`pip install .` from the source tree (it needs a C compiler), or build it in place "
        "with `python setup.py build_ext --inplace`."
    ) from exc

from ourdl._core import *  # noqa: F403 - every op's class (the op registry), Tape, compile
from ourdl._core import OP_CLASSES, Node, compile, topological_order  # noqa: F401
from ourdl import _nodes


def _unary(node_class):
    def apply(x):
        return node_class(x if isinstance(x, Node) else Node(Value=x))
    apply.__name__ = apply.__qualname__ = node_class.op_name
    apply.__doc__ = f"A new {node_class.__name__} on x (a node, or a number made a constant node)."
    return apply


# One function per built-in unary op, named as the op: ourdl.sin(x) is SinNode(x).
_FUNCTIONS = {cls.op_name: _unary(cls) for cls in dict.fromkeys(OP_CLASSES)
              if cls.op_name is not None and _nodes.ARITY[cls.op_code] == 1}
globals().update(_FUNCTIONS)

from ourdl.estimator import Classifier, Regressor  # noqa: E402 - after the core it is built on
from ourdl.inspect import draw, dump, gradcheck, named, to_dot  # noqa: E402 (needs the core)
from ourdl.persist import load, load_info, save  # noqa: E402
from ourdl.watch import LiveCurve, plot_history  # noqa: E402

__version__ = "0.1.0"

# What `from ourdl import *` brings: the tutorial's names, every op's class and function.
# `compile` and `abs` stay out of it so they do not shadow Python's builtins (use
# ourdl.compile, ourdl.abs).
__all__ = ([cls.__name__ for cls in dict.fromkeys(OP_CLASSES)] + ["Tape", "EpochStats"]
           + [name for name in _FUNCTIONS if name != "abs"])
