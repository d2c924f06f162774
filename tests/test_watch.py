"""Watching training: plot_history draws fit's history; LiveCurve redraws it as epochs end."""
import sys

import numpy as np
import pytest

import ourdl
from ourdl import AddNode, MSENode, MulNode, Node

pytest.importorskip("matplotlib")


def linear_model(n=3):
    xs = [Node() for _ in range(n)]
    ws = [Node(Value=0.0, Flag=1, lr=0.05) for _ in range(n)]
    total = MulNode(xs[0], ws[0])
    for x, w in zip(xs[1:], ws[1:]):
        total = AddNode(total, MulNode(x, w))
    target = Node()
    return ourdl.compile(MSENode(total, target)), xs + [target]


def data(n_rows, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((n_rows, 3))
    return np.column_stack([X, X @ [0.5, -0.2, 0.3]])


def lines_of(ax):
    return {line.get_label(): line.get_ydata().tolist() for line in ax.get_lines()}


def test_plot_history_draws_the_training_and_held_out_losses():
    tape, inputs = linear_model()
    history = tape.fit(data(300, 0), inputs, epochs=4, validation=data(100, 1))
    lines = lines_of(ourdl.plot_history(history))
    assert lines["training"] == [s.loss for s in history]
    assert lines["held out"] == [s.validation_loss for s in history]

    tape, inputs = linear_model()
    assert set(lines_of(ourdl.plot_history(tape.fit(data(300, 0), inputs)))) == {"training"}


def test_a_history_without_training_losses_draws_the_held_out_one_alone():
    tape, inputs = linear_model()
    history = tape.fit(data(300, 0), inputs, epochs=3, validation=data(100, 1),
                       track_loss=False)
    assert lines_of(ourdl.plot_history(history)) == {
        "held out": [s.validation_loss for s in history]}
    tape, inputs = linear_model()
    with pytest.raises(ValueError, match="no loss to draw.*track_loss=False"):
        ourdl.plot_history(tape.fit(data(300, 0), inputs, track_loss=False))


def test_plot_history_refuses_what_is_not_a_history():
    junk = [ourdl.EpochStats(1, "0.5", 1.0, 1.0), ourdl.EpochStats(1, 0.5, 1.0, 1.0, "x"),
            ourdl.EpochStats(None, 0.5, 1.0, 1.0)]
    for bad in ([], [1.0, 2.0], None, *([stats] for stats in junk)):
        with pytest.raises((ValueError, TypeError), match="history"):
            ourdl.plot_history(bad)


def test_live_curve_redraws_after_every_epoch_and_passes_a_stop_on(tmp_path):
    path = tmp_path / "curve.png"
    sizes = []

    def stop(stats):
        sizes.append(path.stat().st_size)  # already drawn for this epoch
        return stats.epoch == 3
    live = ourdl.LiveCurve(path=path, stop=stop)
    tape, inputs = linear_model()
    history = tape.fit(data(300, 0), inputs, epochs=10, validation=data(100, 1), callback=live)
    assert len(history) == 3 and live.history == history and len(sizes) == 3
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines_of(live.figure.axes[0])["held out"] == [s.validation_loss for s in history]


def test_without_matplotlib_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"ourdl\[plot\]"):
        ourdl.LiveCurve()


def test_live_curve_refuses_a_path_it_could_not_write_before_training(tmp_path):
    with pytest.raises(TypeError, match="path must be a file name"):
        ourdl.LiveCurve(path=3)
    with pytest.raises(OSError):
        ourdl.LiveCurve(path=tmp_path / "no such folder" / "curve.png")
