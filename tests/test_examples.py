"""Every example in README.md, README.zh-CN.md and examples/ runs, and prints what it says it
prints."""
import re
import subprocess
import sys
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
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[readme][number], f"{readme} block {number}", "exec"), {})
    printed = capsys.readouterr().out
    if "from ourdl import *" in BLOCKS[readme][number]:  # the tutorial's first program
        assert printed.split() == ["0.009999999999999929", "0.9978", "0.005123696399999996"]


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
