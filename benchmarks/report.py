"""Write the README's speed table, in English and Chinese, from one run of the benchmarks.

Regenerate both READMEs' tables (from the project's root; about 5 to 10 minutes on 2 cores):

    pytest benchmarks -p no:cacheprovider --benchmark-json=bench.json && python benchmarks/report.py bench.json

Each benchmark's ``record`` (benchmarks/conftest.py) writes into the JSON the name it is known
by, the scale of its median (1 / rows for a time per row) and the rows it timed. This script
puts the medians in a Markdown table between the lines ``<!-- bench:start -->`` and
``<!-- bench:end -->`` of README.md and README.zh-CN.md, and says which CPU the run came from
(pytest-benchmark's machine_info) and when. Every ratio is computed here from that run's
medians; a row whose peer was not installed is left out. What the table was made from (the
medians, what each benchmark recorded, the CPU and the date) is kept in
benchmarks/last_run.json, small enough to commit: the tests check that the READMEs' tables
are what this script makes from it (``python benchmarks/report.py benchmarks/last_run.json``
writes the tables again from it, e.g. after ratios_seen.json changed).

Ratios move with the CPU (the vector units, the BLAS, the thread count), so the rows named in
benchmarks/ratios_seen.json also get a "range seen" column: the lowest and highest of that
file's ratios, from runs on other machines, and this run's. ``--remember`` adds this run's
ratios to the file (under its CPU's name, replacing an older run on the same CPU).
"""
import argparse
import datetime
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
READMES = {"en": HERE.parent / "README.md", "zh": HERE.parent / "README.zh-CN.md"}
SEEN = HERE / "ratios_seen.json"
LAST_RUN = HERE / "last_run.json"
VECTOR_FLAGS = ("avx2", "avx512f")
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def head(en, zh, rows_of=None):
    """A bold line that starts a group of rows; {rows} is the rows that rows_of timed."""
    return {"head": {"en": en, "zh": zh}, "rows_of": rows_of}


def row(show, en, zh, ratio=None, key=None):
    """A table row: the median(s) of show (a name, or a tuple of names shown "a / b"),
    and ratio = (top, bottom, en, zh): top's median over bottom's, written into en/zh at {r}.
    A name that is itself a tuple means the fastest of those benchmarks. key names the ratio
    in ratios_seen.json."""
    return {"show": show if isinstance(show, list) else [show], "en": en, "zh": zh,
            "ratio": ratio, "key": key}


TORCH16 = ("mlp16 torch, 1 thread", "mlp16 torch, default threads")  # the faster one counts
TORCH64 = ("mlp64 torch, 1 thread", "mlp64 torch, default threads")
NUMPY_MLP = ("mlp16 predict numpy", "mlp16 predict numpy 1t")

