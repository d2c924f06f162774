"""Keeping a graph: ourdl.save and ourdl.load (ourdl.persist), round trips bit for bit and
every kind of bad file a ValueError naming it."""
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import ourdl
from ourdl import nn, persist
from helpers import chain, tutorial_graph
from helpers import stopped_while_writing

OPS = sorted(persist.CLASSES)
FIXTURE = HealthCheck.function_scoped_fixture


def bits(values):
    return np.array(values, dtype=np.float64).tobytes()


def structure(root):
    tape = ourdl.compile(root)
    return (tape.ops, tape.parents.tolist(), [n.name for n in tape.nodes],
            bits([n.value for n in tape.nodes]), bits([n.grad for n in tape.nodes]),
            [n.Flag for n in tape.nodes], bits([n.lr for n in tape.nodes]))


def round_trip(root, tmp_path, **options):
    ourdl.save(tmp_path / "graph.ourdl", root, **options)
    return ourdl.load(tmp_path / "graph.ourdl")


# ----------------------------------------------------------------------------- round trips

def test_the_tutorial_graph_comes_back_with_its_names_and_state(tmp_path):
    root = tutorial_graph()
    root.forward()
    root.backward()
    loaded = round_trip(root, tmp_path)
    assert loaded is not root and structure(loaded) == structure(root)
    assert type(loaded) is ourdl.MSENode and ourdl.named(loaded)["w1"].value == 0.9978
    for graph in (root, loaded):  # the tutorial's next steps, on both
        graph.forward()
        graph.backward()
    assert structure(loaded) == structure(root)
    assert ourdl.dump(ourdl.compile(loaded)) == ourdl.dump(ourdl.compile(root))


def random_graph(draw_from, n_ops):
    """A random graph using every op at least once, on leaves some of them trainable."""
    op_names = [op for op in OPS if op != "leaf"]
    extra = draw_from(st.lists(st.sampled_from(op_names), max_size=n_ops))
    rng_ops = draw_from(st.permutations(op_names + extra))
    nodes = [ourdl.Node(Value=draw_from(st.floats(0.2, 1.5)),
                        Flag=draw_from(st.sampled_from([0, 1])),
                        lr=draw_from(st.floats(0.001, 0.1)), name=f"leaf{k}") for k in range(3)]
    for k, op in enumerate(rng_ops):
        cls = persist.CLASSES[op]
        papa = nodes[draw_from(st.integers(0, len(nodes) - 1))]
        if persist.ARITY[op] == 2:
            mama = nodes[draw_from(st.integers(0, len(nodes) - 1))]
            name = draw_from(st.sampled_from([None, f"n{k}", "ü ✓"]))
            nodes.append(cls(papa, mama, name=name))
        else:
            nodes.append(cls(papa))
    total = nodes[-1]
    for node in nodes[:-1]:  # one root over everything, so every node is in the graph
        total = ourdl.AddNode(total, ourdl.MulNode(node, ourdl.Node(Value=0.01)))
    return total


@settings(max_examples=40, deadline=None, suppress_health_check=[FIXTURE])
@given(st.data())
def test_random_graphs_with_every_op_round_trip_bit_for_bit(tmp_path, data):
    root = random_graph(data.draw, 8)
    root.forward()
    loaded = round_trip(root, tmp_path)
    assert set(ourdl.compile(root).ops) == set(OPS)
    assert structure(loaded) == structure(root)
    for graph in (root, loaded):
        graph.forward()
        graph.backward()
        graph.forward()
        graph.backward(update=False)
    assert structure(loaded) == structure(root)


def test_an_nn_model_fits_and_predicts_the_same_after_loading(tmp_path):
    x = [ourdl.Node(name=f"x{i}") for i in range(4)]
    out = nn.MLP([4, 8, 1], seed=1, lr=0.05)(x)
    loss = ourdl.MSENode(out[0], ourdl.Node(name="y"), name="loss")
    rng = np.random.default_rng(0)
    data = rng.random((500, 5))
    ourdl.compile(loss).fit(data, x + [loss.Mama], epochs=2)
    loaded = round_trip(loss, tmp_path)
    names = ourdl.named(loaded)
    x2 = [names[f"x{i}"] for i in range(4)]
    assert structure(loaded) == structure(loss)
    before = ourdl.compile(loss).fit(data, x + [loss.Mama], epochs=2, shuffle=True, seed=3)
    after = ourdl.compile(loaded).fit(data, x2 + [loaded.Mama], epochs=2, shuffle=True, seed=3)
    assert [s.loss for s in before] == [s.loss for s in after]
    assert structure(loaded) == structure(loss)
    assert ourdl.compile(loaded).kernels == ourdl.compile(loss).kernels  # still fused
    assert bits(ourdl.compile(loaded.Papa).predict(data[:, :4], x2)) == bits(
        ourdl.compile(loss.Papa).predict(data[:, :4], x))


