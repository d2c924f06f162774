"""ourdl.Regressor: the tutorial's model (and deeper ones) behind scikit-learn's fit/predict.

The oracle for training is the same graph wired by hand and trained by Tape.fit: the
estimator must end on the same bits. Then scikit-learn's conventions (its own
check_estimator, clone, cross-validation, grid search with two joblib workers, a Pipeline,
pickling), partial_fit over a CSV file read in chunks, and every bad input.
"""
import math
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import ourdl
from ourdl import nn

N_FEATURES = 5

try:
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:  # the checks of scikit-learn's conventions need scikit-learn
    parametrize_with_checks = None


def data(n_rows=300, n_features=N_FEATURES, seed=0):
    """Features in [0, 1), as the tutorial's normalized columns, and a noisy linear target."""
    rng = np.random.default_rng(seed)
    X = rng.random((n_rows, n_features))
    y = X @ np.linspace(-1.0, 1.0, n_features) + 0.5 + 0.01 * rng.standard_normal(n_rows)
    return X, y


def same_bits(a, b):
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


# --------------------------------------------------------------------- the models themselves

def tutorial_model(n_features, lr=0.01, fit_intercept=False, loss=ourdl.MSENode):
    """The tutorial's model wired by hand: x[i] * w[i], w[i] from 0, summed left to right."""
    x = [ourdl.Node() for _ in range(n_features)]
    w = [ourdl.Node(Flag=1, lr=lr) for _ in range(n_features)]
    total = ourdl.MulNode(x[0], w[0])
    for i in range(1, n_features):
        total = ourdl.AddNode(total, ourdl.MulNode(x[i], w[i]))
    params = list(w)
    if fit_intercept:
        b = ourdl.Node(Flag=1, lr=lr)
        total = ourdl.AddNode(total, b)
        params.append(b)
    y = ourdl.Node()
    return ourdl.compile(loss(total, y)), x + [y], params


@pytest.mark.parametrize("settings", [
    {},
    {"fit_intercept": True, "epochs": 3, "shuffle": True, "seed": 5, "batch_size": 4},
    {"loss": "mae", "lr": 0.05, "epochs": 2},
])
def test_no_hidden_layers_is_the_tutorials_model_bit_for_bit(settings):
    X, y = data()
    model = ourdl.Regressor.tutorial(**settings).fit(X, y)
    loss = {"mse": ourdl.MSENode, "mae": ourdl.MAENode}[settings.get("loss", "mse")]
    tape, inputs, params = tutorial_model(N_FEATURES, settings.get("lr", 0.01),
                                          settings.get("fit_intercept", False), loss)
    history = tape.fit(np.column_stack([X, y]), inputs, epochs=settings.get("epochs", 1),
                       shuffle=settings.get("shuffle", False), seed=settings.get("seed", 0),
                       batch_size=settings.get("batch_size", 1))
    learned = np.concatenate([model.coefs_[0][:, 0], model.intercepts_[0]])
    assert same_bits(learned, [p.value for p in params])
    assert [s.loss for s in model.history_] == [s.loss for s in history]
    assert same_bits(model.predict(X), tape.predict(X, inputs[:-1]))


def test_hidden_layers_are_nn_mlp_bit_for_bit():
    X, y = data()
    model = ourdl.Regressor.tutorial(hidden=(4, 3), activation="relu", fit_intercept=True, seed=7,
                            shuffle=True, epochs=2, lr=0.05).fit(X, y)
    rng = np.random.default_rng(7)  # the initial weights, then the shuffling
    mlp = nn.MLP([N_FEATURES, 4, 3, 1], activation="relu", seed=rng, lr=0.05)
    x, y_node = [ourdl.Node() for _ in range(N_FEATURES)], ourdl.Node()
    [out] = mlp(x)
    tape = ourdl.compile(ourdl.MSENode(out, y_node))
    tape.fit(np.column_stack([X, y]), x + [y_node], epochs=2, shuffle=True, seed=rng)
    for mine, theirs in zip(model.coefs_ + model.intercepts_, mlp.weights + mlp.biases):
        assert same_bits(mine, theirs)
    assert len(tape.kernels) > 0  # trained as fused dense layers


