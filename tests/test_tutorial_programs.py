"""The tutorial's two programs, run unchanged but for the import, against the tutorial's own classes.

The tutorial is ../shared/tutorial/000_*.txt ("从零实现深度学习框架"). Its recursive
classes (notebook cell "In [4]") are copied below, as faithfully as the web page allows, and act
as the oracle: on the tutorial's tree-shaped graphs ourdl must reproduce them to the last bit.
The module-level names Node, AddNode, MulNode and MSENode are therefore the tutorial's classes;
ourdl is only ever reached as ``ourdl.`` / ``reference.``.
"""
import gc
import math
import os
import struct
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import ourdl
from ourdl import reference

from helpers import TUTORIAL_TRACE, expected_lines


# ----------------------------------------------------------------------------- the tutorial, In [4]
# A faithful copy (the page lost its line breaks; the code is otherwise unchanged).

class Node(object):
    def __init__(self, Papa = None, Mama = None, Value = 0, Flag = 0, lr = 0.01):
        # 通常使用Father表示父节点,这里使用Papa和Mama纯粹因为更有趣一些
        self.Papa = Papa
        self.Mama = Mama
        self.value = Value
        self.Flag = Flag
        self.Papa_grad = 0
        self.Mama_grad = 0
        self.grad = 1
        self.lr = lr
    def updata(self):
        # 参数更新
        if self.Flag == 1:
            self.value = self.value - self.lr*self.grad
    def forward(self):
        self.value = self.value
    def backward(self):
        self.updata()

# 加法节点
class AddNode(Node):
    def forward(self):
        if self.Papa != None:
            self.Papa.forward() # 基础节点的父节点不需要计算,但是非基础节点的父节点需要保证有值
        if self.Mama != None:
            self.Mama.forward()
        self.value = self.Papa.value + self.Mama.value
    def backward(self):
        if self.Papa != None:
            self.Papa.grad = self.grad * 1
            self.Papa.backward()
        if self.Mama != None:
            self.Mama.grad = self.grad * 1
            self.Mama.backward()
        self.updata()

# 乘法节点
class MulNode(Node):
    def forward(self):
        if self.Papa != None:
            self.Papa.forward()
        if self.Mama != None:
            self.Mama.forward()
        self.value = self.Papa.value * self.Mama.value
    def backward(self):
        if self.Papa != None:
            self.Papa.grad = self.grad * self.Mama.value
            self.Papa.backward()
        if self.Mama != None:
            self.Mama.grad = self.grad * self.Papa.value
            self.Mama.backward()
        self.updata()

# 损失函数节点
class MSENode(Node):
    def forward(self):
        if self.Papa != None:
            self.Papa.forward()
        if self.Mama != None:
            self.Mama.forward()
        self.value = (self.Papa.value - self.Mama.value)**2
    def backward(self):
        if self.Papa != None:
            self.Papa.grad = self.grad * 2 * (self.Papa.value - self.Mama.value) * 1
            self.Papa.backward()
        if self.Mama != None:
            self.Mama.grad = self.grad * 2 * (self.Papa.value - self.Mama.value) * -1
            self.Mama.backward()
        self.updata()


# The tutorial packages these classes as OurDL.py ("框架封装"); its PUBG program imports that file.
TUTORIAL_MODULE = types.ModuleType("OurDL")
TUTORIAL_MODULE.Node, TUTORIAL_MODULE.AddNode = Node, AddNode
TUTORIAL_MODULE.MulNode, TUTORIAL_MODULE.MSENode = MulNode, MSENode

IMPLEMENTATIONS = {"tutorial": "OurDL", "ourdl": "ourdl", "reference": "ourdl.reference"}


@pytest.fixture(autouse=True)
def tutorial_module(monkeypatch):
    """Make ``from OurDL import *`` find the tutorial's own classes."""
    monkeypatch.setitem(sys.modules, "OurDL", TUTORIAL_MODULE)


def run_program(source, module, **namespace):
    """Run a program of the tutorial with its ``from OurDL import *`` pointed at ``module``."""
    source = textwrap.dedent(source)
    assert source.count("from OurDL import *") == 1
    namespace["__name__"] = "tutorial_program"
    exec(compile(source.replace("from OurDL import *", f"from {module} import *"),
                 "<tutorial program>", "exec"), namespace)
    return namespace


