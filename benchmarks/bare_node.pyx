# cython: language_level=3
"""Floors of graphs built anew for every sample (bench_define_by_run.py compiles this with
Cython when it runs): a bare extension object with a node's fields and no logic, which
building an ourdl Node is held to; and micrograd's Value as a Cython class (BareValue), the
least that building and running the tiny graph from extension objects can cost."""


cdef struct State:
    double value, grad, lr, papa_grad, mama_grad, param
    int flag


cdef class Bare:
    cdef State s
    cdef void* home
    cdef Py_ssize_t home_slot
    cdef readonly Bare Papa, Mama
    cdef public object name
    cdef int opcode
    cdef object tape, turn
    cdef object __weakref__


cdef extern from "math.h":
    double pow(double x, double y) nogil

from cpython.object cimport PyObject

cdef enum:
    LEAF, ADD, MUL, SUB, POW, DIV
    MAX_NODES = 256


cdef class BareValue:
    """A scalar node built by Python's arithmetic operators, its value computed as it is
    built, and a backward over its graph: micrograd's ``Value`` as a Cython class, nothing
    else. Building and running a graph of these is the least a define-by-run graph of
    extension objects can cost: the floor of ourdl's tiny graph."""
    cdef public double value, grad
    cdef readonly BareValue Papa, Mama
    cdef double k  # POW's exponent
    cdef int op
    cdef bint seen  # during backward's walk

    def __init__(self, double value):
        self.value = value

    def __add__(self, other):
        return _op(ADD, self, other)

    def __mul__(self, other):
        return _op(MUL, self, other)

    def __sub__(self, other):
        return _op(SUB, self, other)

    def __truediv__(self, other):
        return _op(DIV, self, other)

    def __pow__(self, double k, modulo):
        cdef BareValue n = BareValue.__new__(BareValue)
        n.op, n.Papa, n.k, n.value = POW, self, k, pow(self.value, k)
        return n

    def backward(self):
        """Every node's gradient of self, in reverse topological order: a depth-first walk
        over C arrays of borrowed pointers (up to MAX_NODES nodes), nothing allocated."""
        cdef PyObject* order[MAX_NODES]
        cdef PyObject* stack[MAX_NODES]
        cdef bint expanded[MAX_NODES]
        cdef Py_ssize_t n_order = 0, top = 0, q
        cdef BareValue n, p
        stack[0], expanded[0] = <PyObject*>self, False
        top = 1
        while top:
            top -= 1
            n = <BareValue>stack[top]
            if expanded[top]:
                order[n_order] = <PyObject*>n
                n_order += 1
            elif not n.seen:
                if top + 3 > MAX_NODES or n_order == MAX_NODES:
                    for q in range(n_order):
                        (<BareValue>order[q]).seen = False
                    raise MemoryError("the bare floor walks at most MAX_NODES nodes")
                n.seen = True
                stack[top], expanded[top] = <PyObject*>n, True
                top += 1
                for p in (n.Papa, n.Mama):
                    if p is not None:
                        stack[top], expanded[top] = <PyObject*>p, False
                        top += 1
        for q in range(n_order):
            n = <BareValue>order[q]
            n.grad, n.seen = 0.0, False
        self.grad = 1.0
        for q in range(n_order - 1, -1, -1):
            n = <BareValue>order[q]
            if n.op == ADD:
                n.Papa.grad += n.grad
                n.Mama.grad += n.grad
            elif n.op == MUL:
                n.Papa.grad += n.Mama.value * n.grad
                n.Mama.grad += n.Papa.value * n.grad
            elif n.op == SUB:
                n.Papa.grad += n.grad
                n.Mama.grad -= n.grad
            elif n.op == DIV:
                n.Papa.grad += n.grad / n.Mama.value
                n.Mama.grad -= n.grad * n.Papa.value / (n.Mama.value * n.Mama.value)
            elif n.op == POW:
                n.Papa.grad += n.k * pow(n.Papa.value, n.k - 1.0) * n.grad


cdef BareValue _op(int op, a, b):
    cdef BareValue x = a if isinstance(a, BareValue) else BareValue(a)
    cdef BareValue y = b if isinstance(b, BareValue) else BareValue(b)
    cdef BareValue n = BareValue.__new__(BareValue)
    n.op, n.Papa, n.Mama = op, x, y
    if op == ADD:
        n.value = x.value + y.value
    elif op == MUL:
        n.value = x.value * y.value
    elif op == SUB:
        n.value = x.value - y.value
    else:
        n.value = x.value / y.value
    return n