ROWS = [
    head("The tutorial's model (13 -> 1), one epoch over {rows} rows",
         "教程的模型（13 -> 1），在 {rows} 行上训练一轮", rows_of="ourdl fit"),
    row("ourdl fit", "`Tape.fit`", "`Tape.fit`"),
    row("bare loop", "the same operations in a bare numba loop, nothing else",
        "同样的运算写成裸 numba 循环，别无其他",
        ("ourdl fit", "bare loop", "fit takes {r}", "fit 用时为它的 {r}")),
    row("ourdl fit, no loss", "`Tape.fit(track_loss=False)`: no loss history",
        "`Tape.fit(track_loss=False)`：不记录损失",
        ("ourdl fit, no loss", "bare loop", "{r} the bare loop", "裸循环的 {r}"),
        key="fit without the loss / bare loop"),
    row("sklearn", "scikit-learn `SGDRegressor`, the same math",
        "scikit-learn `SGDRegressor`，同样的数学",
        ("ourdl fit", "sklearn", "fit takes {r}", "fit 用时为它的 {r}"), key="fit / sklearn"),
    row("ourdl fit shuffled", "`Tape.fit(shuffle=True)`", "`Tape.fit(shuffle=True)`",
        ("ourdl fit shuffled", "ourdl fit", "{r} the plain epoch", "普通一轮的 {r}")),
    row("numpy permutation", "of which numpy's new order of the rows",
        "其中 numpy 生成行的新顺序",
        ("numpy permutation", "ourdl fit", "{r} the plain epoch", "普通一轮的 {r}")),
    row("ourdl fit shuffled, 5 epochs",
        "`Tape.fit(shuffle=True, epochs=5)`, per epoch (the next order drawn meanwhile)",
        "`Tape.fit(shuffle=True, epochs=5)`，每轮（下一轮的顺序同时生成）",
        ("ourdl fit shuffled, 5 epochs", "ourdl fit", "{r} the plain epoch", "普通一轮的 {r}")),
    row("bare loop shuffled", "the bare numba loop over the rows in a given permutation",
        "裸 numba 循环，按给定的排列访问各行",
        ("bare loop shuffled", "bare loop", "{r} the bare loop in order",
         "按顺序的裸循环的 {r}")),
    row("ourdl fit batch 64", "`Tape.fit(batch_size=64)`", "`Tape.fit(batch_size=64)`",
        ("ourdl fit batch 64", "ourdl fit", "{r} the plain epoch", "普通一轮的 {r}")),
    row("compiled loop", "the tutorial's per-sample Python loop on ourdl's nodes",
        "教程的逐样本 Python 循环，跑在 ourdl 的节点上",
        ("compiled loop", "ourdl fit", "{r} fit", "fit 的 {r}")),
    row("reference loop", "the same loop on `ourdl.reference` (plain Python)",
        "同一个循环，跑在 `ourdl.reference`（纯 Python）上",
        ("reference loop", "ourdl fit", "{r} fit", "fit 的 {r}")),
    head("Linear predict, {rows} rows", "线性模型预测，{rows} 行", rows_of="ourdl predict"),
    row("ourdl predict", "`Tape.predict`", "`Tape.predict`"),
    row("numpy predict", "numpy `X @ w`, default BLAS threads", "numpy `X @ w`，BLAS 默认线程数",
        ("ourdl predict", "numpy predict", "ourdl takes {r}", "ourdl 用时为它的 {r}")),
    row("numpy 1 thread", "numpy `X @ w`, 1 BLAS thread", "numpy `X @ w`，BLAS 单线程",
        ("ourdl predict", "numpy 1 thread", "ourdl takes {r}", "ourdl 用时为它的 {r}")),
    head("MLP 13-16-16-1 tanh, per-sample SGD, time per sample",
         "MLP 13-16-16-1 tanh，逐样本 SGD，每个样本的时间"),
    row("mlp16 ourdl", "`Tape.fit` (fused layers)", "`Tape.fit`（融合层）"),
    row("mlp16 jax", "JAX `jit` + `lax.scan`, float64", "JAX `jit` + `lax.scan`，float64",
        ("mlp16 ourdl", "mlp16 jax", "ourdl takes {r}", "ourdl 用时为它的 {r}"),
        key="mlp16: ourdl / JAX"),
    row("mlp16 bare loop", "the same operations in a bare numba loop",
        "同样的运算写成裸 numba 循环",
        ("mlp16 ourdl", "mlp16 bare loop", "ourdl takes {r}", "ourdl 用时为它的 {r}")),
    row("mlp16 ourdl unfused", "ourdl with `fuse=False` (one node at a time)",
        "ourdl 加 `fuse=False`（逐节点）",
        ("mlp16 ourdl unfused", "mlp16 ourdl", "{r} slower", "慢 {r}")),
    row(TORCH16, "PyTorch eager, one sample a step (the faster of 1 thread and default threads)",
        "PyTorch eager，每步一个样本（单线程和默认线程数中较快的）",
        (TORCH16, "mlp16 ourdl", "{r} slower", "慢 {r}"), key="mlp16: PyTorch eager / ourdl"),
    row("mlp16 torch, nn + optim", "PyTorch as a tutorial writes it (`nn.Sequential`, `optim.SGD`)",
        "PyTorch 的常见写法（`nn.Sequential`、`optim.SGD`）",
        ("mlp16 torch, nn + optim", "mlp16 ourdl", "{r} slower", "慢 {r}")),
    head("MLP 13-64-64-1 tanh, per-sample SGD, time per sample",
         "MLP 13-64-64-1 tanh，逐样本 SGD，每个样本的时间"),
    row("mlp64 ourdl", "`Tape.fit` (fused layers)", "`Tape.fit`（融合层）"),
    row("mlp64 jax", "JAX `jit` + `lax.scan`, float64", "JAX `jit` + `lax.scan`，float64",
        ("mlp64 ourdl", "mlp64 jax", "ourdl takes {r}", "ourdl 用时为它的 {r}")),
    row("mlp64 bare loop", "the same operations in a bare numba loop",
        "同样的运算写成裸 numba 循环",
        ("mlp64 ourdl", "mlp64 bare loop", "ourdl takes {r}", "ourdl 用时为它的 {r}")),
    row("mlp64 ourdl unfused", "ourdl with `fuse=False`", "ourdl 加 `fuse=False`",
        ("mlp64 ourdl unfused", "mlp64 ourdl", "{r} slower", "慢 {r}")),
    row(TORCH64, "PyTorch eager (the faster thread setting)", "PyTorch eager（较快的线程设置）",
        (TORCH64, "mlp64 ourdl", "{r} slower", "慢 {r}")),
    head("MLP 13-16-16-1 predict, {rows} rows", "MLP 13-16-16-1 预测，{rows} 行",
         rows_of="mlp16 predict ourdl"),
    row("mlp16 predict ourdl", "`Tape.predict`", "`Tape.predict`"),
    row(NUMPY_MLP, "numpy `tanh(tanh(X @ W1) @ W2) @ W3` (the faster BLAS setting)",
        "numpy `tanh(tanh(X @ W1) @ W2) @ W3`（较快的 BLAS 设置）",
        ("mlp16 predict ourdl", NUMPY_MLP, "ourdl takes {r}", "ourdl 用时为它的 {r}"),
        key="mlp16 predict: ourdl / numpy"),
    row("mlp16 libm tanh floor", "its libm `tanh` calls alone (one per hidden unit and row)",
        "其中的 libm `tanh` 调用本身（每个隐藏单元每行一次）",
        ("mlp16 predict ourdl", "mlp16 libm tanh floor", "ourdl takes {r}",
         "ourdl 用时为它的 {r}")),
    head("General tape, random scalar graphs, forward + backward: ourdl / a bare C loop",
         "通用 tape，随机标量图，前向 + 反向：ourdl / 裸 C 循环"),
    *[row([f"tape {size} ourdl", f"tape {size} bare C"], f"about {n} nodes", f"约 {n} 个节点",
          (f"tape {size} ourdl", f"tape {size} bare C", "ourdl takes {r}",
           "ourdl 用时为它的 {r}"))
      for size, n in [("1k", "1,000"), ("10k", "10,000"), ("100k", "100,000"),
                      ("1M", "1,000,000")]],
    *[row(f"tape {size} torch eager", f"PyTorch eager, about {n} nodes (1 thread)",
          f"PyTorch eager，约 {n} 个节点（单线程）",
          (f"tape {size} torch eager", f"tape {size} ourdl", "{r} slower", "慢 {r}"))
      for size, n in [("1k", "1,000"), ("10k", "10,000")]],
    head("Graphs built anew for every sample", "每个样本重新搭一张图"),
    row("bare extension object", "building a bare Cython object with a node's fields",
        "构造一个只有节点字段的 Cython 对象"),
    row("Node()", "`Node()`", "`Node()`",
        ("Node()", "bare extension object", "{r} the bare object", "裸对象的 {r}")),
    row("AddNode(a, b)", "`AddNode(a, b)`", "`AddNode(a, b)`",
        ("AddNode(a, b)", "bare extension object", "{r} the bare object", "裸对象的 {r}")),
    row("tiny ourdl", "the 11-node scalar graph: ourdl", "11 个节点的标量图：ourdl"),
    row("tiny micrograd", "micrograd", "micrograd",
        ("tiny micrograd", "tiny ourdl", "{r} slower", "慢 {r}")),
    row("tiny torch eager", "PyTorch eager (1 thread)", "PyTorch eager（单线程）",
        ("tiny torch eager", "tiny ourdl", "{r} slower", "慢 {r}")),
    row("tiny bare", "micrograd's `Value` as a Cython class, nothing else: the floor",
        "把 micrograd 的 `Value` 写成 Cython 类，别无其他：下限",
        ("tiny ourdl", "tiny bare", "ourdl takes {r}", "ourdl 用时为它的 {r}")),
    row("mlp per sample ourdl", "a 2-16-16-1 MLP, per sample: ourdl",
        "2-16-16-1 MLP，每个样本：ourdl"),
    row("mlp per sample micrograd", "micrograd", "micrograd",
        ("mlp per sample micrograd", "mlp per sample ourdl", "{r} slower", "慢 {r}")),
    head("Digits (8x8, 1,347 training images): MLP 64-32-10 tanh, softmax cross-entropy, "
         "per-sample SGD, time per sample",
         "手写数字（8x8，1,347 张训练图片）：MLP 64-32-10 tanh，softmax 交叉熵，逐样本 SGD，每个样本的用时"),
    row("digits mlp 64-32-10 ourdl", "`Tape.fit` (dense layers and head fused)",
        "`Tape.fit`（全连接层和输出头都融合）"),
    row("digits mlp 64-32-10 jax", "JAX `jit` + `lax.scan`, float64", "JAX `jit` + `lax.scan`，float64",
        ("digits mlp 64-32-10 ourdl", "digits mlp 64-32-10 jax", "ourdl takes {r}",
         "ourdl 用时为它的 {r}"), key="digits mlp / jax"),
    row("digits mlp 64-32-10 bare loop", "the same operations in a bare numba loop",
        "同样的运算写成裸 numba 循环",
        ("digits mlp 64-32-10 ourdl", "digits mlp 64-32-10 bare loop", "ourdl takes {r}",
         "ourdl 用时为它的 {r}")),
    row("digits mlp 64-32-10 ourdl unfused", "ourdl with `fuse=False`", "ourdl 加 `fuse=False`",
        ("digits mlp 64-32-10 ourdl unfused", "digits mlp 64-32-10 ourdl", "{r} slower", "慢 {r}")),
    row("digits mlp 64-32-10 torch eager", "PyTorch eager (1 thread)", "PyTorch eager（单线程）",
        ("digits mlp 64-32-10 torch eager", "digits mlp 64-32-10 ourdl", "{r} slower", "慢 {r}"),
        key="digits mlp torch / ourdl"),
    head("Digits CNN (conv 1->8 3x3 + relu, max-pool 2, dense 128->10), time per sample",
         "手写数字 CNN（卷积 1->8 3x3 + relu，最大池化 2，全连接层 128->10），每个样本的用时"),
    row("digits cnn ourdl", "`Tape.fit` (convolution, max-pooling, dense layer and head fused)",
        "`Tape.fit`（卷积层、最大池化层、全连接层和输出头都融合）"),
    row("digits cnn jax", "JAX `jit` + `lax.scan`, float64", "JAX `jit` + `lax.scan`，float64",
        ("digits cnn ourdl", "digits cnn jax", "ourdl takes {r}", "ourdl 用时为它的 {r}"),
        key="digits cnn / jax"),
    row("digits cnn ourdl unfused", "ourdl with `fuse=False`", "ourdl 加 `fuse=False`",
        ("digits cnn ourdl unfused", "digits cnn ourdl", "{r} slower", "慢 {r}")),
    row("digits cnn torch eager", "PyTorch eager (1 thread)", "PyTorch eager（单线程）",
        ("digits cnn torch eager", "digits cnn ourdl", "{r} slower", "慢 {r}"),
        key="digits cnn torch / ourdl"),
    head("A sweep of 12 PUBG models (`examples/sweep.py`, 200,000 rows)",
         "12 个 PUBG 模型的参数搜索（`examples/sweep.py`，200,000 行）"),
    row("sweep, 1 process(es)", "one local process", "一个本地进程"),
    row("sweep, 2 process(es)", "two local processes (joblib)", "两个本地进程（joblib）",
        ("sweep, 1 process(es)", "sweep, 2 process(es)", "{r} faster", "快 {r}")),
    head("`ourdl pubg` and its data", "`ourdl pubg` 及其数据"),
    row("pubg synthesize", "synthesizing the default 1,500,000 + 500,000 rows",
        "合成默认的 150 万 + 50 万行"),
    row("pubg cached read", "reading them back from the cache", "从缓存读回它们"),
    row("pubg first run", "the whole `ourdl pubg`, nothing cached yet",
        "完整的 `ourdl pubg`，还没有缓存"),
    row("pubg cached run", "the whole `ourdl pubg`, data cached", "完整的 `ourdl pubg`，数据已缓存"),
    row("ourdl pubg, cached data", "`python -m ourdl pubg` in a new interpreter, data cached",
        "在新的解释器里运行 `python -m ourdl pubg`，数据已缓存",
        ("ourdl pubg, cached data", "python -c 'import pandas'", "{r} importing pandas",
         "导入 pandas 的 {r}")),
    row("python -c 'import pandas'", "`python -c \"import pandas\"`",
        "`python -c \"import pandas\"`"),
]