def test_the_format_is_what_the_docstring_says(tmp_path):
    root = tutorial_graph()
    ourdl.save(tmp_path / "g.ourdl", root, info={"by": "test", "scale": [0.5, 2]})
    with zipfile.ZipFile(tmp_path / "g.ourdl") as archive:
        assert archive.namelist() == ["header.json"] + [f"{k}.npy" for k in persist.ARRAYS]
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
        header = json.loads(archive.read("header.json"))
    assert header == {"format": "ourdl graph", "version": 1, "nodes": 13,
                      "ops": ["leaf", "mul", "add", "mse"],
                      "names": {str(i): n.name for i, n in enumerate(ourdl.compile(root).nodes)},
                      "info": {"by": "test", "scale": [0.5, 2]}}
    arrays = np.load(tmp_path / "g.ourdl", allow_pickle=False)  # numpy reads it as an .npz
    assert arrays["papa"].tolist()[-1] == 10 and arrays["flag"].sum() == 3
    assert ourdl.load_info(tmp_path / "g.ourdl") == header["info"]
    ourdl.save(tmp_path / "again.ourdl", root, info={"by": "test", "scale": [0.5, 2]})
    assert (tmp_path / "again.ourdl").read_bytes() == (tmp_path / "g.ourdl").read_bytes()


def test_save_writes_to_an_open_binary_file_too(tmp_path):
    buffer = io.BytesIO()
    ourdl.save(buffer, tutorial_graph())
    (tmp_path / "g.ourdl").write_bytes(buffer.getvalue())
    assert structure(ourdl.load(tmp_path / "g.ourdl")) == structure(tutorial_graph())


def test_a_million_node_chain_saves_and_loads_in_seconds(tmp_path):
    root = chain(10**6)
    start = time.perf_counter()
    ourdl.save(tmp_path / "chain.ourdl", root)
    saved = time.perf_counter()
    loaded = ourdl.load(tmp_path / "chain.ourdl")
    done = time.perf_counter()
    assert saved - start < 10 and done - saved < 15, (saved - start, done - saved)
    assert len(ourdl.compile(loaded)) == 10**6 and loaded.value == root.value
    assert bits(loaded.forward()) == bits(root.forward())


# ----------------------------------------------------------------------------- what is saved

def test_names_other_than_str_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "g.ourdl"
    path.write_bytes(b"the old file")
    for name in (3, ("W", 0), b"bytes", np.str_("np")):
        root = ourdl.Node(name=name) + 1
        with pytest.raises(TypeError, match=r"node 0 of the tape \(Node\) is named .* ourdl "
                                             r"saves names that are str"):
            ourdl.save(path, root)
    assert path.read_bytes() == b"the old file" and os.listdir(tmp_path) == ["g.ourdl"]


def test_info_must_be_plain_json(tmp_path):
    for info in ({"nan": float("nan")}, {1.5: "key"}, {"array": np.zeros(2)}, object(), (1, 2)):
        with pytest.raises(ValueError, match="info must be plain JSON"):
            ourdl.save(tmp_path / "g.ourdl", tutorial_graph(), info=info)
    assert list(tmp_path.iterdir()) == []
    assert ourdl.save(tmp_path / "g.ourdl", tutorial_graph()) is None
    assert ourdl.load_info(tmp_path / "g.ourdl") is None


def test_a_subclass_comes_back_as_the_class_of_its_op(tmp_path):
    class Input(ourdl.Node):
        pass
    root = ourdl.sin(Input(Value=0.5, name="input"))
    loaded = round_trip(root, tmp_path)
    assert type(loaded.Papa) is ourdl.Node and loaded.Papa.name == "input"


# ----------------------------------------------------------------------------- bad files

def saved_bytes():
    buffer = io.BytesIO()
    ourdl.save(buffer, tutorial_graph(), info={"k": 1})
    return buffer.getvalue()


