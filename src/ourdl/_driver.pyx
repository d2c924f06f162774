"""Tape.fit and Tape.predict: whole datasets through a tape's compiled loops, a chunk of rows
at a time without the GIL, and the way back from the loops' run status to the nodes and to
an exception.

The tape (ourdl._tape) flattens the graph and keeps its state; this module only drives it.
Between chunks, with the GIL held, Ctrl-C can stop a run and the progress bar moves.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int64_t
from ourdl._fused cimport Fused
from ourdl._kernels cimport dot_rows
from ourdl._ops cimport OP_HUBER, OP_LEAF, OP_MAE, OP_MSE, is_binary
from ourdl._optim cimport OPT_SGD, Optimizer
from ourdl._passes cimport (CHUNK_ROWS, RUN_ABORTED, RUN_BAD_DATA, RUN_BAD_LOSS, RUN_OK, Data,
                            Graph, RunStatus, backward_pass, forward_pass, forward_rows, load_row)
from ourdl._tape cimport Tape

import time
from collections import namedtuple

import numpy as np

from ourdl import _checks as checks
from ourdl._fused import checked_layer

EpochStats = namedtuple("EpochStats", "epoch loss seconds samples_per_second", module="ourdl")
EpochStats.__doc__ = "One epoch of Tape.fit: mean root value (the training loss), wall time, speed."

cdef enum:
    CHUNK_WORK = 1 << 22   # node evaluations per trip, for graphs too large for CHUNK_ROWS
    # Doubles in the scratch of predict(): the values of every node for a block of rows.
    BLOCK_DOUBLES = 1 << 15
    # How predict computes its output.
    BY_DOT = 0             # the tutorial's model: one unit over every data column
    BY_STEPS = 1           # the fused layers and the nodes between them, a row at a time
    BY_BLOCKS = 2          # the general passes, a block of rows at a time


def fit(Tape tape, data, inputs, epochs, shuffle, seed, batch_size, progress, optimizer):
    """Tape.fit (see there), holding the tape for the whole run."""
    tape._claim()
    try:
        return _fit(tape, data, inputs, epochs, shuffle, seed, batch_size, progress, optimizer)
    finally:
        tape._busy = False


def predict(Tape tape, data, inputs, output):
    """Tape.predict (see there), holding the tape for the whole run."""
    tape._claim()
    try:
        return _predict(tape, data, inputs, output)
    finally:
        tape._busy = False


cdef Data _data_view(const double[:, :] X, Py_ssize_t[::1] slots):
    """Raw pointers into X and slots; the caller keeps both alive while they are used."""
    cdef Data D
    D.x = &X[0, 0]
    D.s0 = X.strides[0] // <Py_ssize_t>sizeof(double)  # signed: strides may be negative
    D.s1 = X.strides[1] // <Py_ssize_t>sizeof(double)
    D.slots = &slots[0]
    D.n_inputs = slots.shape[0]
    D.rows = NULL
    return D


cdef Py_ssize_t _chunk_rows(Tape tape):
    """Rows per trip into compiled code: about the same work per trip for any graph."""
    return max(1, min(CHUNK_ROWS, CHUNK_WORK // tape.n))


cdef Fused _step(Tape tape, Py_ssize_t[::1] slots, Py_ssize_t batch, Py_ssize_t column_step,
                 bint plain_sgd):
    """The training step of fit: the plan's layers fused; without layers, the general
    passes' step (every op node in tape order)."""
    layers, steps = tape._plan(slots)
    if not layers:
        steps = np.flatnonzero(np.asarray(tape.opcodes) != OP_LEAF)
    return Fused(tape.opcodes, tape.papa, tape.mama, tape.values, tape.lrs, tape.flags, layers,
                 steps, batch, tape.grads[tape.n - 1], slots, column_step, plain_sgd)


cdef void _settle(Tape tape, const Data* D, Py_ssize_t row, double root_grad):
    """After a stop part-way, recompute every value and gradient from the current parameters
    on ``row`` of data, so that the nodes are consistent whichever path trained them. What
    an op written in Python raises meanwhile is dropped: the run's own error is the one to
    report."""
    cdef Graph G = tape._graph()
    load_row(D, row, G.values)
    forward_pass(&G)
    backward_pass(&G, root_grad)
    tape._error, tape._aborted = None, 0


cdef void _restore(Tape tape, list before):
    """The nodes' values and gradients as they were before the run (see _fit)."""
    for now, then in zip(tape._computed(), before):
        now[:] = then


