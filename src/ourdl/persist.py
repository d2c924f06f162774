"""Keeping a graph: ``save(path, root)`` writes it to one file, ``load(path)`` gives it back.

The file is a zip archive, readable with any unzip tool or ``numpy.load``, and never
unpickled: loading it runs no code. Format version 1 holds, every member stored
uncompressed:

- ``header.json``: ``{"format": "ourdl graph", "version": 1, "nodes": n, "ops": [op names],
  "names": {"tape index": name, ...}, "info": {...}}``. ``ops`` is the table of op names
  (``"leaf"``, ``"add"``, ..., as in ``Node.op``) that ``op.npy`` indexes; ``names`` lists
  only the named nodes; ``info`` is whatever JSON the caller passed to ``save``.
- ``op.npy`` (uint8), ``papa.npy`` and ``mama.npy`` (int64: the index of each node's Papa
  and Mama, -1 for none), ``value.npy``, ``grad.npy``, ``lr.npy`` and ``param.npy`` (float64:
  the op's constant, HuberNode's delta, 0 for other ops) and ``flag.npy`` (uint8): one entry
  per node, in tape order (``ourdl.compile(root).nodes``), parents before children and the
  root last.

So a node's class is saved as its op (a subclass of ``Node`` comes back as the class of its
op; an op written in Python, a ``CustomNode``, is code rather than data and is refused), and
its name only if it is a ``str``: ``save`` refuses other names rather than change
them. ``Papa_grad`` and ``Mama_grad`` are not saved: the next ``backward()`` recomputes them.
What is saved is enough for a loaded graph to give the same forward, backward, ``fit`` and
``predict`` results as the graph saved, to the last bit.

A reader of version 1 refuses files of a later version; a later ourdl reads version 1.
"""
import errno
import json
import os
import stat
import zipfile

import numpy as np

from ourdl import _files, _nodes
from ourdl._core import CustomNode, HuberNode, Node, compile

__all__ = ["load", "load_info", "save"]

FORMAT = "ourdl graph"
VERSION = 1
HEADER = "header.json"
ARRAYS = {"op": np.uint8, "papa": np.int64, "mama": np.int64, "value": np.float64,
          "grad": np.float64, "flag": np.uint8, "lr": np.float64, "param": np.float64}

# The class of each built-in op: the one class ourdl._nodes defines for it.
CUSTOM = {"custom unary", "custom binary"}
CLASSES = {name: cls for name, cls in zip(_nodes.OP_NAMES, _nodes.OP_CLASSES)
           if name not in CUSTOM}
ARITY = dict(zip(_nodes.OP_NAMES, _nodes.ARITY))  # parents each op takes

def save(path, root, info=None):
    """Write root's graph to ``path``, a file name or a binary file open for writing (see
    the module docstring for the format). A FIFO or a device such as /dev/null is written
    through, without seeking.

    ``info``: anything JSON can hold (dicts with str keys, lists, str, finite numbers, bools,
    None) to keep beside the graph, such as how inputs were normalized; ``load_info`` gives
    back an equal object (so a tuple, which would come back a list, is refused). A named
    file is written whole or not at all (through ``ourdl._files.open_output``). Every node's
    name must be a ``str`` or None: a TypeError names the first that is not.
    """
    if not isinstance(root, Node):
        raise TypeError(f"save needs the root Node of a graph, not {type(root).__name__}")
    tape = compile(root, fuse=False)
    nodes = tape.nodes
    names = {}
    for i, node in enumerate(nodes):
        if isinstance(node, CustomNode):
            raise TypeError(f"save: node {i} of the tape is a {type(node).__name__}, an op "
                            f"written in Python: its code cannot be saved as data")
        name = node.name
        if name is None:
            continue
        if type(name) is not str:
            raise TypeError(f"save: node {i} of the tape ({type(node).__name__}) is named "
                            f"{_short(repr(name))}, a {type(name).__name__}; ourdl saves names "
                            f"that are str (or None): rename it, e.g. node.name = str(node.name)")
        names[str(i)] = name
    ops = list(dict.fromkeys(tape.ops))  # the ops used, in order of first use
    code = {op: k for k, op in enumerate(ops)}
    parents = tape.parents
    arrays = {
        "op": np.array([code[op] for op in tape.ops], dtype=np.uint8),
        "papa": parents[:, 0].astype(np.int64), "mama": parents[:, 1].astype(np.int64),
        "value": np.array([node.value for node in nodes], dtype=np.float64),
        "grad": np.array([node.grad for node in nodes], dtype=np.float64),
        "flag": np.array([node.Flag for node in nodes], dtype=np.uint8),
        "lr": np.array([node.lr for node in nodes], dtype=np.float64),
        "param": np.array([node.delta if isinstance(node, HuberNode) else 0.0 for node in nodes],
                          dtype=np.float64),
    }
    header = {"format": FORMAT, "version": VERSION, "nodes": len(nodes), "ops": ops,
              "names": names, "info": info}
    try:
        text = json.dumps(header, ensure_ascii=False, allow_nan=False, indent=1)
        problem = None if json.loads(text)["info"] == info else "it would not load the same"
    except (TypeError, ValueError, RecursionError) as error:
        problem = str(error)
    if problem is not None:
        raise ValueError(f"save: info must be plain JSON (dicts with str keys, lists, str, "
                         f"finite numbers, bools, None): {problem}")
    if hasattr(path, "write"):
        _write(_files.unseekable(path), text, arrays)
        return
    _files.check_output(path)
    with _files.open_output(path) as file:
        _write(file, text, arrays)


