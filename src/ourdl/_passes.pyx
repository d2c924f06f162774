"""ourdl's general passes: forward, backward and update over a flattened graph, one node at a
time in tape order (parents first), and a blocked forward over many rows for prediction.

They trust their indices: a Tape built them from the graph itself, and checked every index
that came from Python before a pass sees it.
"""

from libc.string cimport memcpy
from ourdl._ops cimport *


cdef void forward_pass(const Graph* G) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(G.n):
        node_forward(G, i)


cdef void backward_pass(const Graph* G, double root_grad) noexcept nogil:
    """Gradients of the root (the last node) with respect to every node, summed over paths."""
    cdef Py_ssize_t i
    for i in range(G.n - 1):
        G.grads[i] = -0.0  # the identity of +=, to the last bit (see reference.py)
    G.grads[G.n - 1] = root_grad
    for i in range(G.n - 1, -1, -1):
        node_backward(G, i)


cdef void update_pass(const Graph* G) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(G.n):
        if G.flags[i]:
            G.values[i] = G.values[i] - G.lrs[i] * G.grads[i]



# ----------------------------------------------------------------------------- many rows at once

cdef bint forward_rows(const Graph* G, const Data* D, const Py_ssize_t* program,
                       Py_ssize_t n_program, double* buf, Py_ssize_t B, Py_ssize_t start,
                       Py_ssize_t stop, Py_ssize_t out, double* result) noexcept nogil:
    """Forward over rows [start, stop), B rows at a time: node i's values for a block live in
    buf[i*B : (i+1)*B], so each op is one loop over the block and is dispatched once per
    block, not once per row. Every row sees the same operations as forward_pass. False if a
    row holds nan or inf."""
    cdef Py_ssize_t s, nb, r, j, q, i
    cdef const double* xr
    cdef double* dst
    cdef const double* a
    cdef const double* b
    cdef int o
    cdef bint bad = False
    s = start
    while s < stop:
        nb = min(B, stop - s)
        for j in range(D.n_inputs):
            dst = buf + D.slots[j] * B
            xr = D.x + s * D.s0 + j * D.s1
            for r in range(nb):
                dst[r] = xr[r * D.s0]
                bad = bad | nonfinite(dst[r])
        if bad:
            return False
        for q in range(n_program):
            i = program[q]
            o = G.op[i]
            dst = buf + i * B
            a = buf + G.papa[i] * B
            if o == OP_ADD:
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = a[r] + b[r]
            elif o == OP_MUL:
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = a[r] * b[r]
            elif o == OP_SUB:
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = a[r] - b[r]
            elif is_binary(o):
                b = buf + G.mama[i] * B
                for r in range(nb):
                    dst[r] = node_value(G, i, o, a[r], b[r])
            else:
                for r in range(nb):
                    dst[r] = node_value(G, i, o, a[r], 0.0)
        if G.aborted[0]:  # an op written in Python raised
            return False
        memcpy(result + s, buf + out * B, nb * sizeof(double))
        s += nb
    return True

