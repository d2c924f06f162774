"""A trained PUBG model kept in a file: the network (an ourdl graph) and the normalization it needs."""
from __future__ import annotations

import collections
import math

import numpy as np

from ourdl import persist
from ourdl import _core
from ourdl.inspect import named

from .schema import FEATURES, TARGET

# A loaded model's nodes: its inputs (a list, in FEATURES order), target, prediction and loss.
Network = collections.namedtuple("Network", "x y prediction loss")
MODEL_INFO = "ourdl pubg"  # the key of what save_model keeps beside the graph
# A placement ranks a team in its match, from 1 to the number of teams: at most 100 in PUBG
# (100 players a match). A model's largest placement may be up to this, for larger games.
LARGEST_PLACEMENT = 1_000


def save_model(path, loss, inputs, maxima, means):
    """Save a trained network with ourdl.save, and beside it what predicting needs.

    loss is the network's MSENode(prediction, y); inputs its input nodes, one per feature in
    FEATURES order; maxima and means the training maxima and means of every column (the
    tutorial's max_value and data.mean(axis=0), target last) that normalize_test applies to
    test rows. The file keeps where each input stands on the saved graph's tape, so the
    inputs need no particular names.
    """
    place = {id(node): i for i, node in enumerate(_core.compile(loss, fuse=False).nodes)}
    inputs = list(inputs)
    if len(inputs) != len(FEATURES) or any(
            id(node) not in place or node.op != "leaf" or node.Flag for node in inputs):
        raise ValueError(f"save_model needs the {len(FEATURES)} input nodes of the network, "
                         f"untrained leaves of its graph, one per feature; got {len(inputs)}")
    info = {"features": list(FEATURES), "inputs": [place[id(node)] for node in inputs],
            "maxima": [float(v) for v in maxima], "means": [float(v) for v in means]}
    problem = model_problem(info["maxima"], info["means"])
    if problem is not None:  # load_model would refuse the file
        where = "save_model" if hasattr(path, "write") else path
        raise ValueError(f"{where}: cannot save this PUBG model: {problem}")
    persist.save(path, loss, info={MODEL_INFO: info})


def load_model(path):
    """(network, maxima, means) from a file save_model wrote; ValueError naming path, and the
    field, if it is an ourdl graph of something else or its numbers are out of range (see
    model_problem). Files written before the input order was kept find the inputs by their
    names, x[0] to x[12]."""
    info = persist.load_info(path)
    model = info.get(MODEL_INFO) if isinstance(info, dict) else None
    n = len(FEATURES)
    if not (isinstance(model, dict) and model.get("features") == list(FEATURES)
            and all(isinstance(model.get(key), list) and len(model[key]) == n + 1
                    and all(type(v) in (int, float) for v in model[key])
                    for key in ("maxima", "means"))):
        raise ValueError(f"{path} is an ourdl graph but not a PUBG model saved by "
                         f"`ourdl pubg --save-model` (its {MODEL_INFO!r} information is missing "
                         f"or not for the {n} features {', '.join(FEATURES[:3])}, ...)")
    problem = model_problem(model["maxima"], model["means"])
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    loss = persist.load(path)
    if loss.op != "mse":
        raise ValueError(f"{path}: the saved network ends in a {loss.op} node, not the MSENode "
                         f"of a PUBG model")
    network = Network(_inputs(path, loss, model.get("inputs"), n), loss.Mama, loss.Papa, loss)
    return network, np.array(model["maxima"], dtype=np.float64), np.array(model["means"],
                                                                           dtype=np.float64)


def _inputs(path, loss, places, n):
    """The n input nodes of a loaded network: at the tape places the file keeps, or, in a
    file without them, by the names x[i]."""
    if places is None:
        nodes = named(loss)
        try:
            return [nodes[f"x[{i}]"] for i in range(n)]
        except KeyError as missing:
            raise ValueError(f"{path}: the saved network has no single node named "
                             f"{missing}") from None
    tape = _core.compile(loss, fuse=False).nodes
    if not (isinstance(places, list) and len(places) == n
            and all(type(i) is int and 0 <= i < len(tape) for i in places)
            and len(set(places)) == n
            and all(tape[i].op == "leaf" and not tape[i].Flag for i in places)):
        raise ValueError(f"{path}: its inputs must be {n} different places of untrained leaves "
                         f"on the saved graph's tape, not {_short(repr(places), 60)}")
    return [tape[i] for i in places]


def model_problem(maxima, means):
    """What makes a model's maxima and means (one number per column of to_array, as
    normalize_train gives them, team_placement last) unusable, naming the field; or None.

    JSON, and so a model file, may hold NaN, Infinity and integers too large for a float."""
    for i, (maximum, mean) in enumerate(zip(maxima, means)):
        column = (*FEATURES, TARGET)[i]
        top, average = _as_float(maximum), _as_float(mean)
        if column == TARGET and not (1 <= top <= LARGEST_PLACEMENT and top == int(top)):
            return (f"maxima[{i}], the largest {column}, is {_number(maximum)}: a placement "
                    f"is a whole number from 1 to {LARGEST_PLACEMENT:,}")
        if not (math.isfinite(top) and top != 0):
            return (f"maxima[{i}], the largest {column}, is {_number(maximum)}: the "
                    f"column is divided by it, so it must be a finite number other than 0")
        # Every value divided by the column's largest is at most 1 (at least 1 if that is
        # negative), and so is their mean, exactly in floating point too.
        if not (math.isfinite(average) and (average <= 1 if top > 0 else average >= 1)):
            side = "at most" if top > 0 else "at least"
            return (f"means[{i}], the mean of {column} divided by its largest value, is "
                    f"{_number(mean)}: it must be a finite number {side} 1")
    return None


def _as_float(number):
    try:
        return float(number)
    except OverflowError:  # an integer beyond float's range
        return math.inf if number > 0 else -math.inf


def _number(value):
    """value for a message: 5000.0 whether it came from JSON or numpy; a long integer cut."""
    return _short(repr(value if isinstance(value, int) else float(value)))


def _short(text, limit=40):
    return text if len(text) <= limit else text[:limit] + "..."
