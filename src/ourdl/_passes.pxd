# The general passes: a graph flattened into arrays, and plain loops over them in tape order.

from libc.math cimport pow, sqrt
from libc.stdint cimport int64_t
from ourdl._ops cimport OP_CUSTOM1, OP_CUSTOM2, OP_LEAF, is_binary, nonfinite, op_grads, op_value

# Pointers into a Tape's arrays: what the compiled passes work on.
cdef struct Graph:
    Py_ssize_t n
    const int* op
    const Py_ssize_t* papa
    const Py_ssize_t* mama
    double* values
    double* grads
    double* papa_grads
    double* mama_grads
    const double* lrs
    const unsigned char* flags
    const double* consts          # each node's constant (HuberNode's delta)
    # Ops written in Python (ourdl.CustomNode): the tape's callbacks, which take the GIL.
    void* tape
    const int* aborted            # set by a callback that raised: the loops stop at once
    double (*custom_value)(void* tape, Py_ssize_t i, double a, double b) noexcept nogil
    void (*custom_grads)(void* tape, Py_ssize_t i, double a, double b, double g,
                         double* to_papa, double* to_mama) noexcept nogil

# Rows of training data as the compiled loops see them.
cdef struct Data:
    const double* x           # element (r, j) is x[r * s0 + j * s1]
    Py_ssize_t s0
    Py_ssize_t s1
    const Py_ssize_t* slots   # the tape index that column j feeds
    Py_ssize_t n_inputs
    const int64_t* rows       # the order of the rows in this epoch; NULL for 0, 1, 2, ...

cdef enum:
    # Rows per trip into compiled code: small enough that Ctrl-C and the progress bar
    # answer within milliseconds, large enough that the trips cost nothing.
    CHUNK_ROWS = 1 << 16

# How a run over rows of data ended.
cdef enum RunStatus:
    RUN_OK = 0
    RUN_BAD_LOSS = 1    # the root value became nan/inf: stopped before that row's update
    RUN_BAD_PARAM = 2   # an update made a parameter nan/inf: it was undone
    RUN_BAD_DATA = 3    # a row of data holds nan/inf: stopped before that row's update
    RUN_ABORTED = 4     # an op written in Python raised: stopped before that row's update

# One dense layer as the row loop sees it: contiguous weights [input][unit] and scratch.
cdef struct Dense:
    Py_ssize_t n_in, n_out
    const Py_ssize_t* inputs      # tape index of each input
    const Py_ssize_t* outputs     # tape index of each unit's output
    const Py_ssize_t* fold        # units in the order their gradients reach each input
    const Py_ssize_t* w_slots     # tape index of each weight, [input][unit]
    const Py_ssize_t* b_slots     # tape index of each bias; NULL without biases
    int act                       # OP_TANH, OP_RELU, OP_SIGMOID, or OP_LEAF for none
    bint trainable                # weights and biases have Flag == 1
    bint in_grads                 # the inputs' gradients are needed
    double* w
    double* w_before              # before the last update, to undo it or settle on it
    double* w_sum                 # gradients summed over the current batch
    const double* w_lr
    double* b
    double* b_before
    double* b_sum
    const double* b_lr
    double* x                     # this row's inputs
    double* pre                   # this row's sums (before the activation)
    double* out                   # this row's outputs
    double* delta                 # this row's gradients at the sums
    double* gin                   # this row's gradients at the inputs
    double* check                 # per unit: nan if one of its new weights is nan or inf


# The tutorial's loss on one unit fed from data: where its columns are, what it is.
cdef struct LinearLoss:
    const Py_ssize_t* offsets     # where each input of the unit sits in a row of data
    Py_ssize_t target             # where the target sits
    bint is_mse                   # MSE, else MAE
    bint sum_is_papa              # the unit is the loss's Papa, else its Mama
    double seed                   # the root's gradient
    double* residuals             # each row's Papa - Mama in a chunk, for the loss afterwards

# The update rule of Tape.fit (ourdl.optim), with its state: one slot per tape node.
cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_ADAM = 2

cdef struct Optimizer:
    int kind
    double lr                     # nan: each node's own lr
    double beta1, beta2, eps      # Momentum's beta is beta1
    double* m                     # Momentum's buffer, Adam's first moment
    double* v                     # Adam's second moment
    double* m_before              # both before the last update, to undo it
    double* v_before
    Py_ssize_t t                  # updates taken
    double bc1, sqrt_bc2          # Adam's bias corrections at step t


cdef inline void opt_begin(Optimizer* O) noexcept nogil:
    """Count one more update (before any parameter takes it)."""
    O.t += 1
    if O.kind == OPT_ADAM:
        O.bc1 = 1.0 - pow(O.beta1, <double>O.t)
        O.sqrt_bc2 = sqrt(1.0 - pow(O.beta2, <double>O.t))