def bits(x):
    return struct.pack("<d", float(x))


# ----------------------------------------------------------------------------- In [3], In [5]

FORWARD_PROGRAM = """\
from OurDL import *
x1 = Node(Value = 1)
x2 = Node(Value = 2)
x3 = Node(Value = 3)
w1 = Node(Value = 1)
w2 = Node(Value = 1)
w3 = Node(Value = 1)
m1 = MulNode(Papa = x1, Mama = w1)
m2 = MulNode(Papa = x2, Mama = w2)
m3 = MulNode(Papa = x3, Mama = w3)
a1 = AddNode(Papa = m1, Mama = m2)
a2 = AddNode(Papa = a1, Mama = m3)
y = Node(Value = 6) # 1+2+3 = 6, 这样MSE的结果为0
result = MSENode(Papa = a2, Mama = y, Value = 20)
print('计算前 result.value = ', result.value)
result.forward()
print('计算后 result.value = ', result.value)
"""

# The tutorial's In [5], as the repository ships it for newcomers to run.
TRAINING_PROGRAM = (Path(__file__).resolve().parent.parent / "examples" / "tutorial_example.py"
                    ).read_text(encoding="utf-8").replace("from ourdl import *", "from OurDL import *")

def test_the_tutorial_classes_print_the_tutorial_trace(capsys):
    """The oracle itself is right: the copied classes print exactly what the page shows."""
    run_program(TRAINING_PROGRAM, "OurDL")
    assert capsys.readouterr().out.splitlines() == expected_lines(TUTORIAL_TRACE)


@pytest.mark.parametrize("module", ["ourdl", "ourdl.reference"])
def test_training_example_prints_the_tutorial_numbers(capsys, module):
    ns = run_program(TRAINING_PROGRAM, module)
    lines = capsys.readouterr().out.splitlines()
    # The one documented difference: ourdl stores every value as a float64, so the value the
    # tutorial passed as the int 20 prints as 20.0. Every computed number is the tutorial's exactly.
    assert lines[0] == "计算前 result.value =  20.0"
    assert lines[0] != expected_lines(TUTORIAL_TRACE)[0]
    assert lines[1:] == expected_lines(TUTORIAL_TRACE)[1:]
    assert type(ns["result"].value) is float and type(ns["w1"].value) is float
    # The other weights moved too, and the inputs (Flag 0) did not.
    assert ns["w2"].value < 1.0 and ns["w3"].value < 1.0
    assert (ns["x1"].value, ns["x2"].value, ns["x3"].value) == (1.1, 2.0, 3.0)


@pytest.mark.parametrize("module", ["OurDL", "ourdl", "ourdl.reference"])
def test_forward_example(capsys, module):
    run_program(FORWARD_PROGRAM, module)
    lines = capsys.readouterr().out.splitlines()
    if module == "OurDL":
        assert lines == ["计算前 result.value =  20", "计算后 result.value =  0"]
    else:  # float64 values: 20.0 and 0.0 where the tutorial's ints printed 20 and 0
        assert lines == ["计算前 result.value =  20.0", "计算后 result.value =  0.0"]


# ----------------------------------------------------------------------------- the PUBG network

PUBG_PROGRAM = """\
from OurDL import *
x = [] # 数据输入节点
w = [] # 参数节点
m = [] # 乘法节点
a = [] # 加法节点
for i in range(13):
    x.append(Node())
    w.append(Node(Flag=1))
for i in range(13):
    m.append(MulNode(Papa = x[i], Mama = w[i]))
for i in range(12):
    if i == 0:
        a.append(AddNode(Papa = m[0], Mama = m[1]))
    else:
        a.append(AddNode(Papa = a[i-1], Mama = m[i+1]))
y = Node()
result = MSENode(Papa = a[11], Mama = y)

max_epochs = 1
now_step = 0
for epoch in range(max_epochs):
    for sample in data:
        # 填充输入数据
        for i in range(13):
            x[i].value = sample[i]
        y.value = sample[-1]
        result.forward()
        result.backward()
        now_step = now_step + 1
        print('\\rEpoch:{}/{}, Step:{}'.format(epoch,max_epochs,now_step),end="")
"""

PUBG_ROWS = 3000


