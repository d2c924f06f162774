"""Checks on what Python hands the compiled core: counts, node lists and data.

Everything that reaches the compiled loops passes through here first (or through the
Tape's own index checks), with messages that say what was wrong and what would be
accepted. The loops themselves trust their input: their bounds checks are off.
"""
import math
import numbers
import operator
import sys
from collections.abc import Hashable, Mapping, Set

import numpy as np

LARGEST_COUNT = sys.maxsize  # what a C Py_ssize_t holds


def count(name, value, least=1, most=None):
    """``value`` as a plain int from ``least`` to ``most`` (LARGEST_COUNT by default): epochs,
    batch sizes, layer sizes, padding, seeds, rows, ..."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    # A plain int, so that no subclass's own comparisons decide the range.
    number = int.__index__(operator.index(value))
    if number < least:
        raise ValueError(f"{name} must be at least {least}, not {_brief(number)}")
    if most is not None and number > most:
        raise ValueError(f"{name} must be at most {most:,}, not {_brief(number)}")
    if number > LARGEST_COUNT:
        raise ValueError(f"{name} must be at most {LARGEST_COUNT} (2**63 - 1), not {number}")
    return number


def ordered(name, items, what):
    """A snapshot of ``items`` as a list, taken once: an ordered collection is required, since
    its order decides which column, value or layer goes where."""
    if isinstance(items, (Set, Mapping)) or not hasattr(items, "__len__") \
            or not hasattr(items, "__iter__") or isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be a list of {what}, not a {type(items).__name__} "
                        f"(its order decides which is which: pass a list or tuple)")
    return list(items)


def node_list(name, nodes, what):
    """``ordered`` for nodes: ``what`` says what they are for."""
    return ordered(name, nodes, f"Nodes, {what}")


def sizes(name, values):
    """Layer sizes (``hidden=(16, 16)``, ``MLP([13, 16, 1])``) as a list of plain ints."""
    return [count(f"{name}[{k}]", size) for k, size in enumerate(ordered(name, values, "sizes"))]


def choice(name, value, choices):
    """``value`` when it is one of ``choices`` (names, or None), else a ValueError listing them."""
    if isinstance(value, Hashable) and value in choices:
        return value
    listed = ", ".join(repr(c) for c in choices)
    raise ValueError(f"{name} must be one of {listed}, not {_brief(value)}")


def seed_number(value):
    """A random seed as the estimators take it: None, or a whole number from 0."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"seed must be a whole number of at least 0, or None, not "
                        f"{_brief(value)}")
    return count("seed", value, least=0)


def switch(name, value):
    """A yes/no setting: a bool (or 0 or 1), never any truthy object (shuffle="no" is no yes)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                                and int.__index__(operator.index(value)) in (0, 1)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, not {value!r}")


def generator(seed):
    """The random generator of a shuffled fit: numpy.random.default_rng(seed)."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as error:
        raise type(error)(f"seed must be None, an int, a SeedSequence or a numpy Generator, "
                          f"not {seed!r} ({error})") from None


def permutation(rng, n_rows):
    """A new order of the rows 0 .. n_rows-1 from rng, checked: the compiled loops read the
    rows it names, and a Generator subclass may return anything."""
    order = np.asarray(np.random.Generator.permutation(rng, n_rows))
    if order.shape != (n_rows,) or order.dtype.kind not in "iu" or (
            n_rows and not (0 <= order.min() and order.max() < n_rows)):
        raise ValueError(f"the generator of seed did not give a permutation of {n_rows} rows")
    return np.ascontiguousarray(order, dtype=np.int64)


def optimizer_settings(optimizer):
    """(kind, lr or nan, beta1, beta2, eps) of an ourdl.optim optimizer, as plain numbers,
    checked: the compiled loop sizes the optimizer's state by the kind."""
    from ourdl import optim
    if optimizer is None:
        optimizer = optim.SGD()
    if not isinstance(optimizer, optim.SGD):
        raise TypeError(f"optimizer must be one of ourdl.optim's (SGD, Momentum, Adam), not "
                        f"{type(optimizer).__name__}")
    try:
        kind, lr, beta1, beta2, eps = optimizer.settings()
        kind = int.__index__(operator.index(kind))
        lr, beta1, beta2, eps = float(lr), float(beta1), float(beta2), float(eps)
    except (TypeError, ValueError) as error:
        raise TypeError(f"optimizer {optimizer!r}: settings() must give (kind, lr, beta1, "
                        f"beta2, eps) as numbers ({error})") from None
    rules = [f"{rule.code} ({rule.__name__})" for rule in (optim.SGD, optim.Momentum, optim.Adam)]
    problem = (f"kind must be {', '.join(rules[:-1])} or {rules[-1]}" if kind not in (
                   optim.SGD.code, optim.Momentum.code, optim.Adam.code) else
               "lr must be a positive number or None" if lr == lr and not 0 < lr < math.inf else
               "its betas must be from 0 up to (not including) 1"
               if not (0 <= beta1 < 1 and 0 <= beta2 < 1) else
               "eps must be a positive number" if kind == 2 and not 0 < eps < math.inf else None)
    if problem:
        raise ValueError(f"optimizer {optimizer!r}: {problem}")
    return (kind, lr, beta1, beta2, eps)


