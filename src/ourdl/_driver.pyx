"""Tape.fit and Tape.predict: whole datasets through a tape's compiled loops, a chunk of rows
at a time without the GIL, and the way back from the loops' run status to the nodes and to
an exception.

The tape (ourdl._tape) flattens the graph and keeps its state; this module only drives it.
Between chunks, with the GIL held, Ctrl-C can stop a run and the progress bar moves.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int64_t
from ourdl._fused cimport Fused
from ourdl._kernels cimport dot_rows
from ourdl._ops cimport (OP_CUSTOM1, OP_CUSTOM2, OP_HUBER, OP_LEAF, OP_LOGLOSS, OP_MAE, OP_MSE,
                         is_binary)
from ourdl._optim cimport OPT_SGD, Optimizer
from ourdl._passes cimport (CHUNK_ROWS, RUN_ABORTED, RUN_BAD_DATA, RUN_BAD_LOSS, RUN_OK, Data,
                            Graph, RunStatus, backward_pass, forward_pass, forward_rows, load_row)
from ourdl._tape cimport Tape

import os
import threading
import time
import weakref
from collections import namedtuple

import numpy as np
try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # numpy before 2.0
    from numpy import byte_bounds

from ourdl import _checks as checks
from ourdl._fused import checked_layer

EpochStats = namedtuple("EpochStats", "epoch loss seconds samples_per_second validation_loss",
                        defaults=(None,), module="ourdl")
EpochStats.__doc__ = """One epoch of Tape.fit: the mean root value over its rows (the training
loss; None with ``track_loss=False``), wall time, speed, and the mean root value over the
held-out rows after the epoch (None without ``validation``)."""

cdef enum:
    CHUNK_WORK = 1 << 22   # node evaluations per trip, for graphs too large for CHUNK_ROWS
    # Doubles in the scratch of predict(): the values of every node for a block of rows.
    BLOCK_DOUBLES = 1 << 15
    # How predict computes its output.
    BY_DOT = 0             # the tutorial's model: one unit over every data column
    BY_STEPS = 1           # the fused layers and the nodes between them, a row at a time
    BY_BLOCKS = 2          # the general passes, a block of rows at a time
    # predict shares its rows between threads only when each gets at least this many.
    THREAD_ROWS = 1 << 15
    # A shuffled fit draws the next epoch's row order in a thread from this many rows on.
    AHEAD_ROWS = 1 << 16


def fit(Tape tape, data, inputs, epochs, shuffle, seed, batch_size, progress, optimizer,
        validation, callback, track_loss):
    """Tape.fit (see there), holding the tape for the whole run."""
    tape._claim()
    try:
        return _fit(tape, data, inputs, epochs, shuffle, seed, batch_size, progress, optimizer,
                    validation, callback, track_loss)
    finally:
        tape._busy = False


def predict(Tape tape, data, inputs, output):
    """Tape.predict (see there), holding the tape for the whole run."""
    tape._claim()
    try:
        return _predict(tape, data, inputs, output)
    finally:
        tape._busy = False


cdef object _rows_of(data, Py_ssize_t n_inputs):
    """checks.as_data, and then what the loops rely on, checked here in compiled code where no
    caller can replace it: a float64 array of n_inputs columns that lies inside the memory of
    the array that owns it. Returns it, its columns' names, and pins: while the caller holds
    them, the memory the loops read stays where it is (see _pinned)."""
    X, names = checks.as_data(data, n_inputs)
    if (type(X) is not np.ndarray or X.dtype != np.float64 or X.ndim != 2
            or X.shape[1] != n_inputs):
        raise SystemError("ourdl: the data checks returned an array the loops cannot read")
    if not _inside_its_memory(X):
        raise ValueError("data is a view that reaches outside the memory of the array it views "
                         "(made by numpy.lib.stride_tricks.as_strided?): pass a copy of the "
                         "rows it should hold")
    return X, names, _pinned(X)


cdef list _pinned(X):
    """Weak references to X and every numpy array down its chain of bases. numpy refuses to
    resize an array that a weak reference points at, even with refcheck=False, so a callback
    or an op written in Python cannot move the memory under a running loop. (A bytearray or
    mmap beneath refuses while the loops' memoryview holds its buffer.)"""
    cdef list pins = []
    below = X
    while below is not None:
        if isinstance(below, np.ndarray):
            pins.append(weakref.ref(below))
        below = getattr(below, "base", None)
    return pins


cdef bint _inside_its_memory(X):
    """Whether every element of X lies inside the memory it views (a view made with as_strided
    may claim more): the memory of the last numpy array or buffer (a bytearray, an mmap, ...)
    down X's chain of bases; as_strided's own go-between in that chain is neither."""
    if X.size == 0:
        return True
    memory, below = X, X
    while getattr(below, "base", None) is not None:  # as_strided's views hold theirs too
        below = below.base
        if isinstance(below, np.ndarray):
            memory = below
        else:
            try:
                memory = np.frombuffer(below, dtype=np.uint8)
            except (TypeError, ValueError, BufferError):
                pass  # no buffer of its own: not what holds the memory
    low, high = byte_bounds(X)
    memory_low, memory_high = byte_bounds(memory)
    return memory_low <= low and high <= memory_high


cdef object _checked_order(order, Py_ssize_t n_rows):
    """A row order as the loops read it: n_rows int64 row numbers, each in range."""
    if (type(order) is not np.ndarray or order.dtype != np.int64 or order.shape != (n_rows,)
            or not order.flags.c_contiguous
            or (n_rows and not (0 <= order.min() and order.max() < n_rows))):
        raise SystemError("ourdl: the row order is not one of the data's rows")
    return order


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


cdef Fused _fused(Tape tape, list layers, steps, Py_ssize_t[::1] slots, Py_ssize_t batch,
                  Py_ssize_t column_step, bint plain_sgd):
    """The tape's step over layers and steps (see ourdl._fused), data feeding slots."""
    return Fused(tape.opcodes, tape.papa, tape.mama, tape.values, tape.lrs, tape.flags, layers,
                 steps, batch, tape.grads[tape.n - 1], slots, column_step, plain_sgd)


cdef Fused _step(Tape tape, Py_ssize_t[::1] slots, Py_ssize_t batch, Py_ssize_t column_step,
                 bint plain_sgd):
    """The training step of fit: the plan's layers fused; without layers, the general
    passes' step (every op node in tape order)."""
    layers, steps = tape._plan(slots)
    if not layers:
        steps = np.flatnonzero(np.asarray(tape.opcodes) != OP_LEAF)
    return _fused(tape, layers, steps, slots, batch, column_step, plain_sgd)


def _shown(epoch, loss, held_out=None):
    """What the progress bar shows beside its count: the epoch, its losses so far."""
    shown = {"epoch": epoch + 1}
    if loss is not None:
        shown["loss"] = f"{loss:.4g}"
    if held_out is not None:
        shown["held_out"] = f"{held_out:.4g}"
    return shown


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


class _RowOrders:
    """The row orders of a shuffled fit, one an epoch, drawn from rng one after another, so
    always the same orders for the same seed. With many rows and a generator of the fit's
    own, the next epoch's order is drawn in a thread while an epoch trains (numpy's shuffle
    runs without the GIL): a new order of 635,716 rows costs more than half an epoch of the
    tutorial's model. A generator passed in as seed (own is False) is drawn from only as the
    epochs ask, so that its state after fit is what it would be without the thread.

    Only an epoch that asks for its order waits for the thread, inside the epoch loop (where
    Ctrl-C and errors are handled as anywhere else in it); an order drawn for an epoch that
    never comes is dropped, its thread left to finish alone: it touches nothing but the fit's
    own generator and this object."""

    def __init__(self, rng, n_rows, n_epochs, own):
        self.rng, self.n_rows, self.left = rng, n_rows, n_epochs
        self.ahead = own and n_epochs > 1 and n_rows >= AHEAD_ROWS
        self.thread, self.drawn = None, None

    def _draw(self):
        try:
            self.drawn = (checks.permutation(self.rng, self.n_rows), None)
        except BaseException as error:  # handed to the epoch that asks for this order
            self.drawn = (None, error)

    def next(self):
        """The next epoch's order (an int64 array)."""
        if self.thread is None:
            self._draw()
        else:
            self.thread.join()
            self.thread = None
        order, error = self.drawn
        self.drawn, self.left = None, self.left - 1
        if error is not None:
            raise error
        if self.ahead and self.left > 0:
            thread = threading.Thread(target=self._draw, name="ourdl row order", daemon=True)
            thread.start()
            self.thread = thread  # only once it runs: an interrupted start leaves none
        return order


cdef object _fit(Tape tape, data, inputs, epochs, shuffle, seed, batch_size, progress, optimizer,
                 validation, callback, track_loss):
    # Everything is checked before anything changes.
    cdef Py_ssize_t[::1] slots = tape._input_slots(inputs)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function of an EpochStats, not {callback!r}")
    cdef Py_ssize_t n_epochs = checks.count("epochs", epochs)
    cdef Py_ssize_t batch = checks.count("batch_size", batch_size)
    shuffle, progress = checks.switch("shuffle", shuffle), checks.switch("progress", progress)
    track_loss = checks.switch("track_loss", track_loss)
    rng = checks.generator(seed) if shuffle else None
    settings = checks.optimizer_settings(optimizer)
    X, names, pinned = _rows_of(data, slots.shape[0])  # held to the end of the run
    state_before = tape._opt_state
    cdef Optimizer O = tape._optimizer(settings)
    state = tape._opt_state  # what O points into stays alive for the whole run
    fed_before, tape._fed = tape._fed, tape._fed | set(slots)  # predict wants these given now
    try:
        held_out = _held_out(tape, validation, inputs)
    except BaseException:
        tape._fed = fed_before
        raise
    cdef Py_ssize_t chunk = _chunk_rows(tape)
    # The nodes' state as it was, for a fit refused part-way (the run writes it in place).
    nodes_before = [np.array(a) for a in tape._computed()]
    cdef double root_grad = tape.grads[tape.n - 1]

    cdef Py_ssize_t n_rows = X.shape[0], start, stop, epoch = 0, at = -1, last_row = -1
    cdef RunStatus status = RUN_OK
    cdef double loss_sum = 0.0
    cdef double* losses = &loss_sum if track_loss else NULL  # where the rows' losses add up
    cdef int64_t[::1] order
    cdef Graph G = tape._graph()
    cdef Data D = _data_view(X, slots)
    cdef Fused step = _step(tape, slots, batch, D.s1, O.kind == OPT_SGD and O.lr != O.lr)
    if state_before is tape._opt_state:  # the same state goes on: keep a copy to go back to
        state_before = [np.copy(a) if isinstance(a, np.ndarray) else a for a in state_before]
    # A generator or bit generator passed as seed is the caller's: drawn from only as asked.
    own = not isinstance(seed, (np.random.Generator, np.random.BitGenerator))
    orders = _RowOrders(rng, n_rows, n_epochs, own) if rng is not None else None
    bar = checks.progress_bar(n_epochs * n_rows) if progress else None
    history = []
    settled = False  # the nodes settled after the last epoch (and no row trained since)
    try:
        for epoch in range(n_epochs):
            settled = False
            t0 = time.perf_counter()
            loss_sum = 0.0
            if orders is not None:
                order = _checked_order(orders.next(), n_rows)
                D.rows = &order[0]
            for start in range(0, n_rows, chunk):
                stop = min(start + chunk, n_rows)
                with nogil:
                    status = step.train(&G, &D, &O, start, stop, n_rows, losses, &at)
                state[5] = O.t
                if status != RUN_OK:
                    break
                last_row = D.rows[stop - 1] if D.rows != NULL else stop - 1
                if bar is not None:
                    bar.update(stop - start)
                    bar.set_postfix(**_shown(epoch, loss_sum / stop if track_loss else None),
                                    refresh=False)
                PyErr_CheckSignals()  # Ctrl-C arrives here, between chunks
            if status != RUN_OK:
                break
            seconds = time.perf_counter() - t0
            if held_out is not None or callback is not None:
                # Every node as the general passes leave it after this epoch: what the
                # held-out loss is computed from and what the callback sees.
                step.settle_last_update(&G, &D, last_row)
                settled = True
            validation_loss = None
            if held_out is not None:
                validation_loss = float(np.mean(_predict(tape, held_out[0], held_out[1],
                                                         held_out[2])))
            stats = EpochStats(epoch + 1, loss_sum / n_rows if track_loss else None, seconds,
                               n_rows / seconds, validation_loss)
            history.append(stats)
            if bar is not None:
                if validation_loss is not None:
                    bar.set_postfix(**_shown(epoch, stats.loss, validation_loss), refresh=False)
                bar.refresh()  # every epoch shows its loss, however fast it ran
            if callback is not None:
                asked_to_stop = callback(stats)
                step.gather(&G)  # the parameters and lrs as the callback left them
                if asked_to_stop:
                    break  # asked to stop: the run ends as after its last epoch
    except BaseException:
        if last_row >= 0:
            _settle(tape, &D, last_row, root_grad)
        raise
    finally:
        if bar is not None:
            bar.close()
    if status == RUN_OK:
        if not settled:
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


@cython.final
cdef class _Rows:
    """One thread's share of predict, through its own copy of the values and its own scratch:
    threads share nothing they write. Rows are independent of each other, so the result is
    the same to the last bit however the rows are shared out."""
    cdef bint ready                # built by _share, and only then run
    cdef int how
    cdef Graph G
    cdef Data D
    cdef Py_ssize_t out, n_rows, n_program, B
    cdef double[::1] values, buf, weights, bias, result
    cdef Py_ssize_t[::1] offsets, program
    cdef const double* bias_p
    cdef Fused step
    cdef bint ok                   # no row held nan or inf
    cdef bint done                 # every row of the share was computed
    # What G and D point into (the tape, the data, the slots, the result): alive as long as
    # the share is, even should its thread outlive the predict that started it.
    cdef object kept

    cdef bint run(self, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
        """Rows [start, stop) into the result; False if one holds nan or inf."""
        if self.how == BY_DOT:
            return dot_rows(&self.D, &self.offsets[0], &self.weights[0], self.offsets.shape[0],
                            self.bias_p, start, stop, &self.result[0])
        if self.how == BY_STEPS:
            return self.step.predict(&self.G, &self.D, start, stop, self.out, &self.result[0])
        return forward_rows(&self.G, &self.D, &self.program[0], self.n_program, &self.buf[0],
                            self.B, start, stop, self.out, &self.result[0])


def _run_rows(_Rows rows not None, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t chunk,
              list stopped not None):
    """A worker thread's loop: rows [start, stop), a chunk at a time without the GIL, until
    done, a bad row, or the main thread says stop."""
    cdef bint ok = True
    cdef Py_ssize_t end
    if not rows.ready or not 0 <= start <= stop <= rows.n_rows or chunk < 1:
        raise ValueError("not a share of predict's rows")
    while start < stop and ok and not stopped:
        end = min(start + chunk, stop)
        with nogil:
            ok = rows.run(start, end)
        start = end
    rows.ok, rows.done = ok, start == stop


cdef object _held_out(Tape tape, validation, inputs):
    """(data, inputs, root) for the held-out loss of every epoch, checked; None without.
    ``validation`` is ``(data, inputs)`` (a tuple), or data whose columns feed fit's own
    inputs."""
    if validation is None:
        return None
    if isinstance(validation, tuple):
        if len(validation) != 2:
            raise TypeError(f"validation must be held-out data, or a tuple (data, inputs), not "
                            f"a tuple of {len(validation)}")
        data, inputs = validation
    else:
        data = validation
    inputs = checks.node_list("validation's inputs", inputs, "the leaves its columns feed")
    cdef Py_ssize_t[::1] slots = tape._input_slots(inputs)
    root = tape.nodes[tape.n - 1]
    _output(tape, root, slots)  # every leaf the loss reads that fit feeds must have a column
    X, names, _ = _rows_of(data, slots.shape[0])  # each epoch's predict pins it again
    if X.shape[0] == 0:
        raise ValueError("validation data has no rows")
    bad = checks.nonfinite_error(X, names, what="validation data")
    if bad is not None:
        raise bad
    return X, inputs, root


cdef object _predict(Tape tape, data, inputs, output):
    cdef Py_ssize_t chunk = _chunk_rows(tape)
    cdef Py_ssize_t[::1] slots = tape._input_slots(inputs)
    cdef Py_ssize_t out
    out, needed = _output(tape, output, slots)  # needed: what out depends on
    X, names, pinned = _rows_of(data, slots.shape[0])  # held to the end of the run
    cdef Py_ssize_t n_rows = X.shape[0], n = tape.n, start, stop, k
    result = np.empty(n_rows)
    cdef Data D = _data_view(X, slots)
    cdef _Rows rows

    # Which way, and what it reads.
    layers, steps = tape._plan(slots)
    if any(out in layer.nodes and out not in layer.outputs for layer in layers):
        layers = []  # a node inside a layer: only the general passes compute it
    column = {slots[j]: j for j in range(slots.shape[0])}
    unit = next((layer for layer in layers
                 if getattr(layer, "kind", "dense") == "dense" and layer.outputs == [out]), None)
    if unit is not None:
        unit = checked_layer(unit, n)  # what the loop reads, and nothing else of the layer
    if (unit is not None and unit.activation == OP_LEAF and unit.outputs.shape[0] == 1
            and sorted(column.get(i, -1) for i in unit.inputs.tolist()) == list(range(len(column)))):
        how = BY_DOT  # one unit reading every data column (the tutorial's model)
        way = (np.array([column[i] * D.s1 for i in unit.inputs.tolist()], dtype=np.intp),
               np.asarray(tape.values)[unit.weights[:, 0]],
               np.asarray(tape.values)[unit.biases] if unit.biases.shape[0] else None)
    elif layers:  # each row through the fused layers and the nodes between them, as needed
        how = BY_STEPS
        way = (layers, [s for s in steps if (needed[s] if s >= 0 else
                                             any(needed[o] for o in layers[-1 - s].outputs))])
    else:  # only the nodes output depends on, in tape order, a block of rows at a time
        how = BY_BLOCKS
        way = np.flatnonzero(needed & (np.asarray(tape.opcodes) != OP_LEAF)).astype(np.intp)

    # Blocks of rows in threads, one per core, when there are rows enough and no op written
    # in Python (whose calls would only queue for the GIL).
    n_threads = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count() or 1, n_rows // THREAD_ROWS)
    custom = np.isin(np.asarray(tape.opcodes)[needed], [OP_CUSTOM1, OP_CUSTOM2]).any()
    n_threads = 1 if custom or n_threads < 2 else n_threads
    shares = [_share(tape, how, way, X, slots, out, result) for _ in range(n_threads)]
    bounds = [n_rows * k // n_threads for k in range(n_threads + 1)]
    stopped, workers, error = [], [], None
    rows = shares[0]
    ok = True
    try:
        for k in range(1, n_threads):
            worker = threading.Thread(
                target=_run_rows, args=(shares[k], bounds[k], bounds[k + 1], chunk, stopped))
            workers.append(worker)
            worker.start()
        for start in range(0, bounds[1], chunk):  # the main thread's share
            stop = min(start + chunk, bounds[1])
            with nogil:
                ok = rows.run(start, stop)
            tape._raise_custom_error()
            if not ok:
                stopped.append(True)  # the workers' rows are not wanted any more
                break
            PyErr_CheckSignals()
    except BaseException as raised:
        stopped.append(True)
        error = raised
    # Every worker ends before predict does. Ctrl-C while waiting stops them sooner, and is
    # raised once they are done (each share keeps alive what it reads, whatever happens).
    for worker in workers:
        while True:
            try:
                worker.join()
                break
            except RuntimeError:  # never started: interrupted before it could be
                break
            except BaseException as raised:
                stopped.append(True)
                if error is None:
                    error = raised
    if error is not None:
        raise error
    for k in range(1, n_threads):
        ok = ok and (<_Rows>shares[k]).ok
    if not ok:  # a bad row (the other threads were then told to stop)
        raise checks.data_error(X, names)
    for k in range(1, n_threads):
        if not (<_Rows>shares[k]).done:
            raise RuntimeError("a thread of predict stopped before its rows were done")
    return result


cdef _Rows _share(Tape tape, int how, way, X, Py_ssize_t[::1] slots, Py_ssize_t out, result):
    """A share of predict's rows (see _Rows), with everything it writes its own."""
    cdef _Rows rows = _Rows()
    rows.how, rows.out, rows.n_rows, rows.result, rows.ok = how, out, X.shape[0], result, True
    rows.D = _data_view(X, slots)
    rows.kept = (tape, X, slots, result)
    # The rows pass through a copy of the values: predict changes nothing in the graph.
    rows.values = np.array(tape.values)
    rows.G = tape._graph()
    rows.G.values = &rows.values[0]
    if how == BY_DOT:
        offsets, weights, bias = way
        rows.offsets, rows.weights = offsets, weights
        rows.bias = bias if bias is not None else np.zeros(1)
        rows.bias_p = &rows.bias[0] if bias is not None else NULL
    elif how == BY_STEPS:
        layers, steps = way
        rows.step = _fused(tape, layers, steps, slots, 1, rows.D.s1, True)
    else:
        rows.n_program = way.shape[0]
        rows.program = way if rows.n_program else np.zeros(1, dtype=np.intp)
        rows.B = max(1, min(256, BLOCK_DOUBLES // tape.n))
        rows.buf = np.repeat(np.asarray(tape.values), rows.B)  # leaves keep their value
    rows.ready = True
    return rows


cdef tuple _output(Tape tape, output, Py_ssize_t[::1] slots):
    """The tape index of predict's output (see Tape.predict), checked against stale leaves,
    and which nodes it depends on (_ancestors)."""
    given = set(slots)
    cdef Py_ssize_t out = tape.n - 1, target, other
    if output is not None:
        out = tape._slot_of(output, "output")
    elif tape.opcodes[out] in (OP_MSE, OP_MAE, OP_HUBER, OP_LOGLOSS):
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
