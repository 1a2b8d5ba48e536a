import numpy as np
import pytest
from sklearn import metrics as sk

from passage import metrics


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.uniform(size=200), 2)  # rounding makes ties
    assert metrics.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s))
    assert metrics.accuracy(y, s) == pytest.approx(sk.accuracy_score(y, s > 0.5))
    k = rng.integers(0, 4, 200)
    p = rng.uniform(size=(200, 4))
    assert metrics.f1_macro(k, p) == pytest.approx(sk.f1_score(k, p.argmax(1), average="macro"))
    t, q = rng.normal(size=50), rng.normal(size=50)
    assert metrics.mse(t, q) == pytest.approx(sk.mean_squared_error(t, q))
    assert metrics.mae(t, q) == pytest.approx(sk.mean_absolute_error(t, q))
    assert metrics.r2(t, q) == pytest.approx(sk.r2_score(t, q))


def test_demo_learns_the_bundled_sample(capsys):
    from passage.demo import main

    result = main(["--epochs", "2"])
    assert result["accuracy"] > 0.70  # chance is 0.50 on the balanced held-out reviews
    assert result["roc_auc"] > 0.80
    assert "predictions" in capsys.readouterr().out


def test_load_imdb_reads_a_split_and_can_drop_line_breaks(tmp_path):
    import json

    from passage.datasets import load_imdb
    from passage.files import open_text

    rows = [{"id": "train_pos_0", "text": "Great.<br /><br />Loved it", "label": 1, "rating": 9},
            {"id": "train_neg_0", "text": "Dull", "label": 0, "rating": 2}]
    with open_text(tmp_path / "train.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    assert load_imdb(tmp_path) == (["Great.<br /><br />Loved it", "Dull"], [1, 0])
    assert load_imdb(tmp_path, line_breaks=False) == (["Great.  Loved it", "Dull"], [1, 0])
    assert load_imdb(tmp_path, label="rating")[1] == [9, 2]