cdef object _fit(Tape tape, data, inputs, epochs, shuffle, seed, batch_size, progress, optimizer):
    # Everything is checked before anything changes.
    cdef Py_ssize_t[::1] slots = tape._input_slots(inputs)
    cdef Py_ssize_t n_epochs = checks.count("epochs", epochs)
    cdef Py_ssize_t batch = checks.count("batch_size", batch_size)
    shuffle, progress = checks.switch("shuffle", shuffle), checks.switch("progress", progress)
    rng = checks.generator(seed) if shuffle else None
    settings = checks.optimizer_settings(optimizer)
    X, names = checks.as_data(data, slots.shape[0])
    state_before = tape._opt_state
    cdef Optimizer O = tape._optimizer(settings)
    state = tape._opt_state  # what O points into stays alive for the whole run
    tape._fed = tape._fed | set(slots)  # from now on, predict wants these given
    cdef Py_ssize_t chunk = _chunk_rows(tape)
    # The nodes' state as it was, for a fit refused part-way (the run writes it in place).
    nodes_before = [np.array(a) for a in tape._computed()]
    cdef double root_grad = tape.grads[tape.n - 1]

    cdef Py_ssize_t n_rows = X.shape[0], start, stop, epoch = 0, at = -1, last_row = -1
    cdef RunStatus status = RUN_OK
    cdef double loss_sum = 0.0
    cdef int64_t[::1] order
    cdef Graph G = tape._graph()
    cdef Data D = _data_view(X, slots)
    cdef Fused step = _step(tape, slots, batch, D.s1, O.kind == OPT_SGD and O.lr != O.lr)
    if state_before is tape._opt_state:  # the same state goes on: keep a copy to go back to
        state_before = [np.copy(a) if isinstance(a, np.ndarray) else a for a in state_before]
    bar = checks.progress_bar(n_epochs * n_rows) if progress else None
    history = []
    try:
        for epoch in range(n_epochs):
            t0 = time.perf_counter()
            loss_sum = 0.0
            if rng is not None:
                order = checks.permutation(rng, n_rows)
                D.rows = &order[0]
            for start in range(0, n_rows, chunk):
                stop = min(start + chunk, n_rows)
                with nogil:
                    status = step.train(&G, &D, &O, start, stop, n_rows, &loss_sum, &at)
                state[5] = O.t
                if status != RUN_OK:
                    break
                last_row = D.rows[stop - 1] if D.rows != NULL else stop - 1
                if bar is not None:
                    bar.update(stop - start)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / stop:.4g}", refresh=False)
                PyErr_CheckSignals()  # Ctrl-C arrives here, between chunks
            if status != RUN_OK:
                break
            seconds = time.perf_counter() - t0
            history.append(EpochStats(epoch + 1, loss_sum / n_rows, seconds, n_rows / seconds))
            if bar is not None:
                bar.refresh()  # every epoch shows its loss, however fast it ran
    except BaseException:
        if last_row >= 0:
            _settle(tape, &D, last_row, root_grad)
        raise
    finally:
        if bar is not None:
            bar.close()
    if status == RUN_OK:
        step.settle_last_update(&G, &D, last_row)  # as the general passes leave the nodes
        return history

    # A stop part-way, at row at of this epoch: which row the nodes are left computed on
    # (before: the row before it, as after the last update; at: the stop's own row, from the
    # parameters as they are), and what is raised.
    if not 0 <= at < n_rows:  # never expected: refuse to read outside the data
        raise SystemError(f"ourdl: a training kernel stopped at row {at} of {n_rows}")
    cdef Py_ssize_t row = D.rows[at] if D.rows != NULL else at
    cdef Py_ssize_t before = (D.rows[at - 1] if D.rows != NULL else at - 1) if at > 0 else last_row
    # Every row is seen in the first epoch: bad data there is reported as such, even where
    # training went wrong before reaching it, and nothing changes.
    bad_data = checks.nonfinite_error(X, names) if epoch == 0 and status != RUN_ABORTED else None
    if status == RUN_ABORTED:  # an op written in Python raised: its own exception
        error, settle_on = tape._error, before
    elif bad_data is not None:
        _restore(tape, nodes_before)
        tape._opt_state = state_before
        raise bad_data
    elif status == RUN_BAD_DATA:  # data changed under a later epoch (another thread?)
        error, settle_on = checks.data_error(X, names, first=row), before
    else:  # RUN_BAD_LOSS, RUN_BAD_PARAM: the bad update, if any, was undone
        what = "the loss" if status == RUN_BAD_LOSS else "a parameter"
        error = FloatingPointError(
            f"training diverged in epoch {epoch + 1} at row {row} of data: {what} became nan "
            f"or inf. The parameters are as they were before that update. Try a smaller lr "
            f"or normalized inputs (e.g. each column divided by its maximum).")
        settle_on = row if epoch > 0 or at >= batch else -1  # -1: no update was made
    if settle_on >= 0:
        _settle(tape, &D, settle_on, root_grad)
    else:
        _restore(tape, nodes_before)  # nothing was trained: the nodes as they were
    raise error


