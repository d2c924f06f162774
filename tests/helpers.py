"""Helpers that several test files share: graphs built from either ourdl's compiled nodes
or ourdl.reference's, the tutorial's graphs and printed trace, running `ourdl pubg`
in-process and reading what it printed and left behind, small files in the real PUBG format,
and stopping a program while it writes."""
import collections
import os
import re
import signal
import subprocess
import sys

import numpy as np

import ourdl
from ourdl import AddNode, MSENode, MulNode, Node
from ourdl import cli


def stopped_while_writing(code, folder, stop, args=(), env=None):
    """Run ``code`` (which prints "writing" once its temporary files exist, then waits) in a
    new interpreter in ``folder``, send it signal ``stop`` then; return (the .tmp files it
    had made, its return code, stdout, stderr)."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=folder, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "writing\n", process.stderr.read()
        temporaries = [name for name in os.listdir(folder) if name.endswith(".tmp")]
        process.send_signal(getattr(signal, stop))
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return temporaries, process.returncode, out, err


def run(capsys, *argv):
    """`ourdl pubg *argv` in-process: (exit code, stdout, stderr)."""
    code = cli.main(["pubg", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def messages(err):
    """stderr without the progress bar, which redraws itself with carriage returns."""
    pieces = re.split(r"[\r\n]", err)
    return [piece for piece in pieces if piece.strip() and not piece.startswith("training:")]


def outputs(folder):
    """Every file the command could have left behind (the cache aside)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "cache")


# The first five rows of the real training file (docs/pubg-data.md); player_name was printed as
# "?", so numbers stand in for it.
REAL_ROWS = """\
match_id,team_id,game_size,party_size,player_assists,player_dbno,player_dist_ride,player_dist_walk,player_dmg,player_kills,player_name,kill_distance_x_min,kill_distance_x_max,kill_distance_y_min,kill_distance_y_max,team_placement
0,1,50,2,0,1,4984.54900,2054.031490,218,2,{0},1689.9,3992.9,137.0,819.8,5
0,1,50,2,1,0,5960.46436,2268.221000,125,0,{1},,,,,5
0,2,50,2,0,0,0.00000,0.000000,0,0,{2},,,,,49
0,2,50,2,0,0,0.00000,5.211829,41,0,{3},,,,,49
0,3,50,2,0,0,0.00000,341.730927,69,0,{4},,,,,34
"""
REAL_CSV = REAL_ROWS.format(101, 102, 103, 104, 105)
REAL_TEST_CSV = "\n".join(line.rsplit(",", 1)[0] for line in REAL_CSV.splitlines()) + "\n"


Network = collections.namedtuple("Network", "x w y prediction loss")


def build_network(n_features=13, lr=0.01):
    """The tutorial's n -> 1 linear PUBG network, wired and named as the tutorial wires it:
    x[i] = Node(), w[i] = Node(Flag=1, lr=lr), m[i] = MulNode(x[i], w[i]), a chain of AddNodes
    a[i] summing the m[i] into the prediction, y = Node() and result = MSENode(prediction, y)."""
    x = [Node(name=f"x[{i}]") for i in range(n_features)]
    w = [Node(Flag=1, lr=lr, name=f"w[{i}]") for i in range(n_features)]
    m = [MulNode(Papa=x_i, Mama=w_i, name=f"m[{i}]") for i, (x_i, w_i) in enumerate(zip(x, w))]
    prediction = m[0]
    for i, m_i in enumerate(m[1:]):
        prediction = AddNode(Papa=prediction, Mama=m_i, name=f"a[{i}]")
    y = Node(name="y")
    return Network(x, w, y, prediction, MSENode(Papa=prediction, Mama=y, name="result"))


# --- the tutorial's graphs and trace ------------------------------------------------------------

def tutorial_graph():
    """The tutorial's 3-input example, named as the tutorial names its variables."""
    x = [ourdl.Node(Value=v, name=f"x{i + 1}") for i, v in enumerate((1.1, 2, 3))]
    w = [ourdl.Node(Value=1, Flag=1, name=f"w{i + 1}") for i in range(3)]
    m = [ourdl.MulNode(Papa=x[i], Mama=w[i], name=f"m{i + 1}") for i in range(3)]
    a1 = ourdl.AddNode(Papa=m[0], Mama=m[1], name="a1")
    a2 = ourdl.AddNode(Papa=a1, Mama=m[2], name="a2")
    y = ourdl.Node(Value=6, name="y")
    return ourdl.MSENode(Papa=a2, Mama=y, Value=20, name="result")


