"""ourdl.Classifier: logistic regression and MLPs of nodes behind scikit-learn's conventions.

The oracle for training is the same graph wired by hand (nn.Linear, then LogLossNode on one
logit for two classes, nn.cross_entropy for more) and trained by Tape.fit: the estimator
must end on the same bits. Then accuracy on ordinary data with the defaults (digits, iris,
breast cancer), labels of any kind, probabilities, partial_fit, scikit-learn's tools and
its own check_estimator, and bad input.
"""
import pickle
import time
import warnings

import numpy as np
import pytest

import ourdl
from ourdl import nn

sklearn = pytest.importorskip("sklearn")
from sklearn import datasets  # noqa: E402
from sklearn.base import clone, is_classifier  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


def blobs(n_classes=3, n_rows=150, seed=0):
    """Points around n_classes centres in 4-D, labelled 0 .. n_classes-1."""
    X, y = datasets.make_blobs(n_rows, n_features=4, centers=n_classes, random_state=seed)
    return StandardScaler().fit_transform(X), y


def same_bits(a, b):
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


def by_hand(n_features, n_classes, hidden=(), seed=0, lr=0.01):
    """The classifier's network wired by hand: (inputs + targets, logits, loss, layers)."""
    rng = np.random.default_rng(seed)
    x = [ourdl.Node() for _ in range(n_features)]
    sizes = [n_features, *hidden, 1 if n_classes == 2 else n_classes]
    layers = [nn.Linear(a, b, activation="tanh" if k < len(sizes) - 2 else None,
                        seed=rng if hidden else 0, lr=lr)
              for k, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    if not hidden:
        for p in layers[0].parameters():
            p.value = 0.0
    logits = x
    for layer in layers:
        logits = layer(logits)
    targets = [ourdl.Node() for _ in logits]
    loss = (ourdl.LogLossNode(logits[0], targets[0]) if n_classes == 2
            else nn.cross_entropy(logits, targets))
    return x + targets, logits, loss, layers, rng


# ------------------------------------------------------------------- the model itself

@pytest.mark.parametrize("n_classes, hidden", [(2, ()), (3, ()), (2, (4,)), (4, (5, 3))])
def test_it_is_the_network_wired_by_hand_bit_for_bit(n_classes, hidden):
    X, y = blobs(n_classes)
    model = ourdl.Classifier(hidden=hidden, epochs=3, tol=None, seed=4).fit(X, y)
    nodes, logits, loss, layers, rng = by_hand(4, n_classes, hidden, seed=4)
    columns = (y[:, None] if n_classes == 2 else np.eye(n_classes)[y]).astype(float)
    history = ourdl.compile(loss).fit(np.column_stack([X, columns]), nodes, epochs=3,
                                      shuffle=True, seed=rng)
    for mine, theirs in zip(model.coefs_ + model.intercepts_,
                            [layer.weights for layer in layers] + [layer.biases for layer in layers]):
        assert same_bits(mine, theirs)
    assert [s.loss for s in model.history_] == [s.loss for s in history]


def test_two_classes_use_one_logit_and_the_log_loss():
    X, y = blobs(2)
    model = ourdl.Classifier().fit(X, y)
    assert type(model.tape_.root) is ourdl.LogLossNode and len(model.outputs_) == 1
    assert model.decision_function(X).shape == (len(X),)
    more = ourdl.Classifier().fit(*blobs(3))
    assert type(more.tape_.root) is ourdl.NegNode and len(more.outputs_) == 3  # cross-entropy
    assert more.decision_function(X).shape == (len(X), 3)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_probabilities_and_predictions_agree_with_the_logits(n_classes):
    X, y = blobs(n_classes)
    model = ourdl.Classifier(hidden=(4,)).fit(X, y)
    proba, logits = model.predict_proba(X), model.decision_function(X)
    assert proba.shape == (len(X), n_classes)
    assert np.allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    if n_classes == 2:
        assert np.allclose(proba[:, 1], 1 / (1 + np.exp(-logits)), rtol=1e-14)
        assert np.array_equal(model.predict(X), np.where(logits > 0, 1, 0))
    else:
        expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        assert np.allclose(proba, expected, rtol=1e-14)
        assert np.array_equal(model.predict(X), logits.argmax(axis=1))
    assert np.allclose(model.predict_log_proba(X), np.log(proba))
    assert model.score(X, y) == np.mean(model.predict(X) == y) > 0.95


def test_extreme_logits_give_finite_probabilities():
    X, y = blobs(2)
    model = ourdl.Classifier().fit(X, y)
    proba = model.predict_proba(X * 1e6)  # logits far beyond exp's range
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [3, 7, 9], [-1.0, 0.5e1, 2.0],
                                    [True, False, True]])