@pytest.fixture(scope="module")
def pubg_runs():
    """The PUBG program trained on the same random rows in [0, 1) by each implementation."""
    data = np.random.default_rng(20250723).random((PUBG_ROWS, 14))
    runs = {}
    saved = sys.modules.get("OurDL")
    sys.modules["OurDL"] = TUTORIAL_MODULE
    try:
        for name, module in IMPLEMENTATIONS.items():
            runs[name] = run_program(PUBG_PROGRAM, module, data=data)
    finally:
        if saved is None:
            del sys.modules["OurDL"]
        else:
            sys.modules["OurDL"] = saved
    return runs


def test_pubg_network_has_the_tutorials_shape(pubg_runs):
    ns = pubg_runs["ourdl"]
    assert (len(ns["x"]), len(ns["w"]), len(ns["m"]), len(ns["a"])) == (13, 13, 13, 12)
    assert all(type(node) is ourdl.MulNode for node in ns["m"])
    assert all(type(node) is ourdl.AddNode for node in ns["a"])
    assert type(ns["result"]) is ourdl.MSENode
    assert ns["now_step"] == PUBG_ROWS
    # 13 inputs, 13 weights, 13 products, 12 sums, the target and the loss.
    assert len(ourdl.compile(ns["result"])) == 53
    assert ourdl.compile(ns["result"]).ops.count("mul") == 13


@pytest.mark.parametrize("name", ["ourdl", "reference"])
def test_pubg_weights_bit_for_bit_the_tutorials(pubg_runs, name):
    tutorial_w = [node.value for node in pubg_runs["tutorial"]["w"]]
    ours_w = [node.value for node in pubg_runs[name]["w"]]
    # ourdl stores floats; the plain-Python reference keeps what the loop assigned
    # (numpy.float64 from the data rows), which is a float too.
    assert all(type(v) is float if name == "ourdl" else isinstance(v, float) for v in ours_w)
    assert [bits(v) for v in ours_w] == [bits(v) for v in tutorial_w]
    # The last forward of the loss and the last gradients also agree exactly.
    tutorial_ns, ns = pubg_runs["tutorial"], pubg_runs[name]
    assert bits(ns["result"].value) == bits(tutorial_ns["result"].value)
    assert [bits(n.grad) for n in ns["w"]] == [bits(n.grad) for n in tutorial_ns["w"]]
    assert [bits(n.grad) for n in ns["a"]] == [bits(n.grad) for n in tutorial_ns["a"]]


def test_pubg_training_really_trained(pubg_runs):
    """Guard against a vacuous comparison: the weights moved, differently, and fit the data."""
    w = np.array([node.value for node in pubg_runs["ourdl"]["w"]])
    assert np.all(w != 0.0) and len(set(w.tolist())) == 13
    data = np.random.default_rng(20250723).random((PUBG_ROWS, 14))
    trained = np.mean((data[:, :13] @ w - data[:, 13]) ** 2)
    untrained = np.mean(data[:, 13] ** 2)  # all weights 0, as constructed
    assert trained < 0.5 * untrained


def test_pubg_progress_line(capsys):
    data = np.random.default_rng(1).random((5, 14))
    run_program(PUBG_PROGRAM, "ourdl", data=data)
    assert capsys.readouterr().out == "".join(f"\rEpoch:0/1, Step:{k}" for k in range(1, 6))


# ----------------------------------------------------------------------------- long chains

def test_the_tutorials_classes_fail_on_a_long_chain():
    """What ourdl fixes: the tutorial recurses once per node, so 1,500 nodes are too many."""
    c = Node(Value=1.0)
    n = Node(Value=0.5, Flag=1)
    for _ in range(1_500):
        n = AddNode(Papa=n, Mama=c)
    with pytest.raises(RecursionError):
        n.forward()
    with pytest.raises(RecursionError):
        n.backward()


def add_chain(lib, n_nodes):
    """x + c + c + ... : n_nodes nodes in all (x, the shared c, and n_nodes - 2 AddNodes)."""
    x = lib.Node(Value=0.5, Flag=1, lr=0.25)
    c = lib.Node(Value=1.0, Flag=1, lr=2.0 ** -40)
    n = x
    for _ in range(n_nodes - 2):
        n = n + c
    return x, c, n


def mul_chain(lib, n_nodes):
    """x * c * c * ...: n_nodes nodes, the value x * c ** (n_nodes - 2)."""
    x = lib.Node(Value=3.0)
    c = lib.Node(Value=1.0 + 2.0 ** -20)
    n = x
    for _ in range(n_nodes - 2):
        n = n * c
    return x, c, n