def test_without_fit_intercept_only_the_output_has_no_bias():
    model = ourdl.Regressor.tutorial(hidden=(3,)).fit(*data())
    assert [b.shape for b in model.intercepts_] == [(3,), (0,)]


def test_the_seed_decides_the_initial_weights():
    X, y = data()
    first, again, other = (ourdl.Regressor.tutorial(hidden=(4,), seed=s).fit(X, y) for s in (1, 1, 2))
    assert same_bits(first.coefs_[0], again.coefs_[0])
    assert not np.array_equal(first.coefs_[0], other.coefs_[0])


def test_it_learns():
    X, y = data(2000)
    model = ourdl.Regressor.tutorial(fit_intercept=True, epochs=5, lr=0.05).fit(X, y)
    assert model.score(X, y) > 0.99
    assert model.coefs_[0][:, 0] == pytest.approx(np.linspace(-1, 1, N_FEATURES), abs=0.02)
    assert model.history_[-1].loss < model.history_[0].loss


# ----------------------------------------------------------------------------- partial_fit

@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_partial_fit_continues_as_another_epoch_would(optimizer):
    """fit(epochs=3) == fit(epochs=1) then two partial_fit: the weights, the optimizer's
    state and the shuffling all carry on. Momentum and Adam need Tape.fit(optimizer=)."""
    X, y = data()
    settings = dict(hidden=(4,), optimizer=optimizer, shuffle=True, seed=3, lr=0.005)
    whole = ourdl.Regressor.tutorial(epochs=3, **settings).fit(X, y)
    steps = ourdl.Regressor.tutorial(**settings).fit(X, y)
    steps.partial_fit(X, y).partial_fit(X, y)
    assert same_bits(steps.coefs_[0], whole.coefs_[0])
    assert same_bits(steps.predict(X), whole.predict(X))
    assert [s.loss for s in steps.history_] == [s.loss for s in whole.history_]


@pytest.mark.parametrize("hidden", [(), (4,)])
def test_partial_fit_over_csv_chunks_equals_one_fit(tmp_path, hidden):
    """A file written and read a chunk at a time (as one larger than memory would be)
    trains to the same bits as one fit over all of its rows, with the tutorial's settings."""
    path = tmp_path / "rows.csv"
    columns = [f"f{j}" for j in range(N_FEATURES)]
    for k in range(4):  # never the whole file in memory while writing
        X, y = data(250, seed=k)
        pd.DataFrame(X, columns=columns).assign(target=y).to_csv(
            path, mode="a", header=k == 0, index=False)

    chunked = ourdl.Regressor.tutorial(hidden=hidden)
    chunks = 0
    for chunk in pd.read_csv(path, chunksize=128):  # 128 does not divide 250: chunks straddle
        chunked.partial_fit(chunk[columns], chunk["target"])
        chunks += 1
    whole = pd.read_csv(path)
    once = ourdl.Regressor.tutorial(hidden=hidden).fit(whole[columns], whole["target"])

    assert chunks == 8 and len(chunked.history_) == 8
    for mine, theirs in zip(chunked.coefs_ + chunked.intercepts_, once.coefs_ + once.intercepts_):
        assert same_bits(mine, theirs)
    assert list(chunked.feature_names_in_) == columns


def test_partial_fit_first_call_builds_and_fit_starts_over():
    X, y = data()
    fresh = ourdl.Regressor.tutorial(hidden=(3,)).fit(X, y)
    model = ourdl.Regressor.tutorial(hidden=(3,)).partial_fit(X, y)
    assert same_bits(model.coefs_[0], fresh.coefs_[0])
    model.partial_fit(X, y)
    assert not np.array_equal(model.coefs_[0], fresh.coefs_[0])
    model.fit(X, y)
    assert same_bits(model.coefs_[0], fresh.coefs_[0]) and len(model.history_) == 1


def test_partial_fit_refuses_other_features_and_changes_nothing():
    X, y = data()
    model = ourdl.Regressor.tutorial().fit(X, y)
    before = model.predict(X)
    with pytest.raises(ValueError, match="X has 4 features, but Regressor is expecting 5"):
        model.partial_fit(X[:, :4], y)
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="X has nan in column 2 at row 7"):
        model.partial_fit(bad, y)
    assert same_bits(model.predict(X), before) and len(model.history_) == 1