WORDS = {
    "en": {"columns": ("what", "median", "ratio (this run)", "range seen"),
           "subset": "measured on {rows} of {of} rows",
           "scaled": "measured on {rows} of {of} rows, scaled to all of them",
           "machines": "{n} machines",
           "intro": ("Medians from one run of `pytest benchmarks` on {cpu}, {date}; data: {data}. "
                     "Every ratio is computed from this run's medians; \"range seen\" adds "
                     "the ratios measured on other machines (`benchmarks/ratios_seen.json`).")},
    "zh": {"columns": ("内容", "中位数", "比值（本次运行）", "见过的范围"),
           "subset": "在 {of} 行中的 {rows} 行上测得",
           "scaled": "在 {of} 行中的 {rows} 行上测得，再按比例换算到全部行",
           "machines": "{n} 台机器",
           "intro": ("以下是 `pytest benchmarks` 一次运行的中位数，机器：{cpu}，日期：{date}；"
                     "数据：{data}。所有比值都由这同一次运行的中位数算出；“见过的范围”还包括"
                     "在其他机器上测得的比值（`benchmarks/ratios_seen.json`）。")},
}


def load_run(path):
    """(medians, infos, machine_info, datetime) of a --benchmark-json file, by recorded name;
    a median is already multiplied by the benchmark's scale."""
    run = json.loads(Path(path).read_text())
    medians, infos = {}, {}
    for bench in run["benchmarks"]:
        info = bench.get("extra_info", {})
        if "name" in info:
            medians[info["name"]] = bench["stats"]["median"] * info.get("scale", 1.0)
            infos[info["name"]] = info
    return medians, infos, run.get("machine_info", {}), run.get("datetime", "")