def _write(file, text, arrays):
    # Every member dated 1980-01-01: the same graph always gives the same bytes. On a stream
    # that cannot seek, zipfile follows each member with its sizes (a data descriptor).
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(zipfile.ZipInfo(HEADER), text.encode("utf-8"))
        for key, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{key}.npy"), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)

def load(path):
    """The root of the graph saved in ``path``, built anew from ourdl's node classes.

    Reach its nodes by name with ``ourdl.named(root)``; ``load_info(path)`` gives what was
    saved beside it. A file that is not an ourdl graph (or not a regular file: a folder, a
    FIFO, a device), or is truncated or damaged, or was written by a later format version, is a
    ValueError naming it; a missing one a FileNotFoundError.
    """
    header, arrays = _read(path, arrays=True)
    classes = [CLASSES[op] for op in header["ops"]]
    op = arrays["op"].tolist()
    papa, mama = arrays["papa"].tolist(), arrays["mama"].tolist()
    value, flag, lr = arrays["value"].tolist(), arrays["flag"].tolist(), arrays["lr"].tolist()
    param = arrays["param"].tolist()
    names = {int(i): name for i, name in header["names"].items()}
    nodes = []
    for i in range(header["nodes"]):
        p, m = papa[i], mama[i]
        parents = (nodes[p] if p >= 0 else None, nodes[m] if m >= 0 else None)
        if classes[op[i]] is HuberNode:
            if not 0.0 < param[i] < float("inf"):
                raise ValueError(f"{path}: node {i} (huber) has delta {param[i]}, not a "
                                 f"positive number")
            nodes.append(HuberNode(*parents, value[i], flag[i], lr[i], names.get(i),
                                   delta=param[i]))
        else:
            nodes.append(classes[op[i]](*parents, value[i], flag[i], lr[i], names.get(i)))
    grad = arrays["grad"]
    for i in np.flatnonzero(grad != 1.0).tolist():  # 1.0 is every new node's grad
        nodes[i].grad = grad[i]
    return nodes[-1]


def load_info(path):
    """The ``info`` saved beside the graph in ``path`` (None if none was given)."""
    return _read(path, arrays=False)[0]["info"]


class _Corrupt(Exception):
    """What is wrong with a file, said in a few words."""


def _read(path, arrays):
    """(header, {key: array} or None) from path, checked: ValueError naming path otherwise."""
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            # A FIFO would wait for a writer, a device may never end; a zip archive needs seeking.
            raise _Corrupt(f"it is {_kind(status.st_mode)}; ourdl reads a graph only from a "
                           f"regular file")
        size = status.st_size
        with open(path, "rb") as file:
            if file.read(4) != b"PK\x03\x04":
                raise _Corrupt("it is not an ourdl graph (not a zip archive)")
            file.seek(0)
            with zipfile.ZipFile(file) as archive:
                header = _header(archive, size)
                return header, _arrays(archive, header, size) if arrays else None
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as error:
        if error.errno != errno.EINVAL:  # a real failure to read, not a damaged archive
            raise
        # zipfile seeks where damaged offsets point, before the file's start
        raise ValueError(f"{path}: not a readable ourdl graph (truncated or damaged?): "
                         f"an offset points outside the file") from None
    except _Corrupt as problem:
        raise ValueError(f"{path}: {problem}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, KeyError,
            UnicodeDecodeError, NotImplementedError, RuntimeError, OverflowError) as error:
        # What zipfile, zlib, json and numpy raise for bytes that are not what they claim.
        raise ValueError(f"{path}: not a readable ourdl graph (truncated or damaged?): "
                         f"{_short(str(error)) or type(error).__name__}") from None