# ------------------------------------------------------------------------- bad input, errors

def test_predict_before_fit_names_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="call fit"):
        ourdl.Regressor.tutorial().predict(np.ones((2, 3)))


def test_without_scikit_learn():
    """ourdl imports without scikit-learn, and the estimator works without it."""
    program = """
import sys
sys.modules["sklearn"] = None  # as if not installed: importing it raises ImportError
import numpy as np, ourdl
from ourdl.estimator import NotFittedError
X = np.random.default_rng(0).random((50, 2)); y = X.sum(axis=1)
try:
    ourdl.Regressor.tutorial().predict(X)
except NotFittedError as error:
    print("not fitted:", error)
model = ourdl.Regressor.tutorial(hidden=(3,), fit_intercept=True, epochs=50, lr=0.05)
print(model.fit(X, y).score(X, y) > 0.9)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "not fitted: This Regressor instance is not fitted yet: call fit (or partial_fit) "
        "with training data first.", "True"]
    done = subprocess.run([sys.executable, "-c", "import sys, ourdl; print('sklearn' in "
                           "sys.modules)"], capture_output=True, text=True, timeout=120)
    assert done.stdout == "False\n", done.stderr


@pytest.mark.parametrize("setting, error, message", [
    ({"hidden": "16,16"}, TypeError, "hidden must be a list of sizes, not a str"),
    ({"hidden": (16, 0)}, ValueError, r"hidden\[1\] must be at least 1, not 0"),
    ({"activation": "gelu"}, ValueError, "activation must be one of .*'tanh'.*not 'gelu'"),
    ({"loss": "l2"}, ValueError, "loss must be one of 'mse', 'mae', 'huber', not 'l2'"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'sgd', 'momentum', 'adam'"),
    ({"lr": 0}, ValueError, "lr must be a positive number, not 0"),
    ({"lr": float("nan")}, ValueError, "lr must be a positive number, not nan"),
    ({"lr": "0.1"}, TypeError, "lr must be a number, not str"),
    ({"lr": True}, TypeError, "lr must be a number, not bool"),
    ({"lr": 10 ** 400}, ValueError, r"lr must be a positive number, not 1000000000\d{30}\.\.\. "
                                    r"\(401 characters\)"),
    ({"lr": -10 ** 400}, ValueError, r"lr must be a positive number, not -10000"),
    ({"epochs": 0}, ValueError, "epochs must be at least 1, not 0"),
    ({"epochs": "2"}, TypeError, "epochs must be an integer, not str"),
    ({"epochs": 2.0}, TypeError, "epochs must be an integer, not float"),
    ({"batch_size": "4"}, TypeError, "batch_size must be an integer, not str"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ({"fit_intercept": "no"}, TypeError, "fit_intercept must be True or False"),
    ({"seed": -1}, ValueError, "seed must be at least 0, not -1"),
])
def test_bad_parameters_fail_in_fit_and_leave_the_fitted_model(setting, error, message):
    X, y = data()
    model = ourdl.Regressor.tutorial(**setting)  # __init__ only stores, as scikit-learn requires
    with pytest.raises(error, match=message):
        model.fit(X, y)
    assert not model.__sklearn_is_fitted__()
    model = ourdl.Regressor.tutorial().fit(X, y)
    before = model.predict(X)
    with pytest.raises(error, match=message):
        model.set_params(**setting).fit(X[:10], y[:10])
    assert same_bits(model.predict(X), before)


@pytest.mark.parametrize("setting", [{"epochs": "2"}, {"lr": "0.1"}, {"batch_size": "4"},
                                     {"shuffle": "yes"}, {"progress": "no"}])
def test_bad_training_settings_fail_before_the_model_is_built(setting, monkeypatch):
    def built(*args, **kwargs):
        raise AssertionError("a model was built before its settings were checked")
    monkeypatch.setattr(nn.Linear, "__init__", built)
    with pytest.raises(TypeError, match="must be"):
        ourdl.Regressor.tutorial(hidden=(4,), **setting).fit(*data())


def test_a_learning_rate_may_be_any_real_number_type():
    from fractions import Fraction
    X, y = data()
    expected = ourdl.Regressor.tutorial(lr=0.5).fit(X, y).coefs_[0]
    for lr in (np.float64(0.5), np.float32(0.5), Fraction(1, 2)):
        assert same_bits(ourdl.Regressor.tutorial(lr=lr).fit(X, y).coefs_[0], expected), lr


@pytest.mark.parametrize("X, y, error, message", [
    (np.ones(5), np.ones(5), ValueError, "X must be 2-D, one row per sample, not 1-D. Reshape"),
    (np.ones((0, 2)), np.ones(0), ValueError, r"Found array with 0 sample\(s\)"),
    (np.ones((3, 2)), np.ones(4), ValueError, "X has 3 rows but y has 4: one target per row"),
    (np.ones((3, 2)), None, ValueError, "requires y to be passed"),
    (np.ones((3, 2)), np.ones((3, 2)), ValueError, r"y must be 1-D, one target per row of X, "
                                                   r"not of shape \(3, 2\)"),
    (np.array([["1", "x"]], dtype=object), np.ones(1), TypeError, "X holds values that are "
                                                                    "not numbers"),
    (np.array([["a", "b"]]), np.ones(1), TypeError, "X must hold numbers, not <U1 values"),
    (np.ones((2, 2)) * 1j, np.ones(2), ValueError, "Complex data not supported"),
    (np.ones((2, 2)), np.array([1.0, np.inf]), ValueError, "y has inf at row 1: every value must be finite"),
    (pd.DataFrame({"a": [1.0, np.nan]}), np.ones(2), ValueError, "X has nan in column a at row 1"),
])
def test_bad_data(X, y, error, message):
    with pytest.raises(error, match=message):
        ourdl.Regressor.tutorial().fit(X, y)


def test_divergence_raises_and_fit_keeps_the_model_it_had():
    X, y = data()
    model = ourdl.Regressor.tutorial().fit(X, y)
    before = model.predict(X)
    with pytest.raises(FloatingPointError, match="training diverged"):
        model.set_params(lr=1e6).fit(X * 1e3, y)
    assert same_bits(model.predict(X), before)


def test_column_vector_y_warns_and_is_used():
    from sklearn.exceptions import DataConversionWarning

    X, y = data()
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        model = ourdl.Regressor.tutorial().fit(X, y[:, None])
    assert same_bits(model.predict(X), ourdl.Regressor.tutorial().fit(X, y).predict(X))


def test_dataframe_feature_names():
    X, y = data()
    frame = pd.DataFrame(X, columns=list("abcde"))
    model = ourdl.Regressor.tutorial().fit(frame, pd.Series(y))
    assert list(model.feature_names_in_) == list("abcde") and model.n_features_in_ == 5
    with pytest.raises(ValueError, match="The feature names should match"):
        model.predict(frame[list("edcba")])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(X)
    model.fit(X, y)  # refit on an array: the names of the earlier fit are gone
    assert not hasattr(model, "feature_names_in_")


# ------------------------------------------------------------------- scikit-learn's tools

def test_params_clone_and_repr():
    base = pytest.importorskip("sklearn.base")
    model = ourdl.Regressor(hidden=(8, 8), optimizer="adam", lr=0.01)
    assert model.get_params()["hidden"] == (8, 8)
    assert repr(model) == "Regressor(hidden=(8, 8), optimizer='adam', lr=0.01)"
    copy = base.clone(model.set_params(epochs=3))
    assert copy.get_params() == model.get_params() and copy is not model
    assert base.is_regressor(model)
    with pytest.raises(ValueError, match="Invalid parameter 'max_iter' for estimator"):
        model.set_params(max_iter=3)


def test_pickle_round_trip_predicts_the_same_and_trains_on():
    X, y = data()
    model = ourdl.Regressor.tutorial(hidden=(6, 4), fit_intercept=True, shuffle=True).fit(X, y)
    copy = pickle.loads(pickle.dumps(model))
    assert same_bits(copy.predict(X), model.predict(X))
    assert [s.loss for s in copy.history_] == [s.loss for s in model.history_]
    copy.partial_fit(X, y), model.partial_fit(X, y)  # the shuffling's generator came along
    assert same_bits(copy.predict(X), model.predict(X))


def test_a_deep_graph_pickles():
    """3,000 features: a chain of 3,000 AddNodes, far deeper than Python's recursion limit."""
    X, y = data(20, 3000)
    model = ourdl.Regressor.tutorial(lr=1e-4).fit(X, y)
    copy = pickle.loads(pickle.dumps(model))
    assert same_bits(copy.predict(X), model.predict(X))


