"""``ourdl.Regressor`` and ``ourdl.Classifier``: networks of ourdl's nodes as scikit-learn
style estimators.

    model = ourdl.Regressor(hidden=(16, 16)).fit(X, y)
    model.predict(X_new), model.score(X_test, y_test)
    ourdl.Classifier(hidden=(32,)).fit(images, labels).predict_proba(new_images)

Underneath are ourdl's own parts only: the nodes of the model (``hidden=()`` is a linear
model: one weight per feature and output, starting at 0, summed by a chain of ``AddNode``s,
as the tutorial wires it; else ``ourdl.nn.Linear`` layers), a loss node, one
``ourdl.compile``d tape, ``Tape.fit`` and ``Tape.predict``. Both keep scikit-learn's
conventions (``__init__`` stores the parameters unchanged and ``fit`` checks them; what fit
learns ends in ``_``; ``get_params`` / ``set_params``), so ``clone``, ``Pipeline``,
``cross_val_score`` and ``GridSearchCV(n_jobs=...)`` take them. scikit-learn stays optional:
it is imported only when it asks for the estimator's tags or when an error or warning should
be of its type.
"""
import inspect
import math
import sys
import warnings

import numpy as np

from ourdl import _checks, nn, optim
from ourdl._core import HuberNode, LogLossNode, MAENode, MSENode, Node
from ourdl._core import compile as compile_graph

__all__ = ["Regressor", "Classifier"]

LOSSES = {"mse": MSENode, "mae": MAENode, "huber": HuberNode}
OPTIMIZERS = {"sgd": optim.SGD, "momentum": optim.Momentum, "adam": optim.Adam}