def cpu_name(machine_info, lang="en"):
    """The CPU model, its widest vector unit and its cores, e.g. 'AMD EPYC (AVX-512, 2 cores)'."""
    cpu = machine_info.get("cpu", {})
    name = cpu.get("brand_raw") or machine_info.get("processor") or "an unnamed CPU"
    flags = set(cpu.get("flags", []))
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    cores = f"{cpu['count']} {'cores' if lang == 'en' else '核'}" if cpu.get("count") else None
    details = [d for d in (vector, cores) if d]
    return f"{name} ({', '.join(details)})" if details else name


def median_of(medians, name):
    """The median of name, or the fastest of a tuple of names; None if none was measured."""
    names = name if isinstance(name, tuple) else (name,)
    measured = [medians[n] for n in names if n in medians]
    return min(measured) if measured else None


def ratios_of(medians):
    """key -> this run's ratio, for the rows that ratios_seen.json follows."""
    out = {}
    for r in ROWS:
        if r.get("key") and r["ratio"]:
            top, bottom = median_of(medians, r["ratio"][0]), median_of(medians, r["ratio"][1])
            if top is not None and bottom is not None:
                out[r["key"]] = top / bottom
    return out


def seconds(value):
    for unit, size in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= size:
            break
    else:
        unit, size = "ns", 1e-9
    shown = value / size
    return f"{shown:.0f} {unit}" if shown >= 100 else f"{shown:#.3g} {unit}"  # 12.0, 7.20