def chain(n):
    node = ourdl.Node(Value=0.5, Flag=1, name="start")
    for _ in range(n - 1):
        node = ourdl.SinNode(node)
    return node


# The tutorial's printed trace (print(text, value) puts one space between the two).
TUTORIAL_TRACE = [
    ("计算前 result.value = ", "20"),
    ("计算后 result.value = ", "0.009999999999999929"),
    ("第一次更新后 w1.value = ", "0.9978"),
    ("第一次更新后 result.value = ", "0.005123696399999996"),
    ("第二次更新后 w1.value = ", "0.99622524"),
    ("第二次更新后 result.value = ", "0.002625226479937307"),
    ("第三次更新后 w1.value = ", "0.995098026792"),
    ("第三次更新后 result.value = ", "0.00134508634644392"),
    ("第四次更新后 w1.value = ", "0.9942911675777136"),
    ("第四次更新后 result.value = ", "0.0006891814070964006"),
]


def expected_lines(trace):
    return [f"{text} {value}" for text, value in trace]


# --- graphs built from either module ------------------------------------------------------------
# Each builder takes a module, ``ourdl`` (compiled nodes) or ``ourdl.reference`` (the oracle),
# and wires the same graph from its classes, so the two tapes list the nodes in the same order.

Net = collections.namedtuple("Net", "root inputs params")


def tutorial_net(M, n_features=13, lr=0.01):
    """The tutorial's PUBG network, wired exactly as the tutorial does: fit's fused path."""
    x, w = [], []
    for _ in range(n_features):
        x.append(M.Node())
        w.append(M.Node(Flag=1, lr=lr))
    m = [M.MulNode(Papa=x[i], Mama=w[i]) for i in range(n_features)]
    a = []
    for i in range(n_features - 1):
        a.append(M.AddNode(Papa=m[0] if i == 0 else a[i - 1], Mama=m[i + 1]))
    y = M.Node()
    return Net(M.MSENode(Papa=a[-1], Mama=y), x + [y], w)


def mirrored_linear(M):
    """Still a linear model, but every part the other way round: parameters as Papa, the
    chain continuing on Mama's side, a bias, the target as the loss's Papa, mixed lr and a
    root gradient that is not 1."""
    x = [M.Node() for _ in range(3)]
    w = [M.Node(Value=v, Flag=1, lr=lr) for v, lr in ((0.3, 0.01), (-0.2, 0.02), (0.1, 0.005))]
    b = M.Node(Value=0.05, Flag=1, lr=0.01)
    s = M.AddNode(M.MulNode(w[0], x[0]), M.MulNode(x[1], w[1]))
    s = M.AddNode(M.MulNode(w[2], x[2]), s)
    s = M.AddNode(s, b)
    y = M.Node()
    root = M.MSENode(y, s)
    root.grad = 0.75
    return Net(root, x + [y], w + [b])


def mae_with_bias(M):
    x = [M.Node() for _ in range(3)]
    w = [M.Node(Value=0.1 * i, Flag=1, lr=0.01) for i in range(3)]
    b = M.Node(Value=0.0, Flag=1, lr=0.01)
    s = M.AddNode(M.MulNode(x[0], w[0]), M.MulNode(x[1], w[1]))
    s = M.AddNode(M.AddNode(s, M.MulNode(x[2], w[2])), b)
    y = M.Node()
    return Net(M.MAENode(s, y), x + [y], w + [b])


