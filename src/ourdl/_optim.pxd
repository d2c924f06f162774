# The update rules of Tape.fit (ourdl.optim), with their state: one slot per tape node.

from libc.math cimport pow, sqrt

# One code per rule. The Python mirror is OPTIMIZERS in _tape.pyx (same order, checked there).
cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM
    OPT_ADAM
    N_OPTIMIZERS

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