class _Network:
    """What Regressor and Classifier share: the parameters' checks, building the network,
    training it with a stopping rule, the input checks and scikit-learn's conventions.

    A subclass says what it learns about its targets (``_encoding``, ``_same_encoding`` for
    a later ``partial_fit``), how they become data columns (``_columns``) for how many
    outputs (``_n_outputs``), which loss sits on the outputs (``_loss``), and what the
    outputs predict (``_prediction``)."""

    # --- training -----------------------------------------------------------------------

    def fit(self, X, y):
        """Build a new model and train it on (X, y); return self.

        At most ``epochs`` passes over the rows; with ``tol``, fewer once the training loss
        has stopped improving.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numbers, finite. A DataFrame's string column names are kept in
            ``feature_names_in_``.
        y : array-like of shape (n_samples,)
            The targets.

        Returns
        -------
        self

        Raises
        ------
        TypeError, ValueError
            Before training, on bad parameters or data. On any error the estimator keeps
            what it had before the call.
        FloatingPointError
            If training diverges (a smaller ``lr``, or scaling X, helps).
        """
        X, names = self._checked_features(X, reset=True)
        y = self._checked_target(y, len(X))
        settings = self._settings()
        encoding = self._encoding(y, None, partial=False)
        model = self._new_model(X.shape[1], encoding, settings)
        model["history_"] = self._train(model, X, self._columns(y, encoding), settings,
                                        settings["epochs"], stop=True)
        self._keep(model, names)
        return self

    def _partial_fit(self, X, y, classes=None):
        """One more pass over the rows of (X, y); the first call builds the model."""
        first = not self.__sklearn_is_fitted__()
        X, names = self._checked_features(X, reset=first)
        y = self._checked_target(y, len(X))
        settings = self._settings()
        if first:
            encoding = self._encoding(y, classes, partial=True)
            model = self._new_model(X.shape[1], encoding, settings)
            model["history_"] = self._train(model, X, self._columns(y, encoding), settings, 1)
            self._keep(model, names)
        else:
            columns = self._columns(y, self._same_encoding(y, classes))
            self.history_ += self._train(vars(self), X, columns, settings, 1)
        return self

    def _settings(self):
        """The parameters, checked (all of them, before a model that may be big is built)."""
        return {"hidden": _checks.sizes("hidden", self.hidden),
                "activation": _checks.choice("activation", self.activation,
                                             [a for a in nn.ACTIVATIONS if a is not None]),
                "optimizer": _optimizer(self.optimizer),
                "lr": _checks.positive_number("lr", self.lr),
                "epochs": _checks.count("epochs", self.epochs),
                "tol": _checks.tolerance("tol", self.tol),
                "n_iter_no_change": _checks.count("n_iter_no_change", self.n_iter_no_change),
                "early_stopping": _checks.switch("early_stopping", self.early_stopping),
                "validation_fraction": _held_out_share(self.validation_fraction),
                "batch_size": _checks.count("batch_size", self.batch_size),
                "shuffle": _checks.switch("shuffle", self.shuffle),
                "fit_intercept": _checks.switch("fit_intercept", self.fit_intercept),
                "seed": _checks.seed_number(self.seed),
                "progress": _checks.switch("progress", self.progress)}

    def _new_model(self, n_features, encoding, settings):
        """The fitted attributes of an untrained model of n_features inputs."""
        hidden, lr = settings["hidden"], settings["lr"]
        n_outputs = self._n_outputs(encoding)
        rng = np.random.default_rng(settings["seed"])
        inputs = [Node(name=f"x[{j}]") for j in range(n_features)]
        if hidden:
            sizes = [n_features, *hidden, n_outputs]
            last = len(sizes) - 2
            layers = [nn.Linear(n_in, n_out, bias=k < last or settings["fit_intercept"],
                                activation=settings["activation"] if k < last else None,
                                seed=rng, lr=lr)
                      for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]))]
        else:
            # The tutorial's model: nn.Linear wires x[i] * w[i] exactly as the tutorial does
            # (then + b), and the tutorial's weights start at 0. Its own draws are discarded.
            layers = [nn.Linear(n_features, n_outputs, bias=settings["fit_intercept"], seed=0,
                                lr=lr)]
            for parameter in layers[0].parameters():
                parameter.value = 0.0
        outputs = inputs
        for layer in layers:
            outputs = layer(outputs)
        names = ["y"] if n_outputs == 1 else [f"y[{k}]" for k in range(n_outputs)]
        targets = [Node(name=name) for name in names]
        return {**encoding, "inputs_": inputs, "targets_": targets, "outputs_": outputs,
                "layers_": layers, "tape_": compile_graph(self._loss(outputs, targets)),
                "optimizer_": settings["optimizer"], "_rng": rng}

    def _train(self, model, X, columns, settings, epochs, stop=False):
        """Passes of model's tape over X and the target columns; their EpochStats. With
        ``stop`` and a ``tol``, the passes end once the loss has not improved by ``tol`` on
        the best so far for ``n_iter_no_change`` passes in a row (the rule of scikit-learn's
        SGD estimators): the training loss, or with ``early_stopping`` the loss on the
        ``validation_fraction`` of the rows held out, whose best epoch's parameters are kept."""
        data = np.column_stack([X, columns])
        nodes = model["inputs_"] + model["targets_"]
        held_out = None
        if stop and settings["early_stopping"]:
            data, held_out = _split(data, self._strata(columns), settings["validation_fraction"],
                                    settings["seed"])
        rule = None
        if stop and settings["tol"] is not None:
            parameters = [p for layer in model["layers_"] for p in layer.parameters()]
            rule = _Stopping(settings["tol"], settings["n_iter_no_change"],
                             parameters if held_out is not None else None)
        history = model["tape_"].fit(
            data, nodes, epochs=epochs, shuffle=settings["shuffle"], seed=model["_rng"],
            batch_size=settings["batch_size"], progress=settings["progress"],
            optimizer=model["optimizer_"],
            validation=(held_out, nodes) if held_out is not None else None, callback=rule)
        if rule is not None and not rule.finish():
            what = "held-out" if held_out is not None else "training"
            warnings.warn(_sklearn_class("exceptions", "ConvergenceWarning", ConvergenceWarning)(
                f"{type(self).__name__} stopped after epochs={epochs} passes with the {what} "
                f"loss still improving by more than tol={settings['tol']}: raise epochs (or "
                f"lr), or scale the features"), stacklevel=3)
        return history

    def _strata(self, columns):
        """What a held-out share keeps the proportions of (None: nothing)."""
        return None

    def _keep(self, model, names):
        vars(self).pop("feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = names
        self.n_features_in_ = len(model["inputs_"])
        vars(self).update(model)

    def _outputs(self, X, checked=False):
        """The network's outputs for the rows of X, shape (n_samples, n_outputs)."""
        if not checked:
            self._check_fitted()
            X = self._checked_features(X, reset=False)[0]
        return np.column_stack([self.tape_.predict(X, inputs=self.inputs_, output=output)
                                for output in self.outputs_])

    @property
    def coefs_(self):
        """Each layer's weights, arrays of shape (n_in, n_out)."""
        self._check_fitted()
        return [layer.weights for layer in self.layers_]

    @property
    def intercepts_(self):
        """Each layer's biases (an empty array for a layer without)."""
        self._check_fitted()
        return [layer.biases for layer in self.layers_]

    # --- scikit-learn's conventions ------------------------------------------------------

    def get_params(self, deep=True):
        """The parameters given to ``__init__`` (or ``set_params``), by name."""
        return {name: getattr(self, name) for name in _parameter_names(type(self))}

    def set_params(self, **params):
        """Set parameters by name; they take effect at the next ``fit``. Returns self."""
        names = _parameter_names(type(self))
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self!r}. "
                                 f"Valid parameters are: {sorted(names)!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self)).parameters
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if not _same(value, defaults[name].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self):
        return "tape_" in vars(self)

    def _check_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise _sklearn_class("exceptions", "NotFittedError", NotFittedError)(
                f"This {type(self).__name__} instance is not fitted yet: call fit (or "
                f"partial_fit) with training data first.")

    # --- input checks ------------------------------------------------------------------

    def _checked_target(self, y, n_rows):
        """y as a 1-D array of one value per row (not yet converted)."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             f"y is None")
        if hasattr(y, "toarray") and hasattr(y, "nnz"):
            raise TypeError("y is a sparse matrix: pass a dense 1-D array")
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(_sklearn_class("exceptions", "DataConversionWarning", UserWarning)(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel()."), stacklevel=4)
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D, one target per row of X, not of shape {y.shape}")
        if len(y) != n_rows:
            raise ValueError(f"X has {n_rows:,} rows but y has {len(y):,}: one target per row")
        return y

    def _checked_features(self, X, reset):
        """(X as a checked float64 array, its feature names or None)."""
        names = _feature_names(X)
        if not reset:
            self._check_feature_names(names)
        X = _checks.numbers_array("X", X)
        if X.ndim != 2:
            hint = (": X.reshape(-1, 1) if it is one feature, X.reshape(1, -1) if it is one "
                    "sample" if X.ndim == 1 else "")
            raise ValueError(f"X must be 2-D, one row per sample, not {X.ndim}-D. Reshape "
                             f"your data{hint}")
        for axis, what in enumerate(("sample(s)", "feature(s)")):
            if X.shape[axis] == 0:
                raise ValueError(f"Found array with 0 {what} (shape={X.shape}) while a "
                                 f"minimum of 1 is required.")
        if not reset and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        columns = [str(name) for name in (names if names is not None else range(X.shape[1]))]
        error = _checks.nonfinite_error(X, columns, what="X")
        if error:
            raise error
        return X, names

    def _check_feature_names(self, names):
        fitted = getattr(self, "feature_names_in_", None)
        me = type(self).__name__
        if fitted is None and names is not None:
            warnings.warn(f"X has feature names, but {me} was fitted without feature names",
                          UserWarning, stacklevel=4)
        elif fitted is not None and names is None:
            warnings.warn(f"X does not have valid feature names, but {me} was fitted with "
                          f"feature names", UserWarning, stacklevel=4)
        elif fitted is not None and list(names) != list(fitted):
            raise ValueError(f"The feature names should match those that were passed during "
                             f"fit: {list(fitted)[:5]}..., not {list(names)[:5]}...")


class Regressor(_Network):
    """A regressor trained by ``Tape.fit``: a linear model (the tutorial's, with the
    ``tutorial()`` settings) or an MLP.

    The defaults work on ordinary data, as scikit-learn's ``SGDRegressor``'s do: put a
    ``StandardScaler`` before it (``make_pipeline(StandardScaler(), ourdl.Regressor())``);
    the target is scaled inside. ``Regressor.tutorial()`` is the tutorial's model.

    Parameters
    ----------
    hidden : tuple of int, default ()
        The sizes of the hidden layers. ``()`` is a linear model,
        ``x[0]*w[0] + ... + x[n-1]*w[n-1] (+ b)``, each ``w[i]`` a ``Node(Flag=1, lr=lr)``
        starting at 0, wired as the tutorial wires it. ``(16, 16)`` is ``n -> 16 -> 16 -> 1``
        built of ``ourdl.nn.Linear`` layers, initialized as ``ourdl.nn.MLP`` does; hidden
        units always have biases.
    activation : {"tanh", "relu", "sigmoid"}, default "tanh"
        Of the hidden layers.
    loss : {"mse", "mae", "huber"}, default "mse"
        The tutorial's mean squared error, the absolute error, or Huber's (``delta=1``).
    optimizer : {"sgd", "momentum", "adam"} or an ``ourdl.optim`` object, default "sgd"
        ``"sgd"`` is the tutorial's rule. The state carries over from one ``partial_fit``
        to the next.
    lr : float, default 0.001
        Every parameter's learning rate (an ``ourdl.optim`` object's own ``lr`` wins).
        Smaller than the tutorial's 0.01: per-sample SGD at 0.01 leaves the weights
        jittering around the best fit (R^2 0.46 instead of 0.48 on scikit-learn's diabetes
        data, where 0.001 matches ``LinearRegression``).
    epochs : int, default 200
        The most passes ``fit`` makes over the data (``partial_fit`` makes one).
    tol : float or None, default 1e-3
        ``fit`` stops once the epoch's mean training loss has not fallen below the best
        so far minus ``tol`` for ``n_iter_no_change`` epochs in a row (scikit-learn's rule);
        ``ConvergenceWarning`` if ``epochs`` ran out first. None: exactly ``epochs`` passes.
    n_iter_no_change : int, default 5
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows (drawn with ``seed``), stop on
        their loss instead of the training loss, and keep the parameters of the epoch where
        it was lowest (scikit-learn's ``early_stopping``). Each epoch's held-out loss is in
        ``history_``.
    validation_fraction : float, default 0.1
        The share of the rows held out with ``early_stopping``.
    batch_size : int, default 1
        Rows per update, the gradients averaged (1: the tutorial's per-sample SGD).
    shuffle : bool, default True
        Visit the rows in a new order each epoch (False: in the order given).
    fit_intercept : bool, default True
        A trainable bias, starting at 0, on the output (the tutorial's model has none).
    scale_target : bool, default True
        Train on ``(y - target_mean_) / target_scale_`` (y's mean and standard deviation;
        ``partial_fit`` takes them from its first chunk) and map predictions back, so that
        one ``lr`` suits any target's scale. False: train on y as it is.
    seed : int or None, default 0
        The hidden layers' initial weights, then the order of the rows when shuffling, are
        drawn from ``numpy.random.default_rng(seed)``. None: a different run each time.
    progress : bool, default False
        A progress bar (needs tqdm).

    Attributes
    ----------
    tape_ : the compiled graph, the loss at its root.
    inputs_, targets_, outputs_ : the input nodes (one per feature), the target node and
        the prediction node (as one-item lists).
    layers_ : the ``ourdl.nn.Linear`` layers; ``coefs_`` and ``intercepts_`` hold their
        values (which predict the scaled target with ``scale_target``).
    target_mean_, target_scale_ : the target's scaling (0 and 1 without ``scale_target``).
    optimizer_, history_ : the optimizer; one ``EpochStats`` per pass since ``fit`` (its
        ``loss``, and its ``validation_loss`` with ``early_stopping``; ``ourdl.plot_history``
        draws them).
    n_features_in_, feature_names_in_ : as scikit-learn's (the names when X was a
        DataFrame with string column names).

    Examples
    --------
    The tutorial's model (one pass at lr 0.01, in order, no intercept, y as it is):
    ``Regressor.tutorial()``, which is ``Regressor(lr=0.01, epochs=1, tol=None,
    shuffle=False, fit_intercept=False, scale_target=False)``.
    """

    # The settings that make the defaults the tutorial's model (see ``tutorial``).
    TUTORIAL = {"lr": 0.01, "epochs": 1, "tol": None, "shuffle": False, "fit_intercept": False,
                "scale_target": False}

    def __init__(self, hidden=(), activation="tanh", loss="mse", optimizer="sgd", lr=0.001,
                 epochs=200, tol=1e-3, n_iter_no_change=5, early_stopping=False,
                 validation_fraction=0.1, batch_size=1, shuffle=True, fit_intercept=True,
                 scale_target=True, seed=0, progress=False):
        self.hidden = hidden
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.fit_intercept = fit_intercept
        self.scale_target = scale_target
        self.seed = seed
        self.progress = progress

    @classmethod
    def tutorial(cls, **params):
        """The tutorial's model: one pass of per-sample SGD at lr 0.01 over the rows in
        order, on ``x[0]*w[0] + ... + x[n-1]*w[n-1]`` with every weight from 0, no
        intercept, the target as it is, the squared error: ``Regressor(lr=0.01, epochs=1,
        tol=None, shuffle=False, fit_intercept=False, scale_target=False)``. ``params``
        change any parameter (``epochs=5``, ``hidden=(16,)``, ...)."""
        return cls(**{**cls.TUTORIAL, **params})

    def partial_fit(self, X, y):
        """One more pass over the rows of (X, y) (shuffled with ``shuffle``); the first
        call builds the model, and with ``scale_target`` takes the target's mean and scale
        from its chunk. For data that arrives in chunks: with the tutorial's settings
        (``Regressor.tutorial()``: in order, the target as it is), partial_fit over
        consecutive chunks ends exactly where one ``fit`` over all their rows does.
        Returns self."""
        return self._partial_fit(X, y)

    def _settings(self):
        return {**super()._settings(), "loss": LOSSES[_checks.choice("loss", self.loss, LOSSES)],
                "scale_target": _checks.switch("scale_target", self.scale_target)}

    def _checked_target(self, y, n_rows):
        y = _checks.numbers_array("y", super()._checked_target(y, n_rows))
        error = _checks.nonfinite_error(y[:, None], None, what="y")
        if error:
            raise error
        return y

    def _encoding(self, y, classes, partial):
        if not _checks.switch("scale_target", self.scale_target):
            return {"target_mean_": 0.0, "target_scale_": 1.0}
        scale = float(np.std(y))
        return {"target_mean_": float(np.mean(y)), "target_scale_": scale if scale > 0 else 1.0}

    def _same_encoding(self, y, classes):
        return vars(self)

    def _n_outputs(self, encoding):
        return 1

    def _columns(self, y, encoding):
        if encoding["target_mean_"] == 0.0 and encoding["target_scale_"] == 1.0:
            return y  # as it is, to the bit
        return (y - encoding["target_mean_"]) / encoding["target_scale_"]

    def _loss(self, outputs, targets):
        return LOSSES[self.loss](outputs[0], targets[0])

    def predict(self, X):
        """The model's output for each row of X, as a float64 array of shape (n_samples,)."""
        return self._prediction(self._outputs(X))

    def _prediction(self, outputs):
        if self.target_mean_ == 0.0 and self.target_scale_ == 1.0:
            return outputs[:, 0]
        return outputs[:, 0] * self.target_scale_ + self.target_mean_

    def score(self, X, y):
        """R^2 of the predictions for X against y: 1 is perfect, 0 is as good as always
        predicting the mean of y (scikit-learn's ``r2_score``)."""
        self._check_fitted()
        X = self._checked_features(X, reset=False)[0]
        y = self._checked_target(y, len(X))
        residual = float(np.sum((y - self._prediction(self._outputs(X, checked=True))) ** 2))
        total = float(np.sum((y - y.mean()) ** 2))
        if total == 0.0:  # a constant y: perfect or not, as r2_score says
            return 1.0 if residual == 0.0 else 0.0
        return 1.0 - residual / total

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(estimator_type="regressor", target_tags=TargetTags(required=True),
                    regressor_tags=RegressorTags(), input_tags=InputTags())


class Classifier(_Network):
    """A classifier trained by ``Tape.fit``: multinomial logistic regression, or an MLP.

    Two classes use one logit and ``LogLossNode`` (binary cross-entropy on the logit); more
    use one logit per class and ``ourdl.nn.cross_entropy`` (softmax cross-entropy). The
    defaults work on ordinary data in ``make_pipeline(StandardScaler(), ourdl.Classifier())``:
    per-sample SGD at lr 0.01, the rows shuffled each epoch, until the training loss stops
    improving (at most 200 epochs).

    Parameters
    ----------
    hidden : tuple of int, default ()
        The sizes of the hidden layers. ``()`` is (multinomial) logistic regression, its
        weights starting at 0; ``(32,)`` is ``n -> 32 -> logits`` of ``ourdl.nn.Linear``
        layers, initialized as ``ourdl.nn.MLP`` does.
    activation : {"tanh", "relu", "sigmoid"}, default "tanh"
        Of the hidden layers.
    optimizer : {"sgd", "momentum", "adam"} or an ``ourdl.optim`` object, default "sgd"
    lr : float, default 0.01
    epochs : int, default 200
        The most passes ``fit`` makes over the data (``partial_fit`` makes one).
    tol : float or None, default 1e-3
        ``fit`` stops once the epoch's mean training loss has not fallen below the best
        so far minus ``tol`` for ``n_iter_no_change`` epochs in a row; ``ConvergenceWarning``
        if ``epochs`` ran out first. None: exactly ``epochs`` passes.
    n_iter_no_change : int, default 5
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows (drawn with ``seed``, each class in proportion), stop on
        their loss instead of the training loss, and keep the parameters of the epoch where
        it was lowest (scikit-learn's ``early_stopping``). Each epoch's held-out loss is in
        ``history_``.
    validation_fraction : float, default 0.1
        The share of the rows held out with ``early_stopping``.
    batch_size : int, default 1
    shuffle : bool, default True
    fit_intercept : bool, default True
        A trainable bias on each logit.
    seed : int or None, default 0
        The hidden layers' initial weights, then the order of the rows when shuffling, are
        drawn from ``numpy.random.default_rng(seed)``.
    progress : bool, default False

    Attributes
    ----------
    classes_ : the labels seen, sorted (ints, strings, ...); ``predict`` returns them.
    tape_, inputs_, targets_, outputs_ : the compiled graph (the loss at its root), the
        input nodes, the target nodes (one, or one per class) and the logit nodes.
    layers_, coefs_, intercepts_, optimizer_, history_, n_features_in_,
    feature_names_in_ : as ``Regressor``'s.
    """

    def __init__(self, hidden=(), activation="tanh", optimizer="sgd", lr=0.01, epochs=200,
                 tol=1e-3, n_iter_no_change=5, early_stopping=False, validation_fraction=0.1,
                 batch_size=1, shuffle=True, fit_intercept=True, seed=0, progress=False):
        self.hidden = hidden
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.fit_intercept = fit_intercept
        self.seed = seed
        self.progress = progress

    def partial_fit(self, X, y, classes=None):
        """One more pass over the rows of (X, y); the first call builds the model and needs
        ``classes``, every label that any chunk will hold. Returns self."""
        return self._partial_fit(X, y, classes)

    def _checked_target(self, y, n_rows):
        y = super()._checked_target(y, n_rows)
        if y.dtype.kind == "c":
            raise ValueError("Unknown label type: complex numbers are not class labels")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)):
                row = int(np.flatnonzero(~np.isfinite(y))[0])
                raise ValueError(f"y has {y[row]} at row {row}: every label must be finite")
            if np.any(y != np.round(y)):
                raise ValueError("Unknown label type: continuous. A classifier takes class "
                                 "labels (ints, strings, ...); for a numeric target use "
                                 "ourdl.Regressor")
        return y

    def _encoding(self, y, classes, partial):
        if partial and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit: "
                             "every label that any chunk will hold")
        classes = _labels(y if classes is None else _checked_classes(classes))
        if len(classes) < 2:
            raise ValueError(f"Classifier needs samples of at least 2 classes in the data, "
                             f"but the data contains only one class: {classes.tolist()[0]!r}")
        self._check_known(y, classes)
        return {"classes_": classes}

    def _same_encoding(self, y, classes):
        if classes is not None and not np.array_equal(_labels(_checked_classes(classes)),
                                                      self.classes_):
            raise ValueError(f"classes={list(classes)!r} is not the classes_ of the first "
                             f"partial_fit, {self.classes_.tolist()!r}")
        self._check_known(y, self.classes_)
        return vars(self)

    @staticmethod
    def _check_known(y, classes):
        unknown = np.setdiff1d(_labels(y), classes)
        if len(unknown):
            raise ValueError(f"y holds labels not among classes {classes.tolist()!r}: "
                             f"{unknown[:5].tolist()!r}")

    def _n_outputs(self, encoding):
        n_classes = len(encoding["classes_"])
        return 1 if n_classes == 2 else n_classes

    def _columns(self, y, encoding):
        index = np.searchsorted(encoding["classes_"], y)
        if len(encoding["classes_"]) == 2:
            return index.astype(np.float64)  # the target of the one logit: 1 for classes_[1]
        return np.eye(len(encoding["classes_"]))[index]

    def _strata(self, columns):
        return columns if columns.ndim == 1 else columns.argmax(axis=1)  # each row's class

    def _loss(self, outputs, targets):
        if len(outputs) == 1:
            return LogLossNode(outputs[0], targets[0])
        return nn.cross_entropy(outputs, targets)

    def decision_function(self, X):
        """The logits: shape (n_samples,) for two classes (positive: ``classes_[1]``),
        (n_samples, n_classes) for more."""
        logits = self._outputs(X)
        return logits[:, 0] if logits.shape[1] == 1 else logits

    def predict_proba(self, X):
        """The probability of each class, shape (n_samples, n_classes); rows sum to 1."""
        logits = self._outputs(X)
        if logits.shape[1] == 1:
            positive = np.exp(-np.logaddexp(0.0, -logits[:, 0]))  # sigmoid, never overflowing
            return np.column_stack([1.0 - positive, positive])
        exps = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exps / exps.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """The log of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most likely class of each row, one of ``classes_``."""
        return self._prediction(self._outputs(X))

    def _prediction(self, logits):
        best = (logits[:, 0] > 0).astype(int) if logits.shape[1] == 1 else logits.argmax(axis=1)
        return self.classes_[best]

    def score(self, X, y):
        """The accuracy: the fraction of rows of X whose predicted class is y's."""
        self._check_fitted()
        X = self._checked_features(X, reset=False)[0]
        y = self._checked_target(y, len(X))
        return float(np.mean(self._prediction(self._outputs(X, checked=True)) == y))

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())