def tanh_mlp(M, n_in=3, n_hidden=4):
    rng = np.random.default_rng(7)
    x = [M.Node() for _ in range(n_in)]
    params, hidden = [], []
    for j in range(n_hidden):
        weights = [M.Node(Value=float(rng.normal(0, 0.7)), Flag=1, lr=0.05) for _ in range(n_in)]
        bias = M.Node(Value=float(rng.normal(0, 0.1)), Flag=1, lr=0.05)
        params += weights + [bias]
        s = M.MulNode(x[0], weights[0])
        for i in range(1, n_in):
            s = M.AddNode(s, M.MulNode(x[i], weights[i]))
        hidden.append(M.TanhNode(M.AddNode(s, bias)))
    v = [M.Node(Value=float(rng.normal(0, 0.5)), Flag=1, lr=0.05) for _ in range(n_hidden)]
    c = M.Node(Value=0.0, Flag=1, lr=0.05)
    params += v + [c]
    out = M.MulNode(hidden[0], v[0])
    for j in range(1, n_hidden):
        out = M.AddNode(out, M.MulNode(hidden[j], v[j]))
    y = M.Node()
    return Net(M.MSENode(M.AddNode(out, c), y), x + [y], params)


def balanced_sum(M):
    """The tutorial's model with the sum written as a tree: a different order of additions."""
    x = [M.Node() for _ in range(4)]
    w = [M.Node(Flag=1, lr=0.02) for _ in range(4)]
    m = [M.MulNode(x[i], w[i]) for i in range(4)]
    s = M.AddNode(M.AddNode(m[0], m[1]), M.AddNode(m[2], m[3]))
    y = M.Node()
    return Net(M.MSENode(s, y), x + [y], w)


def shared_weight(M):
    """One parameter used by two products: its gradient is a sum over paths."""
    x = [M.Node() for _ in range(3)]
    w = M.Node(Value=0.2, Flag=1, lr=0.01)
    u = M.Node(Value=-0.1, Flag=1, lr=0.01)
    s = M.AddNode(M.AddNode(M.MulNode(x[0], w), M.MulNode(x[1], w)), M.MulNode(x[2], u))
    y = M.Node()
    return Net(M.MSENode(s, y), x + [y], [w, u])


def op_zoo(M):
    """Every op of the general kernel at least once, a frozen weight and a constant leaf."""
    x = [M.Node() for _ in range(3)]
    p = [M.Node(Value=0.1 + 0.1 * i, Flag=1, lr=0.01) for i in range(9)]
    frozen = M.Node(Value=0.5)  # Flag 0: never updated
    one = M.Node(Value=1.0)
    terms = [
        M.SigmoidNode(M.MulNode(x[0], p[0])),
        M.ReluNode(M.SubNode(x[1], p[1])),
        M.DivNode(M.MulNode(x[2], p[2]), M.AddNode(M.ExpNode(M.MulNode(x[0], p[3])), one)),
        M.MulNode(M.SqrtNode(M.AddNode(M.MulNode(x[1], x[1]), one)), p[4]),
        M.LnNode(M.AddNode(M.AbsNode(M.MulNode(x[2], p[5])), one)),
        M.AddNode(M.SinNode(M.MulNode(x[0], p[6])), M.CosNode(M.MulNode(x[1], p[7]))),
        M.NegNode(M.TanNode(M.MulNode(x[2], frozen))),
        M.PowNode(M.AddNode(x[0], one), p[8]),
    ]
    s = terms[0]
    for t in terms[1:]:
        s = M.AddNode(s, t)
    y = M.Node()
    return Net(M.MAENode(s, y), x + [y], p)


def mirror(root, M):
    """The same graph built from module M's classes, with the same values, flags and lrs."""
    made = {}
    for node in ourdl.topological_order(root):
        cls = getattr(M, type(node).__name__)
        parents = [made[id(p)] for p in (node.Papa, node.Mama) if p is not None]
        made[id(node)] = cls(*parents, Value=node.value, Flag=node.Flag, lr=node.lr)
    return made


def fit_alike(fused, plain, data, fused_inputs, plain_inputs, **kwargs):
    """Fit a fused and an unfused tape of twin graphs the same way: both give the same loss
    history to the bit, or both diverge with the same message."""
    import struct

    import pytest

    def bits(history):
        return [struct.pack("<d", h.loss) for h in history]
    try:
        expected = plain.fit(data, plain_inputs, **kwargs)
    except FloatingPointError as error:
        with pytest.raises(FloatingPointError, match=str(error)[:60]):
            fused.fit(data, fused_inputs, **kwargs)
    else:
        assert bits(fused.fit(data, fused_inputs, **kwargs)) == bits(expected)
