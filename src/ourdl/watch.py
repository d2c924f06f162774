"""Watching training: the loss curves of a ``Tape.fit`` history, drawn after the run or live.

``Tape.fit`` returns one ``EpochStats`` per epoch (the training loss, unless it ran with
``track_loss=False``, and the held-out loss when it was given ``validation``). ``plot_history`` draws them; ``LiveCurve`` is a callback
for ``fit`` that redraws them as every epoch ends: in place under the cell in a notebook,
into a file elsewhere. Both need matplotlib (``pip install "ourdl[plot]"``).
"""
import numbers
import os
from pathlib import Path


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("drawing the loss curves needs matplotlib, which is not installed "
                          "(pip install 'ourdl[plot]' or pip install matplotlib)") from None


def plot_history(history, ax=None):
    """Draw the training loss of every epoch (if fit kept it), and the held-out loss beside
    it if there is one.

    Parameters
    ----------
    history : list of EpochStats
        What ``Tape.fit`` returns (or an estimator's ``history_``).
    ax : matplotlib Axes, optional
        Where to draw; a new figure's by default (through pyplot, so that ``plt.show()``
        shows it and a notebook draws it under the cell).

    Returns
    -------
    matplotlib Axes
    """
    _matplotlib()
    history = list(history) if isinstance(history, (list, tuple)) else []
    if not history or not all(hasattr(s, "loss") and hasattr(s, "epoch")
                              and _number(s.loss, or_none=True) and _number(s.epoch)
                              and _number(getattr(s, "validation_loss", None), or_none=True)
                              for s in history):
        raise ValueError("history must be a non-empty list of EpochStats, as Tape.fit returns")
    if all(s.loss is None and getattr(s, "validation_loss", None) is None for s in history):
        raise ValueError("the history holds no loss to draw: fit ran with track_loss=False and "
                         "without validation")
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    _draw(ax, history)
    return ax


def _number(value, or_none=False):
    """Whether value is a real number (or None, when allowed): what a curve can plot."""
    return (value is None and or_none) or (isinstance(value, numbers.Real)
                                           and not isinstance(value, bool))


def _draw(ax, history):
    from matplotlib.ticker import MaxNLocator

    epochs = [s.epoch for s in history]
    if any(s.loss is not None for s in history):
        ax.plot(epochs, [float("nan") if s.loss is None else s.loss for s in history],
                marker="o", label="training")
    held_out = [getattr(s, "validation_loss", None) for s in history]
    if any(v is not None for v in held_out):
        ax.plot(epochs, [float("nan") if v is None else v for v in held_out], marker="o",
                label="held out")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set(xlabel="epoch", ylabel="loss (mean root value)", title="Loss per epoch")
    if ax.lines:
        ax.legend()


class LiveCurve:
    """A ``Tape.fit`` callback that redraws the loss curves as every epoch ends.

    ``tape.fit(data, inputs, epochs=20, validation=held_out, callback=ourdl.LiveCurve())``.
    In a notebook the figure is shown under the cell and updated in place; elsewhere it is
    written to ``path`` after every epoch if one is given. ``history`` holds what it saw.
    ``stop`` (optional) is another callback whose answer is passed on, so that a stopping
    rule and the curve can go together.
    """

    def __init__(self, path=None, stop=None):
        _matplotlib()
        if stop is not None and not callable(stop):
            raise TypeError(f"stop must be a function of an EpochStats, not {stop!r}")
        if path is not None:  # a path that cannot be written is said before training
            from ourdl import _files
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(f"path must be a file name, not {type(path).__name__}")
            _files.check_output(path)
        self.path, self.stop, self.history = path, stop, []
        self._shown = None

    def __call__(self, stats):
        from matplotlib.figure import Figure

        self.history.append(stats)
        figure = Figure(figsize=(6, 4), layout="constrained")
        _draw(figure.subplots(), self.history)
        self.figure = figure
        if self.path is not None:  # rendered first, then written whole (never half a file)
            import io

            from ourdl import _files
            picture = io.BytesIO()
            figure.savefig(picture, format=Path(self.path).suffix[1:] or "png")
            with _files.open_output(self.path) as file:
                file.write(picture.getvalue())
        display = _notebook_display()
        if display is not None:
            if self._shown is None:
                self._shown = display(figure, display_id=True)
            else:
                self._shown.update(figure)
        return bool(self.stop(stats)) if self.stop is not None else False


def _notebook_display():
    """IPython's display function when running in a notebook kernel, else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    shell = get_ipython()
    return display if shell is not None and getattr(shell, "kernel", None) is not None else None