class NotFittedError(ValueError, AttributeError):
    """predict before fit, without scikit-learn (with it, its NotFittedError is raised)."""


class ConvergenceWarning(UserWarning):
    """fit ran out of epochs before the loss settled, without scikit-learn (with it, its
    ConvergenceWarning is raised)."""


# --- helpers -------------------------------------------------------------------------------

def _parameter_names(cls):
    return [name for name in inspect.signature(cls).parameters]


def _same(a, b):
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - a value that cannot say: show it
        return False


def _sklearn_class(module, name, fallback):
    """scikit-learn's class of that name when the program uses scikit-learn (has imported
    it: importing it only to raise or warn would take a second or more), else fallback."""
    if sys.modules.get("sklearn") is None:
        return fallback
    try:
        return getattr(__import__(f"sklearn.{module}", fromlist=[name]), name)
    except ImportError:
        return fallback


def _optimizer(optimizer):
    if isinstance(optimizer, optim.SGD):
        return optimizer
    name = _checks.choice("optimizer", optimizer, OPTIMIZERS)
    return OPTIMIZERS[name]()  # lr None: each node's own, which is the lr parameter


def _labels(y):
    """The distinct labels of y, sorted."""
    try:
        return np.unique(y)
    except TypeError:
        raise TypeError("y mixes labels of types that cannot be sorted together (e.g. ints "
                        "and strings): give every label the same type") from None