def test_cross_val_score_is_the_score_on_each_fold():
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = data()
    model = ourdl.Regressor.tutorial(fit_intercept=True, epochs=2)
    scores = model_selection.cross_val_score(model, X, y, cv=3)
    folds = model_selection.KFold(3).split(X)
    assert list(scores) == [ourdl.Regressor.tutorial(fit_intercept=True, epochs=2).fit(
        X[train], y[train]).score(X[test], y[test]) for train, test in folds]


def test_grid_search_with_two_joblib_workers_matches_one():
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = data()
    grid = {"hidden": [(), (4,)], "lr": [0.01, 0.05]}
    searches = [model_selection.GridSearchCV(ourdl.Regressor.tutorial(epochs=2), grid, cv=3,
                                             n_jobs=n_jobs).fit(X, y) for n_jobs in (1, 2)]
    one, two = (search.cv_results_["mean_test_score"] for search in searches)
    assert list(one) == list(two)
    assert searches[1].best_params_ == searches[0].best_params_
    assert same_bits(searches[1].predict(X), searches[0].predict(X))


def test_pipeline_with_a_scaler():
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    X, y = data()
    X = X * [1, 10, 100, 1000, 10_000]  # without scaling, lr=0.01 would diverge
    chain = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                   ourdl.Regressor.tutorial(fit_intercept=True, epochs=5)).fit(X, y)
    scaled = preprocessing.StandardScaler().fit_transform(X)
    alone = ourdl.Regressor.tutorial(fit_intercept=True, epochs=5).fit(scaled, y)
    assert same_bits(chain.predict(X), alone.predict(scaled))
    assert chain.score(X, y) > 0.99


