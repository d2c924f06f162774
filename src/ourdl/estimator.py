"""``ourdl.Regressor``: the tutorial's model, or a deeper one, as a scikit-learn style estimator.

    model = ourdl.Regressor(hidden=(16, 16), optimizer="adam", epochs=5).fit(X, y)
    model.predict(X_new), model.score(X_test, y_test)

Underneath are ourdl's own parts only: the nodes of the model (``hidden=()`` is the
tutorial's: one weight per feature, starting at 0, summed by a chain of ``AddNode``s; else
``ourdl.nn.Linear`` layers), a loss node, one ``ourdl.compile``d tape, ``Tape.fit`` and
``Tape.predict``. It keeps scikit-learn's conventions (``__init__`` stores the parameters
unchanged and ``fit`` checks them; what fit learns ends in ``_``; ``get_params`` /
``set_params``; ``score`` is R^2), so ``clone``, ``Pipeline``, ``cross_val_score`` and
``GridSearchCV(n_jobs=...)`` take it. scikit-learn stays optional: it is imported only when
it asks for the estimator's tags or when an error or warning should be of its type.
"""
import inspect
import warnings

import numpy as np

import ourdl
from ourdl import _checks, _core, nn, optim

__all__ = ["Regressor"]

# The loss nodes by name; looked up when a model is built.
LOSSES = {"mse": "MSENode", "mae": "MAENode", "huber": "HuberNode"}
OPTIMIZERS = {"sgd": optim.SGD, "momentum": optim.Momentum, "adam": optim.Adam}


