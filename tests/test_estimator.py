"""bitflip.BitflipClassifier against scikit-learn's own estimator checks, in a Pipeline and
cross_val_score, streaming with partial_fit, and handed to a board as a model file; plus
the lazy library entry points bitflip.train / bitflip.compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bitflip.estimator import BitflipClassifier
from conftest import run_micropython
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

# checks that cannot run here, and why (everything else must pass)
NOT_RUN = {
    "check_array_api_input": "needs SCIPY_ARRAY_API=1 and an array-API library; the estimator is numpy only",
    "check_classifier_data_not_an_array": "needs pandas, which is not a dependency",
}


@pytest.mark.slow
def test_passes_the_scikit_learn_estimator_checks() -> None:
    results = check_estimator(BitflipClassifier(), on_fail=None)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == {}
    assert skipped <= set(NOT_RUN), skipped - set(NOT_RUN)
    assert sum(r["status"] == "passed" for r in results) >= 50


def _digits() -> tuple[np.ndarray, ...]:
    X, y = load_digits(return_X_y=True)
    return tuple(train_test_split(X, y, test_size=0.2, stratify=y, random_state=0))


def test_matches_bitflip_train_on_the_same_data() -> None:
    # the same split, encoding, model, seed and epoch order as `bitflip train --board host`
    import bitflip

    xtr, xte, ytr, yte = _digits()
    clf = BitflipClassifier(
        prototypes=100, weights="binary", encoding="thermo:4+mi:50", epochs=3, rule={"k_out": 4}
    ).fit(xtr, ytr)  # the digits defaults (hparams)
    summary = bitflip.train("digits", "host", epochs=3, val=0)  # the estimator trains on everything it gets
    assert clf.reference_.digest() == summary["weights_sha256"]
    assert clf.score(xte, yte) == summary["test_accuracy"]


def test_pipeline_cross_val_score_and_string_labels() -> None:
    xtr, xte, ytr, yte = _digits()
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    pipe = make_pipeline(StandardScaler(), BitflipClassifier(prototypes=10, epochs=3))
    scores = cross_val_score(pipe, xtr[:600], names[ytr[:600]], cv=3)
    assert scores.min() > 0.8
    pipe.fit(xtr, names[ytr])
    assert set(pipe.predict(xte)) <= set(names)
    assert pipe.score(xte, names[yte]) > 0.85
    assert pipe[-1].decision_function(pipe[0].transform(xte)).shape == (len(xte), 10)


def test_binary_decision_function_is_class_one_minus_class_zero() -> None:
    xtr, _, ytr, _ = _digits()
    keep = ytr < 2
    clf = BitflipClassifier(epochs=2).fit(xtr[keep], ytr[keep])
    d = clf.decision_function(xtr[keep])
    assert d.shape == (keep.sum(),)
    assert np.array_equal(clf.predict(xtr[keep]), clf.classes_[(d > 0).astype(int)])


def test_partial_fit_streams_like_one_epoch_of_fit_in_order() -> None:
    xtr, xte, ytr, yte = _digits()
    clf = BitflipClassifier(prototypes=10)
    for i in range(0, len(xtr), 200):
        clf.partial_fit(xtr[i : i + 200], ytr[i : i + 200], classes=np.arange(10))
    assert clf.reference_.step == len(xtr)
    assert clf.score(xte, yte) > 0.8
    with pytest.raises(ValueError, match="needs classes"):
        BitflipClassifier().partial_fit(xtr, ytr)


def test_to_model_file_runs_on_the_board(tmp_path: Path) -> None:
    xtr, xte, ytr, _ = _digits()
    names = np.array(list("abcdefghij"))
    clf = BitflipClassifier(prototypes=6, epochs=2).fit(xtr, names[ytr])
    mf = clf.to_model_file(tmp_path / "m.bfm")
    assert mf.labels == list("abcdefghij")
    x = xte[:40].astype(int)
    out = run_micropython(
        f"""
from bitflip.model import Model
m = Model.load('m.bfm')
print(''.join(m.labels[m.predict(v)] for v in {x.tolist()}))
""",
        cwd=tmp_path,
    )
    assert out.strip() == "".join(clf.predict(xte[:40]))


def test_import_bitflip_stays_cheap() -> None:
    code = (
        "import sys, bitflip; print(json.dumps(sorted(m for m in ('numpy', 'sklearn', 'click') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
    import bitflip

    assert callable(bitflip.train) and callable(bitflip.compare) and bitflip.BitflipClassifier is BitflipClassifier


def test_compare_as_a_library_function() -> None:
    import bitflip

    res = bitflip.compare("digits", epochs=1, limit=300, only=("rule", "logreg"))
    assert [r["method"] for r in res["rows"]] == ["rule", "logreg"]