def rezip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def members():
    with zipfile.ZipFile(io.BytesIO(saved_bytes())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def with_header(**changes):
    parts = members()
    header = json.loads(parts["header.json"])
    header.update(changes)
    parts["header.json"] = json.dumps(header)
    return rezip(parts)


def with_array(key, array):
    parts = members()
    parts[f"{key}.npy"] = npy(array)
    return rezip(parts)


GOOD = saved_bytes()
PAPA = ourdl.compile(tutorial_graph()).parents[:, 0].tolist()
BAD_FILES = {
    "empty": (b"", "not a zip archive"),
    "text": (b"team_placement\n1\n", "not a zip archive"),
    "npz": (rezip({"value.npy": npy([1.0])}), r"no header\.json"),
    "zip of something else": (rezip({"header.json": b'{"format": "other"}'}),
                              "does not say format 'ourdl graph'"),
    "newer version": (with_header(version=2), "format version 2 by a later ourdl"),
    "no version": (with_header(version="1"), "no valid format version"),
    "unknown op": (with_header(ops=["leaf", "conv", "add", "mse"]), "op names this ourdl knows"),
    "bad names": (with_header(names={"99": "x"}), "names must map node indices below 13"),
    "nodes mismatch": (with_header(nodes=14), r"op\.npy holds uint8 of shape \(13,\), not uint8 "
                                              r"of shape \(14,\)"),
    "zero nodes": (with_header(nodes=0), "nodes must be a positive whole number"),
    "header not json": (rezip({**members(), "header.json": b"{nope"}), "truncated or damaged"),
    "missing array": (rezip({k: v for k, v in members().items() if k != "lr.npy"}),
                      r"no lr\.npy"),
    "pickled array": (with_array("value", np.array([object()] * 13, dtype=object)),
                      r"value\.npy holds object"),
    "wrong dtype": (with_array("papa", np.zeros(13, dtype=np.int32)), r"papa\.npy holds int32"),
    "2-d array": (with_array("lr", np.zeros((13, 1))), r"shape \(13, 1\)"),
    "parent after child": (with_array("papa", PAPA[:-1] + [12]), r"node 12 \(mse\) has papa 12"),
    "leaf with a parent": (with_array("mama", [0] + [-1] * 12), "node 0 .* has mama 0"),
    "op out of range": (with_array("op", np.full(13, 9, dtype=np.uint8)), "op 9, beyond"),
    "flag of 2": (with_array("flag", np.full(13, 2, dtype=np.uint8)), "other than 0 and 1"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_is_a_value_error_naming_it(tmp_path, kind):
    content, message = BAD_FILES[kind]
    path = tmp_path / f"{kind}.ourdl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        ourdl.load(path)
    assert str(error.value).startswith(f"{path}: ")


def test_an_orphan_node_is_refused(tmp_path):
    parts = members()
    header = json.loads(parts["header.json"])
    header["nodes"] = 14
    parts["header.json"] = json.dumps(header)
    for key, extra in (("op", 0), ("papa", -1), ("mama", -1), ("value", 0.0), ("grad", 1.0),
                       ("flag", 0), ("lr", 0.01), ("param", 0.0)):
        array = np.load(io.BytesIO(parts[f"{key}.npy"]))
        parts[f"{key}.npy"] = npy(np.append(array, np.array(extra, dtype=array.dtype)))
    path = tmp_path / "orphan.ourdl"
    path.write_bytes(rezip(parts))
    with pytest.raises(ValueError, match="node 12 is no ancestor of the root"):
        ourdl.load(path)


def test_a_compressed_member_is_refused_so_a_small_file_never_claims_much_memory(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members().items():
            archive.writestr(name, data)
    path = tmp_path / "deflated.ourdl"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="compressed or larger than the file"):
        ourdl.load(path)


@pytest.mark.parametrize("cut", [4, 30, 100, len(GOOD) // 2, len(GOOD) - 30, len(GOOD) - 1])
def test_a_truncated_file_is_a_value_error(tmp_path, cut):
    path = tmp_path / "cut.ourdl"
    path.write_bytes(GOOD[:cut])
    with pytest.raises(ValueError, match=f"^{path}: "):
        ourdl.load(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[FIXTURE])
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1,
                max_size=4))
@example(damage=[(3002, 10)])  # an offset before the file's start: zipfile's OSError
def test_damaged_bytes_load_as_a_graph_or_a_value_error_never_anything_else(tmp_path, damage):
    content = bytearray(GOOD)
    for at, byte in damage:
        content[at] = byte
    path = tmp_path / "damaged.ourdl"
    path.write_bytes(bytes(content))
    try:
        root = ourdl.load(path)
    except ValueError as error:
        assert str(error).startswith(f"{path}: ")
    else:  # bytes zip does not check (a date, say) or the same byte written back
        assert structure(root) == structure(ourdl.load(_good(tmp_path)))


def _good(tmp_path):
    path = tmp_path / "good.ourdl"
    path.write_bytes(GOOD)
    return path


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope.ourdl'}: no such file"):
        ourdl.load(tmp_path / "nope.ourdl")
    with pytest.raises(FileNotFoundError, match="nope.ourdl: no such file"):
        ourdl.load_info(tmp_path / "nope.ourdl")


def test_save_replaces_a_file_whole_and_writes_through_a_device(tmp_path):
    path = tmp_path / "g.ourdl"
    ourdl.save(path, tutorial_graph())
    inode = path.stat().st_ino
    ourdl.save(path, chain(5))
    assert path.stat().st_ino != inode and len(ourdl.compile(ourdl.load(path))) == 5
    ourdl.save(os.devnull, tutorial_graph())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ourdl.save(tmp_path / "no" / "such" / "folder.ourdl", tutorial_graph())
    assert os.listdir(tmp_path) == ["g.ourdl"]


def test_a_device_is_written_without_seeking(tmp_path):
    """/dev/null answers tell() with 0; zipfile trusted it and failed on struct.pack."""
    ourdl.save(os.devnull, chain(300))
    with open(os.devnull, "wb") as device:
        ourdl.save(device, chain(300))
    assert os.listdir(tmp_path) == []


THROUGH_A_FIFO = """
import sys, threading
import ourdl
fifo, copy = sys.argv[1:]
received = []
reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
reader.start()
root = ourdl.Node(Value=0.5, Flag=1, name="start")
for _ in range(299):
    root = ourdl.SinNode(root)
ourdl.save(fifo, root, info={"k": 1})
reader.join()
open(copy, "wb").write(received[0])
print(len(ourdl.compile(ourdl.load(copy))), ourdl.load_info(copy))
"""


def test_a_graph_written_through_a_fifo_loads(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    done = subprocess.run([sys.executable, "-c", THROUGH_A_FIFO, "fifo", "copy.ourdl"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "300 {'k': 1}\n"
    assert structure(ourdl.load(tmp_path / "copy.ourdl")) == structure(chain(300))


STOPPED_SAVE = """
import os, sys, time
import ourdl
def slow_fsync(descriptor):  # the archive is written, the temporary file not yet renamed
    print("writing", flush=True)
    time.sleep(60)
os.fsync = slow_fsync
root = ourdl.Node(Value=0.5, Flag=1)
for _ in range(100_000):
    root = ourdl.SinNode(root)
ourdl.save("graph.ourdl", root)
print("not stopped", flush=True)
"""


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_during_save_leaves_no_temporary_file(tmp_path, stop):
    ourdl.save(tmp_path / "graph.ourdl", tutorial_graph())
    before = (tmp_path / "graph.ourdl").read_bytes()
    temporaries, returncode, out, err = stopped_while_writing(STOPPED_SAVE, tmp_path, stop)
    assert temporaries
    assert returncode == -getattr(signal, stop), err
    assert "not stopped" not in out
    assert os.listdir(tmp_path) == ["graph.ourdl"]
    assert (tmp_path / "graph.ourdl").read_bytes() == before


def test_a_folder_a_fifo_or_a_device_is_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    script = textwrap.dedent("""
        import ourdl
        for path in ("fifo", "folder", "/dev/zero"):
            for read in (ourdl.load, ourdl.load_info):
                try:
                    read(path)
                except ValueError as error:
                    print(error)
    """)
    (tmp_path / "folder").mkdir()
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)  # a FIFO without a writer used to hang
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == 2 * [
        "fifo: it is a FIFO; ourdl reads a graph only from a regular file"] + 2 * [
        "folder: it is a folder; ourdl reads a graph only from a regular file"] + 2 * [
        "/dev/zero: it is a character device; ourdl reads a graph only from a regular file"]


def test_huber_keeps_its_delta_and_ops_written_in_python_are_refused(tmp_path):
    a, b = ourdl.Node(Value=2.0, Flag=1), ourdl.Node(Value=0.5)
    root = ourdl.HuberNode(a, b, delta=0.25)
    path = tmp_path / "huber.ourdl"
    ourdl.save(path, root)
    loaded = ourdl.load(path)
    assert loaded.delta == 0.25 and loaded.forward() == root.forward()

    class Twice(ourdl.CustomNode):
        def compute(self, a, b):
            return 2 * a

        def derivatives(self, a, b):
            return 2.0
    with pytest.raises(TypeError, match="an op written in Python: its code cannot be saved"):
        ourdl.save(tmp_path / "custom.ourdl", Twice(a))
    assert not (tmp_path / "custom.ourdl").exists()
