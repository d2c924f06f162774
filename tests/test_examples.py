"""Every example in README.md, README.zh-CN.md and examples/ runs, and prints what it says it
prints."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import TUTORIAL_TRACE, expected_lines

ROOT = Path(__file__).resolve().parent.parent
READMES = ("README.md", "README.zh-CN.md")
BLOCKS = {name: re.findall(r"```python\n(.*?)```", (ROOT / name).read_text(), re.S)
          for name in READMES}
README_BLOCKS = BLOCKS["README.md"]


def run(script, *args, cwd):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("readme", READMES)
def test_readme_has_examples(readme):
    assert len(BLOCKS[readme]) >= 3


def test_chinese_readme_runs_the_english_readmes_code():
    # Same code, same order: every check below of what a block prints holds for both.
    assert BLOCKS["README.zh-CN.md"] == README_BLOCKS


@pytest.mark.parametrize("readme", READMES)
def test_readmes_link_to_each_other(readme):
    other = READMES[1 - READMES.index(readme)]
    first_lines = (ROOT / readme).read_text().splitlines()[:3]
    assert any(f"]({other})" in line for line in first_lines)


@pytest.mark.parametrize("readme, number",
                         [(name, n) for name in READMES for n in range(len(BLOCKS[name]))])
def test_readme_example_runs(readme, number, tmp_path, monkeypatch, capsys):
    block = BLOCKS[readme][number]
    if "ourdl.draw(" in block:
        needs_graphviz()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()  # where the block drawing the README's picture puts it
    exec(compile(block, f"{readme} block {number}", "exec"), {})
    printed = capsys.readouterr().out
    if "print(result.value)" in block:  # the tutorial's first program
        assert printed.split() == ["0.009999999999999929", "0.9978", "0.005123696399999996"]


def needs_graphviz():
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")


DRAWN_BY = "2.43.0"  # the Graphviz that drew docs/tutorial-graph.png (Debian 12's)


@pytest.mark.parametrize("readme", READMES)
def test_the_readmes_picture_is_what_its_lines_draw(readme, tmp_path, monkeypatch):
    needs_graphviz()
    block = next(b for b in BLOCKS[readme] if 'ourdl.draw(result, "docs/tutorial-graph.png")' in b)
    # The tutorial's first program as the tutorial writes it, up to its first backward.
    program = (ROOT / "examples" / "tutorial_example.py").read_text().replace(" ", "")
    for line in block.splitlines()[3:-2]:
        assert line.replace(" ", "") in program, line
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    exec(compile(block, f"{readme} picture block", "exec"), {})
    drawn = (tmp_path / "docs" / "tutorial-graph.png").read_bytes()
    shown = (ROOT / "docs" / "tutorial-graph.png").read_bytes()
    assert drawn[16:24] == shown[16:24]  # the same width and height (the PNG header)
    version = subprocess.run(["dot", "-V"], capture_output=True, text=True).stderr
    if DRAWN_BY not in version:
        pytest.skip(f"docs/tutorial-graph.png was drawn by Graphviz {DRAWN_BY}, not {version}")
    assert drawn == shown


@pytest.mark.parametrize("readme", READMES)
def test_readme_fit_example_learns_the_weights(readme, tmp_path, monkeypatch, capsys):
    block = next(b for b in BLOCKS[readme] if "tape.fit" in b)
    namespace = {}
    exec(compile(block, f"{readme} fit block", "exec"), namespace)
    learned = [node.value for node in namespace["w"]]
    assert learned == pytest.approx([0.5, -1.0, 2.0], abs=0.02)


def test_tutorial_example_runs_on_its_own_and_prints_the_tutorial_trace(tmp_path):
    lines = run("tutorial_example.py", cwd=tmp_path).splitlines()
    # 20.0 where the tutorial printed the int 20: ourdl's values are float64 (see README).
    assert lines == ["计算前 result.value =  20.0"] + expected_lines(TUTORIAL_TRACE)[1:]


def test_tutorial_pubg_example_trains_and_writes_a_submission(tmp_path):
    printed = run("tutorial_pubg.py", "3000", cwd=tmp_path)
    assert "第12个参数的系数w12是" in printed
    submission = pd.read_csv(tmp_path / "submission.csv")
    assert list(submission.columns) == ["team_placement"]
    assert len(submission) == 1000
    assert submission["team_placement"].min() >= 1


@pytest.mark.parametrize("readme", READMES)
@pytest.mark.parametrize("marker, expected", [
    ("nn.MLP", ["dense 13 -> 16, tanh (624 nodes from 1 to 680)", "(13, 16)"]),
    ("Softplus", ["0.114506"]),
    ("loss = MSENode(MulNode(x, w), y)", ["1.4998"]),
    ("ourdl.Regressor(hidden=(16, 16)", ["True"]),
    ("validation=data[:2_000]", ["6"]),
])
def test_readme_blocks_print_what_their_comments_say(readme, marker, expected, capsys):
    block = next(b for b in BLOCKS[readme] if marker in b)
    exec(compile(block, f"{readme} {marker} block", "exec"), {})
    assert capsys.readouterr().out.splitlines() == expected
    for line in expected:
        assert f"# {line}" in block


@pytest.mark.parametrize("readme", READMES)
def test_readme_save_block_prints_what_it_says(readme, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    block = next(b for b in BLOCKS[readme] if "ourdl.save" in b)
    exec(compile(block, f"{readme} save block", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["#", "op", "name", "Papa", "Mama", "value", "grad", "Flag", "lr",
                                "kernel"]
    assert lines[-3:] == ["True", "True", "{'note': \"the tutorial's example\"}"]


def test_curve_fit_example_recovers_k_g_h(tmp_path):
    printed = run("curve_fit.py", cwd=tmp_path)
    found = dict(re.findall(r"^([kgh]) = (-?[0-9.]+) \(true", printed, re.M))
    assert sorted(found) == ["g", "h", "k"], printed
    learned = {name: float(value) for name, value in found.items()}
    assert learned == pytest.approx({"k": 0.8, "g": 0.9, "h": 0.5}, abs=0.02)
    loss = float(re.search(r"loss after 100 epochs: (\S+)", printed).group(1))
    assert loss < 2 * 0.01 ** 2  # within twice the noise's own mean square


def test_curve_fit_example_plots_when_asked(tmp_path):
    pytest.importorskip("matplotlib")
    printed = run("curve_fit.py", "--epochs", "5", "--plot", "fit.png", cwd=tmp_path)
    assert "plot written to fit.png" in printed
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mlp_pubg_example_beats_the_tutorials_linear_model(tmp_path):
    printed = run("mlp_pubg.py", "--rows", "20000", cwd=tmp_path)
    mae = {name.strip(): float(value)
           for name, value in re.findall(r"^(.+?)\s+held-out MAE\s+([0-9.]+)", printed, re.M)}
    assert len(mae) == 4, printed
    mean = mae["always the training mean"]
    linear = mae["linear (the tutorial's model)"]
    assert linear < mean
    assert mae["nn.MLP 13-16-16-1, Tape.fit, Adam"] < linear
    assert mae["ourdl.Regressor(hidden=(16, 16))"] < linear


def test_digits_example_trains_an_mlp_and_a_cnn_and_draws_the_mistakes(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    printed = run("digits.py", "--epochs", "3", "--limit", "400", "--plot", "mistakes.png",
                  cwd=tmp_path)
    lines = printed.splitlines()
    assert lines[0] == "400 training images, 450 held out"
    for line, name in zip(lines[1:3], ("MLP 64-32-10", "CNN conv 1->8 3x3")):
        assert line.startswith(name)
        assert float(line.rsplit("held-out accuracy ", 1)[1]) > 0.8
    assert lines[3].startswith("true\\predicted")
    matrix = np.array([[int(n) for n in line.split()[1:]] for line in lines[4:14]])
    assert matrix.sum() == 450 and np.trace(matrix) > 0.8 * 450
    assert (tmp_path / "mistakes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_moons_example_learns_a_curved_boundary_and_draws_it(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    printed = run("moons.py", "--epochs", "20", "--plot", "moons.png", cwd=tmp_path)
    first = printed.splitlines()[0]
    assert first.startswith("750 training points, 20 epochs")
    assert float(first.rsplit("held-out accuracy ", 1)[1]) > 0.9  # a straight line gets ~0.86
    assert (tmp_path / "moons.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tutorial_notebook_runs_and_shows_its_pictures(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    import ourdl
    # The kernel imports the ourdl these tests import, wherever it was installed or built.
    here = str(Path(ourdl.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [here, *filter(None, [os.environ.get("PYTHONPATH")])]))
    notebook = nbformat.read(ROOT / "examples" / "tutorial.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells)  # stored without outputs
    started = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert time.perf_counter() - started < 60  # about 3 s here
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    shown = [{kind for output in cell.outputs for kind in output.get("data", {})} for cell in code]
    printed = ["".join(output.get("text", "") for output in cell.outputs) for cell in code]
    pictures = shutil.which("dot") is not None and importlib.util.find_spec("graphviz")
    graph = {"text/plain", "image/svg+xml"} if pictures else {"text/plain"}
    assert shown[0] == shown[1] == shown[2] == graph  # the tutorial's graph, three times
    assert printed[1] == "0.009999999999999929\n"
    assert shown[3] == {"text/plain", "text/html"}  # the tape's table
    assert printed[4].splitlines()[0] == "step 1: w1.value = 0.997800, result.value = 0.005124"
    assert re.fullmatch(r"GradCheck\(error=\S+, node=leaf#\d+\)",
                        code[4].outputs[-1]["data"]["text/plain"])
    linear, deep = (float(re.search(r"held-out error: (\S+) placements", text).group(1))
                    for text in (printed[6], printed[8]))
    assert deep < linear < 10  # always guessing the mean is about 14 placements off
    assert shown[7] == graph and shown[8] == graph  # the MLP as layers, its graph by layer
    assert "image/png" in shown[9]  # the loss, plotted
