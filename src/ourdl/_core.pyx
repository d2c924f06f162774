"""ourdl's compiled core, as one module: the tutorial's nodes as typed classes, and the tape
that runs them.

The core is split by idea into sibling modules, each with a .pxd that declares what the
others may use:

- ``_ops.pxd``: the op codes and their arithmetic (value and gradients of each op);
- ``_nodes``: ``Node`` and the op classes, and the topological sort;
- ``_passes``: the general forward, backward and update passes over flat arrays;
- ``_optim.pxd``, ``_dense.pxd``: the update rules; a fused layer as the loops see it;
- ``_fusion.py``, ``_fused``: finding dense layers; the training step that runs them fused;
- ``_kernels``: the tutorial's model over many rows;
- ``_tape``: ``Tape``, which flattens a graph and keeps its state;
- ``_driver``: ``Tape.fit`` and ``Tape.predict``, a chunk of rows at a time;
- ``_checks.py``: what Python hands the core is checked there first.

``reference.py`` is the same semantics in plain Python, and the tests hold the two to
bit-for-bit equality.
"""

import numpy as np

from ourdl._ops cimport ourdl_sure_squares, squared

from ourdl._nodes import *  # every op's class, from the op registry
from ourdl._nodes import OP_CLASSES, OP_NAMES, __all__ as _node_names
from ourdl._driver import EpochStats
from ourdl._tape import Tape, compile

__all__ = _node_names + ["EpochStats", "Tape", "compile"]


def _squared(double d):
    """Test shim for the compiled squared() of _ops.pxd."""
    return squared(d)


def _sure_squares(const double[::1] d):
    """Test shim for squares.h's vector loop: d * d where that is pow(d, 2.0), else nan."""
    out = np.empty(d.shape[0])
    cdef double[::1] sq = out
    if d.shape[0]:
        ourdl_sure_squares(&d[0], &sq[0], d.shape[0])
    return out