def times(value, lang="en"):
    """A ratio: '1.66x', '16.3x', '1,234x' (in Chinese '1.66 倍')."""
    shown = f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{shown}x" if lang == "en" else f"{shown} 倍"


def subset_note(infos, names, lang):
    """'measured on 2,000 of 635,716 rows' when a shown benchmark timed only part of the rows."""
    for name in names:
        info = infos.get(name, {})
        rows, of = info.get("rows"), info.get("of")
        if rows and of and rows < of:
            words = WORDS[lang]["scaled" if info.get("scale", 1.0) > 1.0 else "subset"]
            return words.format(rows=f"{rows:,}", of=f"{of:,}")
    return None


def data_description(infos, lang):
    described = next((info["data"] for info in infos.values() if "data" in info), None)
    if described is None:
        return "none recorded" if lang == "en" else "未记录"
    if lang == "en":
        return described
    size = re.search(r"([\d,]+) rows x (\d+) columns", described)
    kind = ("真实的 PUBG 训练文件" if described.startswith("the real") else
            "合成的 PUBG 数据" if described.startswith("synthetic") else "均匀分布的随机数")
    return f"{kind}，{size.group(1)} 行 x {size.group(2)} 列" if size else kind


def table(run, seen, lang):
    """The Markdown block (intro line and table) of one language."""
    medians, infos, machine, when = run
    words = WORDS[lang]
    current = cpu_name(machine)
    date = when[:10] or datetime.date.today().isoformat()
    intro = words["intro"].format(cpu=cpu_name(machine, lang), date=date,
                                  data=data_description(infos, lang))
    lines = [intro,
             "", "| " + " | ".join(words["columns"]) + " |", "| --- | --- | --- | --- |"]
    this_run = ratios_of(medians)
    heading = None  # written before the first row of its group that was measured
    for r in ROWS:
        if "head" in r:
            rows = infos.get(r["rows_of"], {}).get("rows", 0)
            heading = f"| **{r['head'][lang].format(rows=f'{rows:,}')}** | | | |"
            continue
        shown = [median_of(medians, name) for name in r["show"]]
        if any(value is None for value in shown):
            continue  # a peer that was not installed, or a benchmark left out of this run
        if heading:
            lines.append(heading)
            heading = None
        names = [n for name in r["show"] for n in (name if isinstance(name, tuple) else (name,))]
        what = r[lang]
        note = subset_note(infos, names, lang)
        if note:  # inside the label's own brackets when it ends with some
            close, join = (")", "; ") if lang == "en" else ("）", "；")
            what = (what[:-1] + join + note + close if what.endswith(close) else
                    what + (f" ({note})" if lang == "en" else f"（{note}）"))
        ratio = ""
        if r["ratio"]:
            top, bottom = median_of(medians, r["ratio"][0]), median_of(medians, r["ratio"][1])
            if top is not None and bottom is not None:
                ratio = r["ratio"][2 if lang == "en" else 3].format(r=times(top / bottom, lang))
        lines.append(f"| {what} | {' / '.join(seconds(v) for v in shown)} | {ratio} | "
                     f"{range_seen(r.get('key'), this_run, current, seen, lang)} |")
    accuracy = infos.get("digits accuracy")
    if accuracy:
        scores = [f"{label} {accuracy[key]:.3f}" for key, label in ACCURACY[lang]["scores"]
                  if key in accuracy]
        lines += ["", ACCURACY[lang]["line"].format(scores=("，" if lang == "zh" else ", ").join(scores))]
    return "\n".join(lines)