def leaf_with_parents(kind):
    """The message for parents given to a leaf: most likely an op written the tutorial's way
    (a Node subclass with forward and backward of its own), so say how ourdl writes one."""
    name = kind if kind != "Node" else "MyOp"
    return (f"{kind} is a leaf and takes no parents; use an op node such as AddNode. An op of "
            f"your own subclasses ourdl.CustomNode and gives its value and its derivatives:\n"
            f"    class {name}(ourdl.CustomNode):\n"
            f"        def compute(self, a, b): return a * a         # a: Papa's value, b: Mama's\n"
            f"        def derivatives(self, a, b): return 2.0 * a   # d value / d a (, d / d b)")


def _real(x):
    """A plain real number (bools, strings, Decimals and the like are refused)."""
    return not isinstance(x, bool) and isinstance(x, numbers.Real)


def slopes(node, given, arity):
    """(d value / d Papa, d value / d Mama) from what ``node.derivatives`` returned: a number
    for one parent (or a 1-tuple), a pair of numbers for two."""
    if arity == 1 and isinstance(given, (tuple, list)) and len(given) == 1:
        given = given[0]
    if arity == 1 and _real(given):
        return float(given), 0.0
    if arity == 2 and isinstance(given, (tuple, list)) and len(given) == 2 \
            and all(_real(d) for d in given):
        return float(given[0]), float(given[1])
    shape = "a number" if arity == 1 else "a pair of numbers (d/dPapa, d/dMama)"
    raise TypeError(f"{type(node).__name__}.derivatives must return {shape}, not {given!r} "
                    f"(node {node!r})")


def as_data(data, n_inputs):
    """``data`` as a 2-D float64 array (a view where possible, else one converted copy),
    and a name for each column."""
    if np.ma.isMaskedArray(data):
        raise TypeError("data is a masked array: fill or drop the masked values first "
                        "(e.g. data.filled(...) or data.compressed())")
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


SCAN_ROWS = 1 << 16  # rows checked at a time, so that the check needs little memory


def nonfinite_error(X, names, first=None, what="data"):
    """The error for ``what`` (a 2-D array) holding nan or inf, naming the first such row (row
    ``first`` if it is one) and its column (of ``names``, if given); None if every value is
    finite."""
    spans = [(first, first + 1)] if first is not None else []
    spans += [(start, min(start + SCAN_ROWS, X.shape[0])) for start in range(0, X.shape[0], SCAN_ROWS)]
    for start, stop in spans:
        bad = ~np.isfinite(X[start:stop])
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            row = start + int(rows[0])
            j = int(np.flatnonzero(bad[rows[0]])[0])
            column = f" in column {names[j]}" if names is not None else ""
            return ValueError(f"{what} has {X[row, j]}{column} at row {row}: every "
                              f"value must be finite, not NaN or infinity (drop or fill such "
                              f"rows first, e.g. DataFrame.dropna())")
    return None


def data_error(X, names, first=None):
    """The error for data a compiled loop found holding nan or inf: nonfinite_error's, or, if
    every value is finite by now, that the data changed while it was read."""
    return nonfinite_error(X, names, first) or ValueError(
        "data held nan or inf while it was read, and is finite now: was it changed meanwhile "
        "(by another thread)?")


def progress_bar(total):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="sample", unit_scale=True, desc="training", leave=False)


def _number(name, value):
    """A real number as a float: never a numeric string, a bool or a complex number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # 10**400: beyond every float
        return math.inf if value > 0 else -math.inf


def positive_number(name, value, or_none=False):
    """``value`` as a float above 0 and below infinity (a learning rate, eps, ...); None too
    when ``or_none``."""
    if value is None and or_none:
        return None
    number = _number(name, value)
    if not 0 < number < math.inf:
        raise ValueError(f"{name} must be a positive number{' or None' if or_none else ''}, "
                         f"not {_brief(value)}")
    return number


def fraction(name, value):
    """``value`` as a float from 0 up to (not including) 1 (a momentum, Adam's betas)."""
    number = _number(name, value)
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be a number from 0 up to (not including) 1, not "
                         f"{_brief(value)}")
    return number


def tolerance(name, value):
    """A stopping tolerance: a float from 0 up to infinity, or None (no early stop)."""
    if value is None:
        return None
    number = _number(name, value)
    if not 0.0 <= number < math.inf:
        raise ValueError(f"{name} must be a number of at least 0, or None, not {_brief(value)}")
    return number


def numbers_array(name, values):
    """``values`` as a float64 array for an estimator; TypeError for what is not numbers
    (object arrays of numbers are numbers, as scikit-learn has it), ValueError for complex."""
    if hasattr(values, "toarray") and hasattr(values, "nnz"):
        raise TypeError(f"{name} is a sparse matrix: ourdl trains on dense data; pass "
                        f"{name}.toarray() if it fits in memory")
    if np.ma.isMaskedArray(values):
        raise TypeError(f"{name} is a masked array: fill or drop the masked values first")
    array = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} is {array.dtype}")
    if array.dtype.kind not in "biufO":
        raise TypeError(f"{name} must hold numbers, not {array.dtype} values")
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} holds values that are not numbers: {error}") from None


def _brief(value, limit=40):
    """repr(value), cut short: a huge integer must not become a page of digits."""
    try:
        text = repr(value)
    except ValueError:  # int's limit of 4,300 digits for a str
        return "an integer of more than 4,300 digits"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"

