# cython: language_level=3
"""A bare extension object with a node's fields and no logic: the floor that building an
ourdl Node is held to (bench_define_by_run.py compiles this with Cython when it runs)."""


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