cdef object _predict(Tape tape, data, inputs, output):
    cdef Py_ssize_t chunk = _chunk_rows(tape)
    cdef Py_ssize_t[::1] slots = tape._input_slots(inputs)
    cdef Py_ssize_t out
    out, needed = _output(tape, output, slots)  # needed: what out depends on
    X, names = checks.as_data(data, slots.shape[0])
    cdef Py_ssize_t n_rows = X.shape[0], n = tape.n, start, stop
    result = np.empty(n_rows)
    cdef double[::1] result_v = result
    cdef Data D = _data_view(X, slots)
    # The rows pass through a copy of the values: predict changes nothing in the graph.
    cdef double[::1] values = np.array(tape.values)
    cdef Graph G = tape._graph()
    G.values = &values[0]
    cdef bint ok = True
    cdef int how
    # What each way reads: kept alive here, for the whole loop.
    cdef Py_ssize_t[::1] offsets, program
    cdef double[::1] weights, bias, buf
    cdef const double* bias_p = NULL
    cdef Py_ssize_t n_program = 0, B = 1
    cdef Fused step = None

    layers, steps = tape._plan(slots)
    if any(out in layer.nodes and out not in layer.outputs for layer in layers):
        layers = []  # a node inside a layer: only the general passes compute it
    column = {slots[j]: j for j in range(slots.shape[0])}
    unit = next((layer for layer in layers if layer.outputs == [out]), None)
    if unit is not None:
        unit = checked_layer(unit, n)  # what the loop reads, and nothing else of the layer
    if (unit is not None and unit.activation == OP_LEAF and unit.outputs.shape[0] == 1
            and sorted(column.get(i, -1) for i in unit.inputs.tolist()) == list(range(len(column)))):
        how = BY_DOT  # one unit reading every data column (the tutorial's model)
        offsets = np.array([column[i] * D.s1 for i in unit.inputs.tolist()], dtype=np.intp)
        weights = np.asarray(tape.values)[unit.weights[:, 0]]
        bias = np.asarray(tape.values)[unit.biases] if unit.biases.shape[0] else np.zeros(1)
        bias_p = &bias[0] if unit.biases.shape[0] else NULL
    elif layers:  # each row through the fused layers and the nodes between them, as needed
        how = BY_STEPS
        steps = [s for s in steps if (needed[s] if s >= 0 else
                                      any(needed[o] for o in layers[-1 - s].outputs))]
        step = Fused(tape.opcodes, tape.papa, tape.mama, tape.values, tape.lrs, tape.flags,
                     layers, steps, 1, tape.grads[n - 1], slots, D.s1)
    else:  # only the nodes output depends on, in tape order, a block of rows at a time
        how = BY_BLOCKS
        program = np.flatnonzero(needed & (np.asarray(tape.opcodes) != OP_LEAF)).astype(np.intp)
        n_program = program.shape[0]
        program = program if n_program else np.zeros(1, dtype=np.intp)
        B = max(1, min(256, BLOCK_DOUBLES // n))
        buf = np.repeat(np.asarray(tape.values), B)  # leaves keep their value
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        with nogil:
            if how == BY_DOT:
                ok = dot_rows(&D, &offsets[0], &weights[0], offsets.shape[0], bias_p, start,
                              stop, &result_v[0])
            elif how == BY_STEPS:
                ok = step.predict(&G, &D, start, stop, out, &result_v[0])
            else:
                ok = forward_rows(&G, &D, &program[0], n_program, &buf[0], B, start, stop, out,
                                  &result_v[0])
        tape._raise_custom_error()
        if not ok:
            raise checks.data_error(X, names)
        PyErr_CheckSignals()
    return result


cdef tuple _output(Tape tape, output, Py_ssize_t[::1] slots):
    """The tape index of predict's output (see Tape.predict), checked against stale leaves,
    and which nodes it depends on (_ancestors)."""
    given = set(slots)
    cdef Py_ssize_t out = tape.n - 1, target, other
    if output is not None:
        out = tape._slot_of(output, "output")
    elif tape.opcodes[out] in (OP_MSE, OP_MAE, OP_HUBER):
        for target, other in ((tape.mama[out], tape.papa[out]), (tape.papa[out], tape.mama[out])):
            if target in tape._fed and target not in given:
                out = other  # the loss of a target not given: the prediction is meant
                break
    needed = _ancestors(tape, out)
    stale = [i for i in sorted(tape._fed) if needed[i] and i not in given]
    if stale:
        raise ValueError(
            f"the output {tape.nodes[out]!r} depends on {tape.nodes[stale[0]]!r}, which fit "
            f"fed from data: give it a column of data in inputs (its value now is only "
            f"what the last row of training left there)")
    return out, needed


cdef object _ancestors(Tape tape, Py_ssize_t out):
    """A boolean array: True for out and every node it depends on."""
    needed = np.zeros(tape.n, dtype=np.bool_)
    cdef unsigned char[::1] need = needed.view(np.uint8)
    cdef Py_ssize_t i
    need[out] = 1
    for i in range(out, -1, -1):
        if need[i] and tape.opcodes[i] != OP_LEAF:
            need[tape.papa[i]] = 1
            if is_binary(tape.opcodes[i]):
                need[tape.mama[i]] = 1
    return needed