def _member(archive, name, size):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise _Corrupt(f"it is not an ourdl graph (no {name} in the archive)") from None
    if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
        raise _Corrupt(f"{name} is compressed or larger than the file; ourdl stores it as is")
    return info


def _header(archive, size):
    header = json.loads(archive.read(_member(archive, HEADER, size)).decode("utf-8"))
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Corrupt(f"it is not an ourdl graph ({HEADER} does not say format {FORMAT!r})")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise _Corrupt(f"{HEADER} has no valid format version ({_short(repr(version))})")
    if version > VERSION:
        raise _Corrupt(f"it was written in format version {version} by a later ourdl; this "
                       f"one reads version {VERSION} and older: upgrade ourdl to load it")
    n, ops, names = header.get("nodes"), header.get("ops"), header.get("names")
    if type(n) is not int or n < 1:
        raise _Corrupt(f"{HEADER}: nodes must be a positive whole number, not {_short(repr(n))}")
    if not isinstance(ops, list) or not ops or len(ops) > len(CLASSES) or any(
            not isinstance(op, str) or op not in CLASSES for op in ops):
        known = ", ".join(CLASSES)
        raise _Corrupt(f"{HEADER}: ops must list op names this ourdl knows ({known}), not "
                       f"{_short(repr(ops))}")
    if not isinstance(names, dict) or not all(
            k.isdecimal() and k == str(int(k)) and int(k) < n and isinstance(v, str)
            for k, v in names.items()):
        raise _Corrupt(f"{HEADER}: names must map node indices below {n} to str names")
    return header


def _arrays(archive, header, size):
    n = header["nodes"]
    arrays = {}
    for key, dtype in ARRAYS.items():
        info = _member(archive, f"{key}.npy", size)
        with archive.open(info) as member:
            # The array's own header first: its shape and type must be the ones expected
            # before anything is allocated for it.
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0)):
                raise _Corrupt(f"{key}.npy is in .npy format version {version}, not 1.0 or 2.0")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, found = read_header(member)
            # Either byte order: a file written on another machine reads the same.
            if found.newbyteorder("=") != np.dtype(dtype) or shape != (n,):
                raise _Corrupt(f"{key}.npy holds {found} of shape {shape}, not "
                               f"{np.dtype(dtype)} of shape ({n},)")
            data = member.read(n * found.itemsize)
        if len(data) != n * found.itemsize:
            raise _Corrupt(f"{key}.npy is cut short")
        array = np.frombuffer(data, dtype=found).astype(dtype, copy=False)
        arrays[key] = array
    _check_structure(header, arrays)
    return arrays


def _check_structure(header, arrays):
    """Everything load trusts: op indices, parents before children, arities, flags, and
    every node an ancestor of the root (so the graph is exactly root's)."""
    n, ops = header["nodes"], header["ops"]
    op, papa, mama = arrays["op"], arrays["papa"], arrays["mama"]
    if op.max() >= len(ops):
        raise _Corrupt(f"op.npy has op {int(op.max())}, beyond the {len(ops)} in {HEADER}")
    arity = np.array([ARITY[name] for name in ops])[op]
    index = np.arange(n)
    for key, parent, needed in (("papa", papa, arity >= 1), ("mama", mama, arity == 2)):
        bad = np.flatnonzero(np.where(needed, (parent < 0) | (parent >= index), parent != -1))
        if len(bad):
            i = int(bad[0])
            raise _Corrupt(f"node {i} ({ops[op[i]]}) has {key} {int(parent[i])}: a parent must "
                           f"come before its child, and only ops with a {key} have one")
    if not np.isin(arrays["flag"], (0, 1)).all():
        raise _Corrupt("flag.npy holds values other than 0 and 1")
    used = np.zeros(n, dtype=bool)
    used[papa[papa >= 0]] = True
    used[mama[mama >= 0]] = True
    used[-1] = True
    if not used.all():
        orphan = int(np.flatnonzero(~used)[0])
        raise _Corrupt(f"node {orphan} is no ancestor of the root (the last node)")


def _kind(mode):
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _short(text, limit=60):
    return text if len(text) <= limit else text[:limit] + "..."