def test_labels_of_any_kind(labels):
    X, y = blobs(len(set(labels)))
    named = np.array(labels, dtype=object if isinstance(labels[0], str) else None)[
        y % len(labels)] if len(set(labels)) == len(labels) else np.array(labels * 50)[:len(X)]
    model = ourdl.Classifier().fit(X, named)
    assert list(model.classes_) == sorted(set(labels))
    assert set(model.predict(X)) <= set(labels)
    assert model.score(X, named) == np.mean(model.predict(X) == named)


def test_string_labels_are_the_same_model_as_their_codes():
    X, y = blobs(3)
    words = np.array(["bird", "cat", "dog"])[y]
    coded, named = ourdl.Classifier().fit(X, y), ourdl.Classifier().fit(X, words)
    assert same_bits(named.decision_function(X), coded.decision_function(X))
    assert list(named.predict(X)) == list(np.array(["bird", "cat", "dog"])[coded.predict(X)])


# --------------------------------------------------------- the defaults on ordinary data

def test_digits_held_out_accuracy_with_the_defaults():
    """scikit-learn's 8x8 digits, a quarter held out (stratified): the MLP of the digits
    example's size, and multinomial logistic regression, each after a StandardScaler."""
    X, y = datasets.load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    scores, seconds = {}, {}
    for hidden in [(32,), ()]:
        chain = make_pipeline(StandardScaler(), ourdl.Classifier(hidden=hidden))
        start = time.perf_counter()
        chain.fit(X_train, y_train)
        seconds[hidden] = time.perf_counter() - start
        scores[hidden] = chain.score(X_test, y_test)
    print(f"digits held out: MLP 64-32-10 {scores[(32,)]:.4f} ({seconds[(32,)]:.2f} s), "
          f"logistic regression {scores[()]:.4f} ({seconds[()]:.2f} s)")
    assert scores[(32,)] >= 0.96  # measured: 0.973 in 0.1 s
    assert scores[()] >= 0.95  # measured: 0.971


@pytest.mark.parametrize("load, least", [(datasets.load_iris, 0.93),
                                         (datasets.load_breast_cancer, 0.95)])
@pytest.mark.parametrize("hidden", [(), (8,)])
def test_ordinary_pipelines_classify_well(load, least, hidden):
    X, y = load(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults converge: no ConvergenceWarning
        scores = cross_val_score(make_pipeline(StandardScaler(), ourdl.Classifier(hidden=hidden)),
                                 X, y)
    assert scores.mean() >= least  # measured: 0.96 to 0.98


# ------------------------------------------------------------------------------ partial_fit

def test_partial_fit_over_chunks_is_one_pass_in_order():
    X, y = blobs(3)
    settings = dict(hidden=(3,), shuffle=False, seed=2)
    chunked = ourdl.Classifier(**settings)
    for start in range(0, len(X), 40):  # the first chunk need not hold every class
        chunked.partial_fit(X[start:start + 40], y[start:start + 40], classes=[0, 1, 2])
    once = ourdl.Classifier(epochs=1, tol=None, **settings).fit(X, y)
    assert same_bits(chunked.decision_function(X), once.decision_function(X))
    assert len(chunked.history_) == 4


def test_partial_fit_needs_the_classes_first_and_keeps_them():
    X, y = blobs(3)
    model = ourdl.Classifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(X, y)
    model.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert list(model.classes_) == [0, 1, 2] and len(model.outputs_) == 3
    model.partial_fit(X, y)  # later calls may leave classes out
    with pytest.raises(ValueError, match=r"classes=\[0, 1\] is not the classes_"):
        model.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"y holds labels not among classes \[0, 1, 2\]: \[5\]"):
        model.partial_fit(X[:3], [0, 1, 5])
    assert len(model.history_) == 2