cdef inline double opt_step(Optimizer* O, Py_ssize_t slot, double value, double lr,
                            double g) noexcept nogil:
    """The new value of the parameter at tape index slot, with gradient g and its own lr; as
    ourdl.reference's optimizers compute it, operation for operation."""
    cdef double m, v
    if O.lr == O.lr:  # not nan: the optimizer's lr for every node
        lr = O.lr
    if O.kind == OPT_SGD:
        return value - lr * g
    O.m_before[slot] = O.m[slot]
    if O.kind == OPT_MOMENTUM:
        m = g if O.t == 1 else O.beta1 * O.m[slot] + g
        O.m[slot] = m
        return value - lr * m
    O.v_before[slot] = O.v[slot]
    m = O.beta1 * O.m[slot] + (1.0 - O.beta1) * g
    v = O.beta2 * O.v[slot] + (1.0 - O.beta2) * (g * g)
    O.m[slot] = m
    O.v[slot] = v
    return value - (lr / O.bc1) * (m / (sqrt(v) / O.sqrt_bc2 + O.eps))


cdef inline void opt_undo(Optimizer* O, Py_ssize_t slot) noexcept nogil:
    """Take back the last step's state of the parameter at slot (and once for all of them,
    O.t -= 1)."""
    if O.kind != OPT_SGD:
        O.m[slot] = O.m_before[slot]
        O.v[slot] = O.v_before[slot]


cdef inline double node_value(const Graph* G, Py_ssize_t i, int o, double a,
                              double b) noexcept nogil:
    """The value of node i (op o) from its parents' values a and b."""
    if o == OP_CUSTOM1 or o == OP_CUSTOM2:
        return G.custom_value(G.tape, i, a, b)
    return op_value(o, a, b, G.consts[i])


cdef inline void node_grads(const Graph* G, Py_ssize_t i, int o, double a, double b, double v,
                            double g, double* to_papa, double* to_mama) noexcept nogil:
    """What node i (op o, value v, gradient g) owes its parents."""
    if o == OP_CUSTOM1 or o == OP_CUSTOM2:
        G.custom_grads(G.tape, i, a, b, g, to_papa, to_mama)
    else:
        op_grads(o, a, b, v, g, G.consts[i], to_papa, to_mama)


cdef inline void node_forward(const Graph* G, Py_ssize_t i) noexcept nogil:
    """Node i's value from its parents' (nothing for a leaf)."""
    cdef int o = G.op[i]
    if o == OP_LEAF:
        return
    G.values[i] = node_value(G, i, o, G.values[G.papa[i]],
                             G.values[G.mama[i]] if is_binary(o) else 0.0)


cdef inline void node_backward(const Graph* G, Py_ssize_t i) noexcept nogil:
    """Node i sends its parents what it owes them, added to their gradients."""
    cdef int o = G.op[i]
    cdef Py_ssize_t p, m
    cdef double to_papa, to_mama
    cdef const double* v = G.values
    if o == OP_LEAF:
        return
    p = G.papa[i]
    if is_binary(o):
        m = G.mama[i]
        node_grads(G, i, o, v[p], v[m], v[i], G.grads[i], &to_papa, &to_mama)
        G.papa_grads[i] = to_papa
        G.grads[p] += to_papa
        G.mama_grads[i] = to_mama
        G.grads[m] += to_mama
    else:
        node_grads(G, i, o, v[p], 0.0, v[i], G.grads[i], &to_papa, &to_mama)
        G.papa_grads[i] = to_papa
        G.grads[p] += to_papa


cdef void forward_pass(const Graph* G) noexcept nogil
cdef void backward_pass(const Graph* G, double seed) noexcept nogil
cdef void update_pass(const Graph* G) noexcept nogil
cdef bint forward_rows(const Graph* G, const Data* D, const Py_ssize_t* program,
                       Py_ssize_t n_program, double* buf, Py_ssize_t B, Py_ssize_t start,
                       Py_ssize_t stop, Py_ssize_t out, double* result) noexcept nogil


cdef inline bint all_finite(const double* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if nonfinite(x[k]):
            return False
    return True


cdef inline bint all_finite_row(const Data* D, Py_ssize_t r) noexcept nogil:
    """False if row r of the data holds nan or inf."""
    cdef const double* xr = D.x + r * D.s0
    cdef Py_ssize_t j
    for j in range(D.n_inputs):
        if nonfinite(xr[j * D.s1]):
            return False
    return True


cdef inline bint load_row(const Data* D, Py_ssize_t r, double* values) noexcept nogil:
    """Write row r into the input nodes; False if it holds nan or inf."""
    cdef const double* xr = D.x + r * D.s0
    cdef Py_ssize_t j
    for j in range(D.n_inputs):
        values[D.slots[j]] = xr[j * D.s1]
    return all_finite_row(D, r)