def test_score_is_r2_score():
    metrics = pytest.importorskip("sklearn.metrics")
    X, y = data()
    model = ourdl.Regressor.tutorial(hidden=(3,)).fit(X, y)
    assert model.score(X, y) == pytest.approx(metrics.r2_score(y, model.predict(X)), abs=1e-14)
    assert model.score(X[:5], np.full(5, 7.0)) == 0.0  # a constant target, as r2_score says


def test_huber_loss():
    """Needs ourdl.HuberNode (the core's loss)."""
    X, y = data()
    model = ourdl.Regressor.tutorial(loss="huber", fit_intercept=True, epochs=3).fit(X, y)
    tape, inputs, params = tutorial_model(N_FEATURES, fit_intercept=True, loss=ourdl.HuberNode)
    tape.fit(np.column_stack([X, y]), inputs, epochs=3)
    assert same_bits(model.coefs_[0][:, 0], [p.value for p in params[:-1]])


if parametrize_with_checks is not None:
    # scikit-learn's own checks, on settings that suit their data. Per-sample SGD at the
    # default lr diverges on X around 100 (check_n_features_in) and raises FloatingPointError,
    # as Tape.fit is meant to; a smaller step trains on all of it. Nothing is skipped but
    # check_array_api_input, which scikit-learn runs only with SCIPY_ARRAY_API=1 (ourdl takes
    # numpy arrays only).
    @parametrize_with_checks([
        ourdl.Regressor(lr=1e-5),
        ourdl.Regressor.tutorial(lr=5e-5, epochs=500),
        ourdl.Regressor.tutorial(hidden=(5,), lr=5e-5, epochs=500, fit_intercept=True),
        ourdl.Regressor.tutorial(hidden=(5,), optimizer="adam", lr=1e-3, epochs=100),
    ])
    def test_scikit_learn_check(estimator, check):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "does not inherit BaseEstimator"
            check(estimator)


# ------------------------------------------------------------- the defaults on ordinary data