# What benchmarks/bench_digits.py records of held-out accuracy (not a speed) in the same run.
ACCURACY = {
    "en": {"line": "Held-out accuracy on the digits (25%, stratified) in the same run: {scores}.",
           "scores": [("cnn (ourdl)", "the CNN"),
                      ("ourdl.Classifier(hidden=(32,))", "`ourdl.Classifier(hidden=(32,))`"),
                      ("sklearn MLPClassifier(32,)", "scikit-learn's `MLPClassifier((32,))`")]},
    "zh": {"line": "同一次运行中，手写数字验证集（25%，分层抽样）上的准确率：{scores}。",
           "scores": [("cnn (ourdl)", "CNN"),
                      ("ourdl.Classifier(hidden=(32,))", "`ourdl.Classifier(hidden=(32,))`"),
                      ("sklearn MLPClassifier(32,)", "scikit-learn 的 `MLPClassifier((32,))`")]},
}


def range_seen(key, this_run, current, seen, lang):
    """'0.87x-4.3x (3 machines)' from ratios_seen.json's runs and this one (its CPU's old
    entry replaced); empty for a ratio that no other machine has measured."""
    if not key:
        return ""
    values = {run["cpu"]: run["ratios"][key] for run in seen.get("runs", [])
              if key in run.get("ratios", {})}
    if key in this_run:
        values[current] = this_run[key]
    if len(values) < 2:
        return ""
    low, high = min(values.values()), max(values.values())
    machines = WORDS[lang]["machines"].format(n=len(values))
    if lang == "en":
        return f"{times(low)}-{times(high)} ({machines})"
    return f"{times(low, lang).replace(' 倍', '')}-{times(high, lang)}（{machines}）"