def _checked_classes(classes):
    classes = np.asarray(classes)
    if classes.ndim != 1:
        raise ValueError(f"classes must be a 1-D list of labels, not of shape {classes.shape}")
    return classes


def _feature_names(X):
    """The column names of a DataFrame when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "dtypes"):
        return None
    names = np.asarray(columns, dtype=object)
    return names if len(names) and all(isinstance(name, str) for name in names) else None


def _held_out_share(value):
    share = _checks.fraction("validation_fraction", value)
    if share == 0.0:
        raise ValueError("validation_fraction must be above 0 (the share of the rows held out "
                         "for early_stopping), not 0")
    return share


def _split(data, strata, share, seed):
    """(training rows, held-out rows): ``share`` of the rows held out, drawn from
    ``numpy.random.default_rng(seed)`` (within each stratum when strata are given, so that
    every class keeps its proportion)."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(len(data))] if strata is None else \
        [np.flatnonzero(strata == s) for s in np.unique(strata)]
    held = np.concatenate([g[rng.permutation(len(g))][:int(round(share * len(g)))]
                           for g in groups])
    if len(held) == 0 or len(held) == len(data):
        raise ValueError(f"validation_fraction={share} of {len(data)} rows holds out "
                         f"{len(held)} of them: early_stopping needs rows on both sides")
    kept = np.ones(len(data), dtype=bool)
    kept[held] = False
    return data[kept], data[np.sort(held)]


class _Stopping:
    """A Tape.fit callback: stop once the loss (held out if the run has validation data,
    else the training loss) has not fallen below the best so far minus tol for patience
    epochs in a row. With parameters, the best epoch's values are put back at the end."""

    def __init__(self, tol, patience, parameters=None):
        self.tol, self.patience, self.parameters = tol, patience, parameters
        self.best, self.stale, self.kept = math.inf, 0, None

    def __call__(self, stats):
        loss = stats.validation_loss if stats.validation_loss is not None else stats.loss
        self.stale = self.stale + 1 if loss > self.best - self.tol else 0
        if loss < self.best:
            self.best = loss
            if self.parameters is not None:
                self.kept = [p.value for p in self.parameters]
        return self.stale >= self.patience

    def finish(self):
        """Put the best epoch's parameters back (if kept); whether the rule stopped the run."""
        if self.kept is not None:
            for p, value in zip(self.parameters, self.kept):
                p.value = value
        return self.stale >= self.patience