def diabetes_scores(*models):
    """Mean R^2 of each model after a StandardScaler, in cross_val_score (cv=5) on
    scikit-learn's diabetes data (442 patients, 10 features, a target from 25 to 346)."""
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = datasets.load_diabetes(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLPRegressor's ConvergenceWarning
        return [model_selection.cross_val_score(make_pipeline(StandardScaler(), model), X,
                                                y).mean() for model in models]


def test_the_default_linear_model_scores_as_linear_regression_does():
    from sklearn.linear_model import LinearRegression

    ours, tutorial, theirs = diabetes_scores(ourdl.Regressor(), ourdl.Regressor.tutorial(),
                                             LinearRegression())
    assert theirs == pytest.approx(0.482, abs=0.005)
    assert abs(ours - theirs) < 0.05  # measured: 0.480
    assert tutorial < -3  # one pass without an intercept on a target around 150


def test_the_default_mlp_scores_as_well_as_mlp_regressor():
    from sklearn.neural_network import MLPRegressor

    ours, theirs = diabetes_scores(ourdl.Regressor(hidden=(100,)), MLPRegressor(random_state=0))
    # measured: 0.479, and MLPRegressor's default -1.05 (it stops after 200 epochs of Adam on
    # the unscaled target, far from converged)
    assert ours > 0.44 and ours > theirs - 0.05


def test_the_tutorial_settings_are_the_defaults_changed_as_documented():
    tutorial = ourdl.Regressor.tutorial(hidden=(4,))
    assert tutorial.get_params() == ourdl.Regressor(
        hidden=(4,), lr=0.01, epochs=1, tol=None, shuffle=False, fit_intercept=False,
        scale_target=False).get_params()
    assert "lr=0.01, epochs=1, tol=None, shuffle=False, fit_intercept=False, " \
           "scale_target=False" in ourdl.Regressor.tutorial.__doc__.replace("\n        ", " ")


def test_fit_stops_when_the_loss_stops_improving():
    X, y = data()
    model = ourdl.Regressor(tol=1e-3, n_iter_no_change=3).fit(X, y)
    losses = [s.loss for s in model.history_]
    assert 3 < len(losses) < 200
    # scikit-learn's rule: the third epoch in a row whose loss is not below the best so
    # far minus tol is the last
    best, stale = math.inf, []
    for loss in losses:
        stale.append(loss > best - 1e-3)
        best = min(best, loss)
    assert stale[-3:] == [True] * 3 and "TTT" not in "".join("TF"[not s] for s in stale[:-1])
    # The passes it made are those of a fit told to make that many: the same draws.
    fixed = ourdl.Regressor(tol=None, epochs=len(losses)).fit(X, y)
    assert same_bits(fixed.predict(X), model.predict(X))
    assert [s.loss for s in fixed.history_] == losses
    assert [s.epoch for s in model.history_] == list(range(1, len(losses) + 1))
    assert same_bits(ourdl.Regressor(tol=1e-3, n_iter_no_change=3).fit(X, y).predict(X),
                     model.predict(X))


def test_running_out_of_epochs_warns():
    X, y = data()
    with pytest.warns(UserWarning, match=r"stopped after epochs=2 passes .* raise epochs"):
        model = ourdl.Regressor(epochs=2).fit(X, y)
    assert len(model.history_) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ourdl.Regressor(epochs=2, tol=None).fit(X, y).history_) == 2
    # A program that does not use scikit-learn gets ourdl's own warning, without the
    # second or more that importing scikit-learn takes.
    program = ("import sys, warnings, numpy as np, ourdl\n"
               "warnings.simplefilter('error')\n"
               "try:\n    ourdl.Regressor(epochs=2).fit(np.eye(3), [1.0, 2.0, 3.0])\n"
               "except Warning as w:\n    print(type(w).__module__, type(w).__name__)\n"
               "print('sklearn' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["ourdl.estimator", "ConvergenceWarning", "False"], done.stderr


def test_the_target_is_scaled_inside_and_back():
    X, y = data()
    model = ourdl.Regressor().fit(X, y)
    assert (model.target_mean_, model.target_scale_) == (np.mean(y), np.std(y))
    big = ourdl.Regressor().fit(X, 1000 * y + 5)  # the same training, in other units
    assert big.predict(X) == pytest.approx(1000 * model.predict(X) + 5, rel=1e-9)
    assert model.score(X, y) > 0.99
    raw = ourdl.Regressor(scale_target=False).fit(X, y)
    assert (raw.target_mean_, raw.target_scale_) == (0.0, 1.0)
    # partial_fit takes the scaling from its first chunk
    chunked = ourdl.Regressor().partial_fit(X[:100], y[:100]).partial_fit(X[100:], y[100:])
    assert chunked.target_mean_ == np.mean(y[:100])


def test_the_estimator_module_imports_on_its_own():
    """No module of the package reads the package root while it is still being built."""
    program = ("import ourdl.estimator as e, numpy as np; X = np.array([[-1.0], [1.0]] * 2); "
               "print(e.Classifier().fit(X, [0, 1, 0, 1]).predict(X[:1])[0], "
               "type(e.Regressor.tutorial().fit(X, [1, 2, 3, 4]).tape_.root).__name__)")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "MSENode"]