# ------------------------------------------------------------------- scikit-learn's tools

def test_params_clone_repr_and_kind():
    model = ourdl.Classifier(hidden=(16,), lr=0.05)
    assert repr(model) == "Classifier(hidden=(16,), lr=0.05)"
    assert clone(model).get_params() == model.get_params() and is_classifier(model)


def test_pickle_round_trip():
    X, y = blobs(3)
    model = ourdl.Classifier(hidden=(5,)).fit(X, np.array(["a", "b", "c"])[y])
    copy = pickle.loads(pickle.dumps(model))
    assert same_bits(copy.predict_proba(X), model.predict_proba(X))
    assert list(copy.classes_) == ["a", "b", "c"]
    copy.partial_fit(X, copy.predict(X)), model.partial_fit(X, model.predict(X))
    assert same_bits(copy.decision_function(X), model.decision_function(X))


def test_grid_search_with_two_joblib_workers_matches_one():
    X, y = datasets.load_iris(return_X_y=True)
    grid = {"classifier__hidden": [(), (4,)], "classifier__lr": [0.01, 0.03]}
    chain = make_pipeline(StandardScaler(), ourdl.Classifier())
    chain.steps[-1] = ("classifier", chain.steps[-1][1])
    searches = [GridSearchCV(chain, grid, cv=3, n_jobs=n_jobs).fit(X, y) for n_jobs in (1, 2)]
    one, two = (search.cv_results_["mean_test_score"] for search in searches)
    assert list(one) == list(two) and min(one) > 0.9
    assert same_bits(searches[1].predict_proba(X), searches[0].predict_proba(X))


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("y, error, message", [
    (np.linspace(0, 1, 150), ValueError, "Unknown label type: continuous"),
    (np.zeros(150), ValueError, "needs samples of at least 2 classes.*only one class: 0.0"),
    (np.array([1, "a"] * 75, dtype=object), TypeError, "y mixes labels of types"),
    (np.r_[np.nan, np.zeros(149)], ValueError, "y has nan at row 0"),
    (np.zeros((150, 2)), ValueError, r"y must be 1-D, one target per row of X, not of shape"),
    (np.zeros(10), ValueError, "X has 150 rows but y has 10"),
])
def test_bad_labels(y, error, message):
    X, _ = blobs()
    with pytest.raises(error, match=message):
        ourdl.Classifier().fit(X, y)


def test_bad_parameters_fail_in_fit():
    X, y = blobs()
    for setting, error in [({"hidden": (0,)}, ValueError), ({"lr": "0.1"}, TypeError),
                           ({"tol": -1.0}, ValueError), ({"n_iter_no_change": 0}, ValueError),
                           ({"activation": "gelu"}, ValueError), ({"optimizer": None}, ValueError)]:
        model = ourdl.Classifier(**setting)
        with pytest.raises(error):
            model.fit(X, y)
        assert not model.__sklearn_is_fitted__()


def test_predict_before_fit_names_fit():
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "predict_proba", "decision_function"):
        with pytest.raises(NotFittedError, match="call fit"):
            getattr(ourdl.Classifier(), method)(np.ones((2, 3)))


# scikit-learn's own checks. Nothing is skipped but check_array_api_input, which
# scikit-learn runs only with SCIPY_ARRAY_API=1 (ourdl takes numpy arrays only).
@parametrize_with_checks([
    ourdl.Classifier(),
    ourdl.Classifier(hidden=(4,), optimizer="adam", batch_size=3, epochs=50),
])
def test_scikit_learn_check(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "does not inherit BaseEstimator"
        check(estimator)


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_readme_digits_block_prints_what_its_comment_says(readme, capsys):
    from pathlib import Path
    import re

    text = (Path(__file__).resolve().parents[1] / readme).read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", text, re.S)
               if "ourdl.Classifier(" in b]
    exec(compile(block, f"{readme} Classifier block", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert f"print(round(model.score(X_test, y_test), 3))   # {printed}" in block
    assert float(printed) >= 0.96