def replace_block(text, block, where="README"):
    """text with the lines between START and END replaced by block."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{where} needs one {START} line followed by one {END} line, where the "
                         f"table goes")
    before, rest = text.split(START)
    _, after = rest.split(END)
    return f"{before}{START}\n{block}\n{END}{after}"


def load_seen(path=None):
    path = Path(path or SEEN)
    return json.loads(path.read_text()) if path.exists() else {"runs": []}


def remember(run, seen):
    """seen with this run's ratios added under its CPU's name (an older entry replaced)."""
    medians, _, machine, when = run
    cpu = cpu_name(machine)
    runs = [r for r in seen.get("runs", []) if r["cpu"] != cpu]
    runs.append({"cpu": cpu, "date": when[:10],
                 "ratios": {k: round(v, 3) for k, v in ratios_of(medians).items()}})
    return {**seen, "runs": runs}


def slim(path):
    """What the table needs of a --benchmark-json file, in the same format: per benchmark its
    recorded extra_info and median, the CPU's name, cores and vector units, the date."""
    run = json.loads(Path(path).read_text())
    cpu = run.get("machine_info", {}).get("cpu", {})
    return {
        "datetime": run.get("datetime", ""),
        "machine_info": {"cpu": {"brand_raw": cpu.get("brand_raw"), "count": cpu.get("count"),
                                 "flags": [f for f in cpu.get("flags", []) if f in VECTOR_FLAGS]}},
        "benchmarks": [{"name": bench["name"], "extra_info": bench["extra_info"],
                        "stats": {"median": bench["stats"]["median"]}}
                       for bench in run["benchmarks"] if "name" in bench.get("extra_info", {})],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="the file of pytest --benchmark-json=FILE")
    parser.add_argument("--remember", action="store_true",
                        help=f"add this run's ratios to {SEEN.name} under its CPU's name")
    args = parser.parse_args(argv)
    run = load_run(args.json)
    if not run[0]:
        raise SystemExit(f"{args.json} holds no benchmark recorded by name: run "
                         f"`pytest benchmarks --benchmark-json={args.json}` first")
    kept = slim(args.json)
    LAST_RUN.write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n")
    run = load_run(LAST_RUN)
    seen = load_seen()
    if args.remember:
        seen = remember(run, seen)
        SEEN.write_text(json.dumps(seen, indent=2, ensure_ascii=False) + "\n")
    for lang, path in READMES.items():
        path.write_text(replace_block(path.read_text(), table(run, seen, lang), path.name))
        print(f"wrote the table of {path.name} from {args.json} ({cpu_name(run[2])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