def check_add_chain(x, c, n, n_nodes):
    k = n_nodes - 2
    assert n.forward() == 0.5 + k  # every partial sum is an exact integer + 0.5
    n.backward(update=False)
    assert (x.grad, c.grad, n.grad) == (1.0, float(k), 1.0)  # k paths reach c: the sum
    assert (x.value, c.value) == (0.5, 1.0)
    n.backward()  # with the update
    assert x.value == 0.5 - 0.25 * 1.0 and c.value == 1.0 - 2.0 ** -40 * k
    assert math.isclose(n.forward(), 0.25 + k * c.value, rel_tol=1e-9)


def check_mul_chain(x, c, n, n_nodes):
    k = n_nodes - 2
    cv = 1.0 + 2.0 ** -20
    assert math.isclose(n.forward(), 3.0 * cv ** k, rel_tol=k * 2.3e-16)
    n.backward(update=False)
    assert math.isclose(x.grad, cv ** k, rel_tol=k * 2.3e-16)
    assert math.isclose(c.grad, 3.0 * k * cv ** (k - 1), rel_tol=k * 4.5e-16)


def count_nodes(cls):
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), cls))


def test_compiled_chain_of_a_million_nodes():
    before = count_nodes(ourdl.Node)
    x, c, n = add_chain(ourdl, 1_000_000)
    check_add_chain(x, c, n, 1_000_000)
    assert len(ourdl.topological_order(n)) == 1_000_000
    # Deleting the graph (and the tape cached on its root) frees it, without crashing.
    del x, c, n
    assert count_nodes(ourdl.Node) <= before


def test_compiled_mul_chain():
    x, c, n = mul_chain(ourdl, 200_000)
    check_mul_chain(x, c, n, 200_000)


@pytest.mark.parametrize("chain, check", [(add_chain, check_add_chain),
                                          (mul_chain, check_mul_chain)])
def test_reference_chain_of_100_000_nodes(chain, check):
    x, c, n = chain(reference, 100_000)
    check(x, c, n, 100_000)
    assert len(reference.topological_order(n)) == 100_000
    before = count_nodes(reference.Node)
    del x, c, n
    assert count_nodes(reference.Node) <= before - 100_000


def test_deleting_a_million_node_chain_does_not_crash():
    """Freeing a chain that was never run is a cascade of deallocations, one per node; it
    must not recurse. In a child process, so a crash is a failure here and not of pytest."""
    code = textwrap.dedent("""\
        import ourdl
        n = ourdl.Node(Value=1.0)
        for _ in range(499_999):
            n = n + 1.0  # two new nodes: the constant 1.0 and the sum
        assert n.Mama.value == 1.0 and n.Papa.Papa.Papa.op == 'add'  # the chain is there
        del n
        print('freed')
    """)
    env = dict(os.environ)
    source_root = os.path.dirname(os.path.dirname(ourdl.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "freed\n"


def test_the_tutorials_import_line_finds_ourdl_under_the_tutorials_name():
    """``from OurDL import *`` as the tutorial writes it, with the package installed (run in
    a new interpreter: the tests above point OurDL at the tutorial's own classes)."""
    check = ("\nimport OurDL, ourdl\n"
             "print(OurDL.MulNode is ourdl.MulNode, OurDL.__all__ == ourdl.__all__)\n")
    done = subprocess.run([sys.executable, "-c", FORWARD_PROGRAM + check], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["计算前 result.value =  20.0", "计算后 result.value =  0.0",
                                        "True True"]


@pytest.mark.parametrize("lib", [ourdl, ourdl.reference])
def test_an_op_written_the_tutorials_way_is_shown_the_way_ourdl_writes_one(lib):
    class SquareNode(lib.Node):  # the tutorial's way: a Node with forward/backward of its own
        def forward(self):
            self.value = self.Papa.value ** 2

    with pytest.raises(ValueError) as raised:
        SquareNode(Papa=lib.Node(Value=3.0))
    message = str(raised.value)
    assert message.startswith("SquareNode is a leaf and takes no parents")
    assert "class SquareNode(ourdl.CustomNode):" in message
    assert "def compute(self, a, b)" in message and "def derivatives(self, a, b)" in message
