"""Checks on what Python hands the compiled core: counts, node lists and data.

Everything that reaches the compiled loops passes through here first (or through the
Tape's own index checks), with messages that say what was wrong and what would be
accepted. The loops themselves trust their input: their bounds checks are off.
"""
import numbers
import operator
import sys
from collections.abc import Mapping, Set

import numpy as np

LARGEST_COUNT = sys.maxsize  # what a C Py_ssize_t holds


def count(name, value):
    """``value`` as a plain int from 1 to LARGEST_COUNT (epochs, batch sizes, ...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    # A plain int, so that no subclass's own comparisons decide the range.
    number = int.__index__(operator.index(value))
    if number < 1:
        raise ValueError(f"{name} must be at least 1, not {number}")
    if number > LARGEST_COUNT:
        raise ValueError(f"{name} must be at most {LARGEST_COUNT} (2**63 - 1), not {number}")
    return number


def node_list(name, nodes, what):
    """A snapshot of ``nodes`` as a list, taken once: an ordered collection is required, since
    its order decides which column or value goes where."""
    if isinstance(nodes, (Set, Mapping)) or not hasattr(nodes, "__len__") \
            or not hasattr(nodes, "__iter__") or isinstance(nodes, (str, bytes)):
        raise TypeError(f"{name} must be a list of Nodes, {what}, not a {type(nodes).__name__} "
                        f"(its order decides which is which: pass a list or tuple)")
    return list(nodes)


def as_data(data, n_inputs):
    """``data`` as a 2-D float64 array (a view where possible, else one converted copy),
    and a name for each column."""
    columns = getattr(data, "columns", None)
    if columns is not None and hasattr(data, "dtypes"):  # a pandas DataFrame
        for name, dtype in zip(columns, data.dtypes):
            if getattr(dtype, "kind", "O") not in "biuf":
                raise TypeError(f"data column {name!r} has dtype {dtype}: every column must be numeric")
        names = [repr(name) for name in columns]
        data = data.to_numpy(dtype=np.float64)
    else:
        names = None
    X = np.asarray(data)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"data must be numeric, not an array of dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"data must be 2-D (one row per sample), not {X.ndim}-D")
    if X.shape[1] != n_inputs:
        raise ValueError(f"data has {X.shape[1]} columns but {n_inputs} inputs were given: "
                         f"one column per input node")
    if X.shape[0] == 0:
        raise ValueError("data is empty: it has no rows")
    if X.dtype != np.float64 or any(step % X.itemsize for step in X.strides):
        # The one converted copy; float64 arrays with whole-element strides are used in place.
        X = np.ascontiguousarray(X, dtype=np.float64)
    if names is None or len(names) != n_inputs:
        names = [str(j) for j in range(n_inputs)]
    return X, names


def nonfinite_error(X, names):
    """The error for data holding nan or inf, naming the first such row and its column;
    None if every value is finite."""
    bad = ~np.isfinite(X)
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return None
    row = int(rows[0])
    j = int(np.flatnonzero(bad[row])[0])
    return ValueError(f"data has {X[row, j]} in column {names[j]} at row {row}: every value must "
                      f"be finite (drop or fill such rows first, e.g. DataFrame.dropna())")


def progress_bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="sample", unit_scale=True, desc="training", leave=False)
