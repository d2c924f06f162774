# The op codes of ourdl and their arithmetic: a node's value from its parents', and what it
# owes each parent in backward. Inline, so every module that cimports this compiles the same
# operations in the same order (reference.py spells out the same rules in Python).

from libc.math cimport cos, exp, fabs, log, log1p, pow, sin, sqrt, tan, tanh

# One code per op. The Python mirror is OP_NAMES in _nodes.pyx (same order).
cdef enum Op:
    OP_LEAF = 0
    OP_ADD
    OP_SUB
    OP_MUL
    OP_DIV
    OP_POW
    OP_MSE
    OP_MAE
    OP_HUBER
    OP_MAX          # the larger of Papa and Mama (ties: Papa)
    OP_LOGLOSS      # binary cross-entropy of a logit (Papa) against a target (Mama)
    OP_CUSTOM2      # a binary op written in Python (ourdl.CustomNode): the tape calls it back
    OP_NEG
    OP_EXP
    OP_LN
    OP_SIN
    OP_COS
    OP_TAN
    OP_TANH
    OP_SIGMOID
    OP_RELU
    OP_ABS
    OP_SQRT
    OP_CUSTOM1      # a unary op written in Python
    N_OPS


cdef inline bint is_binary(int op) noexcept nogil:
    return OP_ADD <= op <= OP_CUSTOM2


cdef inline int arity_of(int op) noexcept nogil:
    return 0 if op == OP_LEAF else (2 if is_binary(op) else 1)


cdef inline bint nonfinite(double x) noexcept nogil:
    return x - x != 0.0  # nan for inf and nan, 0 for every finite x


cdef inline double sign(double a) noexcept nogil:
    return 1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0)


cdef extern from "select.h":
    double select "ourdl_select" (bint c, double a, double b) noexcept nogil  # c ? a : b


cdef extern from "squares.h":
    double ourdl_sure_square(double d) noexcept nogil
    void ourdl_sure_squares(const double* d, double* sq, Py_ssize_t n) noexcept nogil


cdef inline double squared(double d) noexcept nogil:
    """``pow(d, 2.0)`` exactly as libm computes it (and so Python's ``d ** 2``), mostly without
    calling pow() (squares.h says when d * d is its answer)."""
    cdef double p = ourdl_sure_square(d)
    return p if p == p else pow(d, 2.0)


cdef inline double op_value(int op, double a, double b, double c) noexcept nogil:
    """The value of a built-in op's node from its parents' values (b is 0 for unary ops) and
    its constant c (HuberNode's delta; 0 for the others)."""
    cdef double d
    if op == OP_ADD:
        return a + b
    elif op == OP_SUB:
        return a - b
    elif op == OP_MUL:
        return a * b
    elif op == OP_DIV:
        return a / b
    elif op == OP_POW:
        return pow(a, b)
    elif op == OP_MSE:
        return squared(a - b)
    elif op == OP_MAE:
        return fabs(a - b)
    elif op == OP_HUBER:
        d = a - b
        return 0.5 * d * d if fabs(d) <= c else c * (fabs(d) - 0.5 * c)
    elif op == OP_MAX:
        return select(a >= b, a, b)
    elif op == OP_LOGLOSS:  # never exp of a positive number, never log(0)
        return ((a if a > 0.0 else 0.0) - a * b) + log1p(exp(-fabs(a)))
    elif op == OP_NEG:
        return -a
    elif op == OP_EXP:
        return exp(a)
    elif op == OP_LN:
        return log(a)
    elif op == OP_SIN:
        return sin(a)
    elif op == OP_COS:
        return cos(a)
    elif op == OP_TAN:
        return tan(a)
    elif op == OP_TANH:
        return tanh(a)
    elif op == OP_SIGMOID:
        return 1.0 / (1.0 + exp(-a))
    elif op == OP_RELU:
        return select(a <= 0.0, 0.0, a)
    elif op == OP_ABS:
        return fabs(a)
    else:  # OP_SQRT
        return sqrt(a)


cdef inline void op_grads(int op, double a, double b, double v, double g, double c,
                          double* to_papa, double* to_mama) noexcept nogil:
    """What a built-in op's node with value v, gradient g and constant c owes its parents
    (written as in reference.py)."""
    cdef double t, d
    to_mama[0] = 0.0
    if op == OP_ADD:
        to_papa[0] = g
        to_mama[0] = g
    elif op == OP_SUB:
        to_papa[0] = g
        to_mama[0] = -g
    elif op == OP_MUL:
        to_papa[0] = g * b
        to_mama[0] = g * a
    elif op == OP_DIV:
        to_papa[0] = g / b
        to_mama[0] = (-g * a) / (b * b)
    elif op == OP_POW:
        to_papa[0] = g * b * pow(a, b - 1.0)
        to_mama[0] = 0.0 if (a == 0.0 and b >= 0.0) else g * v * log(a)
    elif op == OP_MSE:
        t = g * 2.0 * (a - b)
        to_papa[0] = t
        to_mama[0] = -t
    elif op == OP_MAE:
        t = g * sign(a - b)
        to_papa[0] = t
        to_mama[0] = -t
    elif op == OP_HUBER:
        d = a - b
        t = g * (d if fabs(d) <= c else c * sign(d))
        to_papa[0] = t
        to_mama[0] = -t
    elif op == OP_MAX:
        to_papa[0] = select(a >= b, g, 0.0)
        to_mama[0] = select(a >= b, 0.0, g)
    elif op == OP_LOGLOSS:  # sigmoid(a) - b, the sigmoid without overflow either way
        t = exp(-fabs(a))
        to_papa[0] = g * ((1.0 / (1.0 + t) if a >= 0.0 else t / (1.0 + t)) - b)
        to_mama[0] = g * -a
    elif op == OP_NEG:
        to_papa[0] = -g
    elif op == OP_EXP:
        to_papa[0] = g * v
    elif op == OP_LN:
        to_papa[0] = g / a
    elif op == OP_SIN:
        to_papa[0] = g * cos(a)
    elif op == OP_COS:
        to_papa[0] = g * -sin(a)
    elif op == OP_TAN:
        to_papa[0] = g * (1.0 + v * v)
    elif op == OP_TANH:
        to_papa[0] = g * (1.0 - v * v)
    elif op == OP_SIGMOID:
        to_papa[0] = g * (v * (1.0 - v))
    elif op == OP_RELU:
        to_papa[0] = select(a > 0.0, g, 0.0)
    elif op == OP_ABS:
        to_papa[0] = g * sign(a)
    else:  # OP_SQRT
        to_papa[0] = g / (2.0 * v)