class Regressor:
    """A regressor trained by ``Tape.fit``: the tutorial's linear model, or an MLP.

    Parameters (stored as given; ``fit`` checks them):

    - ``hidden``: the sizes of the hidden layers. ``()`` is the tutorial's model:
      ``x[0]*w[0] + ... + x[n-1]*w[n-1]``, each ``w[i]`` a ``Node(Flag=1, lr=lr)``
      starting at 0. ``(16, 16)`` is ``n -> 16 -> 16 -> 1`` built of ``ourdl.nn.Linear``
      layers, initialized as ``ourdl.nn.MLP`` does; hidden units always have biases.
    - ``activation``: of the hidden layers, ``"tanh"``, ``"relu"`` or ``"sigmoid"``.
    - ``loss``: ``"mse"`` (the tutorial's), ``"mae"`` or ``"huber"`` (``delta=1``).
    - ``optimizer``: ``"sgd"`` (the tutorial's rule), ``"momentum"``, ``"adam"``, or an
      ``ourdl.optim`` object for other settings. Its state carries over from one
      ``partial_fit`` to the next.
    - ``lr``: every parameter's learning rate (an ``ourdl.optim`` object's own ``lr``
      wins over it).
    - ``epochs``, ``batch_size``, ``shuffle``, ``progress``: as in ``Tape.fit``; ``epochs``
      is for ``fit`` only: ``partial_fit`` makes one pass.
    - ``fit_intercept``: add a trainable bias, starting at 0, to the output (the
      tutorial's model has none).
    - ``seed``: an int, or None for a different run each time. The hidden layers'
      initial weights, then the order of the rows when shuffling, are drawn from
      ``numpy.random.default_rng(seed)``.

    After ``fit``: ``tape_`` (the compiled graph, the loss at its root), ``inputs_`` (one
    input node per feature), ``target_``, ``output_`` (the prediction node), ``layers_``
    (``ourdl.nn.Linear`` layers; ``coefs_`` and ``intercepts_`` hold their values),
    ``optimizer_``, ``history_`` (one ``EpochStats`` per pass since ``fit``),
    ``n_features_in_``, and ``feature_names_in_`` when X was a DataFrame with string
    column names.
    """

    def __init__(self, hidden=(), activation="tanh", loss="mse", optimizer="sgd", lr=0.01,
                 epochs=1, batch_size=1, shuffle=False, fit_intercept=False, seed=0,
                 progress=False):
        self.hidden = hidden
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.fit_intercept = fit_intercept
        self.seed = seed
        self.progress = progress

    # --- training -----------------------------------------------------------------------

    def fit(self, X, y):
        """Build a new model and train it for ``epochs`` passes over (X, y); return self.

        Raises before training on bad parameters or data. On any error the estimator
        keeps what it had before the call.
        """
        X, y, names = self._checked(X, y, reset=True)
        epochs = _checks.count("epochs", self.epochs)  # before the model, which may take long
        model = self._new_model(X.shape[1])
        model["history_"] = self._train(model, X, y, epochs)
        self._keep(model, names)
        return self

    def partial_fit(self, X, y):
        """One more pass over the rows of (X, y), in order (shuffled with ``shuffle``);
        the first call builds the model. For data that arrives in chunks: with the
        defaults, partial_fit over consecutive chunks ends exactly where one fit over all
        their rows does. Returns self."""
        if not self.__sklearn_is_fitted__():
            X, y, names = self._checked(X, y, reset=True)
            model = self._new_model(X.shape[1])
            model["history_"] = self._train(model, X, y, 1)
            self._keep(model, names)
            return self
        X, y, _ = self._checked(X, y, reset=False)
        self.history_ += self._train(vars(self), X, y, 1)
        return self

    def _new_model(self, n_features):
        """The fitted attributes of an untrained model of n_features inputs."""
        hidden = _sizes(self.hidden)
        if self.activation not in nn.ACTIVATIONS:
            raise ValueError(f"activation must be one of {_choices(nn.ACTIVATIONS)}, not "
                             f"{self.activation!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {_choices(LOSSES)}, not {self.loss!r}")
        optimizer = _optimizer(self.optimizer)
        lr = _checks.positive_number("lr", self.lr)
        fit_intercept = _checks.switch("fit_intercept", self.fit_intercept)
        # Tape.fit checks these again; checked here, they fail before a big model is built.
        _checks.count("batch_size", self.batch_size)
        _checks.switch("shuffle", self.shuffle)
        _checks.switch("progress", self.progress)
        rng = np.random.default_rng(_seed(self.seed))
        inputs = [_core.Node(name=f"x[{j}]") for j in range(n_features)]
        if hidden:
            sizes = [n_features, *hidden, 1]
            last = len(sizes) - 2
            layers = [nn.Linear(n_in, n_out, bias=k < last or fit_intercept,
                                activation=self.activation if k < last else None, seed=rng,
                                lr=lr)
                      for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]))]
        else:
            # The tutorial's model: nn.Linear wires x[i] * w[i] exactly as the tutorial does
            # (then + b), and the tutorial's weights start at 0. Its own draws are discarded.
            layers = [nn.Linear(n_features, 1, bias=fit_intercept, seed=0, lr=lr)]
            for parameter in layers[0].parameters():
                parameter.value = 0.0
        output = inputs
        for layer in layers:
            output = layer(output)
        [output] = output
        target = _core.Node(name="y")
        loss = getattr(ourdl, LOSSES[self.loss], None)
        if loss is None:
            raise ValueError(f"loss={self.loss!r} needs ourdl.{LOSSES[self.loss]}, which this "
                             f"build of ourdl does not have")
        return {"inputs_": inputs, "target_": target, "output_": output, "layers_": layers,
                "tape_": ourdl.compile(loss(output, target)), "optimizer_": optimizer,
                "_rng": rng}

    def _train(self, model, X, y, epochs):
        """Passes of model's tape over (X, y); their EpochStats."""
        return model["tape_"].fit(
            np.column_stack([X, y]), model["inputs_"] + [model["target_"]], epochs=epochs,
            shuffle=self.shuffle, seed=model["_rng"], batch_size=self.batch_size,
            progress=self.progress, optimizer=model["optimizer_"])

    def _keep(self, model, names):
        vars(self).pop("feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = names
        self.n_features_in_ = len(model["inputs_"])
        vars(self).update(model)

    # --- using the model ---------------------------------------------------------------

    def predict(self, X):
        """The model's output for each row of X, as a float64 array."""
        self._check_fitted()
        X = self._checked_features(X, reset=False)[0]
        return self.tape_.predict(X, inputs=self.inputs_, output=self.output_)

    def score(self, X, y):
        """R^2 of the predictions for X against y: 1 is perfect, 0 is as good as always
        predicting the mean of y (scikit-learn's ``r2_score``)."""
        self._check_fitted()
        X, y, _ = self._checked(X, y, reset=False)
        residual = float(np.sum((y - self.tape_.predict(
            X, inputs=self.inputs_, output=self.output_)) ** 2))
        total = float(np.sum((y - y.mean()) ** 2))
        if total == 0.0:  # a constant y: perfect or not, as r2_score says
            return 1.0 if residual == 0.0 else 0.0
        return 1.0 - residual / total

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

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(estimator_type="regressor", target_tags=TargetTags(required=True),
                    regressor_tags=RegressorTags(), input_tags=InputTags())

    def _check_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise _sklearn_class("exceptions", "NotFittedError", NotFittedError)(
                f"This {type(self).__name__} instance is not fitted yet: call fit (or "
                f"partial_fit) with training data first.")

    # --- input checks ------------------------------------------------------------------

    def _checked(self, X, y, reset):
        """(X, y, feature names) as float64 arrays, checked; y 1-D, one value per row."""
        X, names = self._checked_features(X, reset)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             f"y is None")
        y = _numbers("y", y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(_sklearn_class("exceptions", "DataConversionWarning", UserWarning)(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel()."), stacklevel=3)
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D, one target per row of X, not of shape {y.shape}")
        if len(y) != len(X):
            raise ValueError(f"X has {len(X):,} rows but y has {len(y):,}: one target per row")
        _check_finite("y", y[:, None], ["y"])
        return X, y, names

    def _checked_features(self, X, reset):
        """(X as a checked float64 array, its feature names or None)."""
        names = _feature_names(X)
        if not reset:
            self._check_feature_names(names)
        X = _numbers("X", X)
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
        _check_finite("X", X, [str(name) for name in names] if names is not None else None)
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


class NotFittedError(ValueError, AttributeError):
    """predict before fit, without scikit-learn (with it, its NotFittedError is raised)."""


# --- helpers -------------------------------------------------------------------------------

def _parameter_names(cls):
    return [name for name in inspect.signature(cls).parameters]


def _same(a, b):
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - a value that cannot say: show it
        return False


def _sklearn_class(module, name, fallback):
    """scikit-learn's class of that name when it is installed, else fallback."""
    try:
        return getattr(__import__(f"sklearn.{module}", fromlist=[name]), name)
    except ImportError:
        return fallback


def _choices(names):
    return ", ".join(repr(name) for name in names)


def _sizes(hidden):
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise TypeError(f"hidden must be a tuple of layer sizes such as (16, 16), or () for "
                        f"the tutorial's model, not {hidden!r}")
    sizes = list(hidden)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"hidden must hold whole numbers of at least 1, not {hidden!r}")
    return [int(size) for size in sizes]


def _optimizer(optimizer):
    if isinstance(optimizer, optim.SGD):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()  # lr None: each node's own, which is the lr parameter
    raise ValueError(f"optimizer must be one of {_choices(OPTIMIZERS)} or an ourdl.optim "
                     f"object, not {optimizer!r}")


def _seed(seed):
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
                        and seed >= 0):
        return seed
    raise ValueError(f"seed must be a whole number of at least 0, or None, not {seed!r}")


def _feature_names(X):
    """The column names of a DataFrame when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "dtypes"):
        return None
    names = np.asarray(columns, dtype=object)
    return names if len(names) and all(isinstance(name, str) for name in names) else None


def _numbers(name, values):
    """values as a float64 array; TypeError for what is not numbers (object arrays of numbers
    are numbers, as scikit-learn has it), ValueError for complex numbers."""
    if hasattr(values, "toarray") and hasattr(values, "nnz"):
        raise TypeError(f"{name} is a sparse matrix: ourdl trains on dense data; pass "
                        f"{name}.toarray() if it fits in memory")
    if np.ma.isMaskedArray(values):
        raise TypeError(f"{name} is a masked array: fill or drop the masked values first")
    array = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} is {array.dtype}")
    if array.dtype.kind not in "biufO":
        raise TypeError(f"{name} must hold numbers, not {array.dtype} values")
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} holds values that are not numbers: {error}") from None


def _check_finite(name, X, columns):
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        label = columns[column] if columns is not None else column
        raise ValueError(f"{name} has {X[row, column]} at row {row}, column {label}: every "
                         f"value must be finite, not NaN or infinity (drop or fill such rows "
                         f"first, e.g. DataFrame.dropna())")
