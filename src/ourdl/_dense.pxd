# A dense layer, a layer of shared weights and the tutorial's loss as the fused row loops see
# them (ourdl._fused, ourdl._kernels).

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
    double* w_before              # before the last update made aside: to undo it, settle on it
    double* w_sum                 # gradients summed over the current batch
    double* w_lr                  # the weights' lrs, read again from the tape with them
    double* wt                    # the weights transposed, [unit][input], for in_grads
    double* lr_t                  # their lrs, transposed too
    bint wt_current               # wt holds the weights as they are (else unused until dense_ready)
    double lr_all                 # the lr of every weight, nan if they differ
    double w_max                  # a bound of the weights' and biases' magnitudes
    double lr_max                 # the largest magnitude among their lrs
    double* b
    double* b_before
    double* b_sum
    double* b_lr
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
    double root_grad              # the root's gradient
    double* residuals             # each row's Papa - Mama in a chunk, for the loss afterwards


# Terms of sums laid rank after rank (see Ordered and Shared), taken as runs: in each run the
# terms of consecutive sums share one factor (at scalar) and read the other from consecutive
# places (from vector on). A convolution's runs are its output channels at one position, side
# by side: whole vectors, without gathering a value term by term.
cdef struct Runs:
    Py_ssize_t n
    const Py_ssize_t* acc         # per run: its first sum
    const Py_ssize_t* scalar      # per run: where its shared factor is
    const Py_ssize_t* vector      # per run: where its first sum's other factor is
    const Py_ssize_t* length      # per run: how many sums


# Sums of gradients, each target's terms in a fixed order, the targets side by side: the
# terms are laid out rank after rank (every target's first term, then every second term, ...),
# targets with more terms first, so that each rank's loop runs over independent sums.
cdef struct Ordered:
    Py_ssize_t n_targets, n_ranks
    const Py_ssize_t* targets     # tape index of each target, most terms first
    const Py_ssize_t* count       # per rank: how many targets have a term of that rank
    const Py_ssize_t* unit        # per term, rank after rank: whose delta it carries
    const Py_ssize_t* factor      # per term: tape index of the value it multiplies; NULL: 1
    double* acc
    Runs runs                     # n > 0: the terms as runs (delta from vector, factor at
                                  # scalar), and count, unit and factor unused


# Units sharing weights (a convolution) as the row loop sees them. Units are sorted by their
# number of terms, most first, and their terms laid out rank after rank (every unit's first
# term, then every second term, ...): each rank's loop runs over independent sums, and each
# unit's sum still runs in its chain's order. Weights and biases stay in the tape's arrays.
cdef struct Shared:
    Py_ssize_t n_units, n_ranks
    const Py_ssize_t* count       # per rank: how many units have a term of that rank
    const Py_ssize_t* x           # per term, rank after rank: tape index of its input
    const Py_ssize_t* w           # per term, rank after rank: tape index of its weight
    const Py_ssize_t* b_slots     # per unit: tape index of its bias; NULL without biases
    const Py_ssize_t* outputs     # per unit: tape index of its output
    int act                       # OP_TANH, OP_RELU, OP_SIGMOID, or OP_LEAF for none
    bint in_grads                 # the inputs' gradients are needed
    double* pre                   # this row's sums (before the activation)
    double* out                   # this row's outputs
    double* delta                 # this row's gradients at the sums
    Ordered weight_grads, input_grads, bias_grads
    Runs runs                     # n > 0: the terms as runs (input at scalar, weight in
                                  # w_buf), and count, x and w unused
    Py_ssize_t n_w
    const Py_ssize_t* w_slots     # tape index of each weight, in the runs' order
    double* w_buf                 # their values this row


# Windows of max-pooling as the row loop sees them: each a chain of MaxNodes over its elements.
cdef struct MaxPool:
    Py_ssize_t n_units
    const Py_ssize_t* ends        # per window: where its elements end
    const Py_ssize_t* x           # per element, window after window: its tape index
    const Py_ssize_t* outputs     # per window: tape index of the top of its chain
    bint in_grads                 # the inputs' gradients are needed
    double* running               # per element: the chain's value once it is taken in
    double* contrib               # per element: what it receives from its MaxNode this row
    Ordered input_grads


# A softmax cross-entropy head as the row loop sees it: K logits and targets, and the orders
# in which its shared nodes sum their gradients.
cdef struct Softmax:
    Py_ssize_t k
    const Py_ssize_t* z           # the logits' tape indices
    const Py_ssize_t* t           # the targets'
    Py_ssize_t out                # the loss's
    const Py_ssize_t* lp_order    # classes, latest log-probability first
    const Py_ssize_t* d_order     # classes, latest z_k - m first
    const Py_ssize_t* d_from_lp_first   # per class: 1 if the log-probability reaches
    const Py_ssize_t* z_from_d_first    # z_k - m before its exp does; 1 if z_k - m reaches
                                  # z_k before the MaxNode reading it does
    double* top                   # per class: the running maximum after it (class 0: z_0)
    double* d                     # z_k - m
    double* e                     # exp(z_k - m)
    double* lp                    # z_k - m - ln(total)
    double* g_lp                  # this row's gradients
    double* g_d
    double* g_z_max               # what the MaxNodes send each logit
    double total, log_total, acc  # sum of exps, its ln, the sum of t_k * lp_k