@pytest.mark.parametrize("value, error", [("0.1", TypeError), (True, TypeError), (None, TypeError),
                                          (0, ValueError), (-1.0, ValueError),
                                          (float("inf"), ValueError)])
def test_a_bad_learning_rate_is_the_same_error_everywhere(value, error):
    X, y = data()
    attempts = [lambda: ourdl.Regressor(lr=value).fit(X, y),
                lambda: ourdl.Classifier(lr=value).fit(X, y > 0.5)]
    if value is not None:  # an optimizer's lr None means each node's own
        attempts += [lambda: ourdl.optim.SGD(lr=value), lambda: ourdl.optim.Adam(lr=value)]
    for attempt in attempts:
        with pytest.raises(error, match="lr must be a"):
            attempt()


@pytest.mark.parametrize("value, error, message", [(0, ValueError, "must be at least 1, not 0"),
                                                   (2.5, TypeError, "must be an integer"),
                                                   ("4", TypeError, "must be an integer")])
def test_a_bad_layer_size_is_the_same_error_everywhere(value, error, message):
    X, y = data()
    for attempt in (lambda: nn.Linear(value, 1), lambda: nn.MLP([2, value, 1]),
                    lambda: nn.Conv2d(1, value, 3), lambda: ourdl.Regressor(hidden=(value,)).fit(X, y),
                    lambda: ourdl.Classifier(hidden=(4, value)).fit(X, y > 0.5)):
        with pytest.raises(error, match=message):
            attempt()


# ----------------------------------------------------------------------------- early stopping

def test_early_stopping_holds_rows_out_and_keeps_the_best_epochs_parameters():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + rng.normal(scale=0.3, size=300)
    model = ourdl.Regressor(hidden=(8,), lr=0.01, early_stopping=True, validation_fraction=0.2,
                            n_iter_no_change=3, tol=0.0, epochs=60).fit(X, y)
    held_out = [h.validation_loss for h in model.history_]
    assert all(v is not None for v in held_out) and len(held_out) < 60
    best = int(np.argmin(held_out))
    assert len(held_out) == best + 1 + 3  # stopped 3 epochs after the best one

    # The parameters kept are the best epoch's: a run of exactly that many epochs has them.
    exact = ourdl.Regressor(hidden=(8,), lr=0.01, early_stopping=True, validation_fraction=0.2,
                            tol=None, epochs=best + 1).fit(X, y)
    assert [h.validation_loss for h in exact.history_] == held_out[:best + 1]
    assert same_bits(model.predict(X), exact.predict(X))


def test_early_stopping_holds_out_each_class_in_proportion():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.where(X[:, 0] > 1.0, "rare", "common")  # about 16% rare
    clf = ourdl.Classifier(early_stopping=True, validation_fraction=0.25, epochs=5, tol=None)
    from ourdl.estimator import _split
    strata = clf.fit(X, y)._strata(np.searchsorted(clf.classes_, y).astype(float))
    training, held = _split(np.column_stack([X, strata]), strata, 0.25, 0)
    for k in (0, 1):
        assert abs((held[:, -1] == k).mean() - (strata == k).mean()) < 0.03
    assert len(held) + len(training) == 200
    assert all(h.validation_loss is not None for h in clf.history_)


@pytest.mark.parametrize("fraction, match", [(0.0, "above 0"), (1.0, "from 0 up to"),
                                             (0.001, "needs rows on both sides")])
def test_a_validation_fraction_that_leaves_no_rows_is_refused(fraction, match):
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=match):
        ourdl.Regressor(early_stopping=True, validation_fraction=fraction).fit(X, X[:, 0])
