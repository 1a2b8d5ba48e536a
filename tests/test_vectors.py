"""Pretrained vectors: ids aligned with the tokenizer, coverage, unseen words, freezing."""

import gzip

import numpy as np
import pytest

from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.vectors import load_vectors

VECTORS = {"good": [1.0, 0.5, 0.0], "bad": [-1.0, 0.5, 0.0], "film": [0.0, 0.0, 2.0],
           "zebra": [9.0, 9.0, 9.0]}


def write(path, header=False, upper=False):
    lines = [f"{len(VECTORS)} 3"] if header else []
    lines += [f"{w.upper() if upper else w} " + " ".join(map(str, v)) for w, v in VECTORS.items()]
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):  # gzip.open, not open_text: load_vectors' reading is checked
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name, header, upper", [
    ("glove.txt", False, False), ("w2v.txt", True, False), ("glove.txt.gz", False, True)])
def test_rows_follow_tokenizer_ids(tmp_path, name, header, upper):
    tok = Tokenizer(min_df=1).fit(["good film", "bad film", "good plot"])
    matrix, coverage = load_vectors(write(tmp_path / name, header, upper), tok)
    assert matrix.shape == (tok.n_features, 3)
    for w in ("good", "bad", "film"):
        np.testing.assert_array_equal(matrix[tok.encoder[w]], VECTORS[w])
    assert coverage == pytest.approx(3 / 4)  # 'plot' is missing; 'zebra' is not in the vocab
    assert not (matrix[0] != 0).any()  # PAD
    plot = matrix[tok.encoder["plot"]]
    assert np.isfinite(plot).all() and 0 < np.abs(plot).max() < 10  # random, same spread


def test_frozen_embedding_stays_put_and_trainable_one_moves(tmp_path):
    tok = Tokenizer(min_df=1).fit(["good film", "bad film"])
    matrix, _ = load_vectors(write(tmp_path / "v.txt"), tok)
    X, Y = tok.transform(["good film", "bad film"] * 10), [1, 0] * 10
    for trainable in (False, True):
        m = RNN([Embedding(3, tok.n_features, weights=matrix, trainable=trainable),
                 GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0, seed=0)
        m.fit(X, Y, n_epochs=2)
        moved = not np.allclose(m.layers[0].weight.detach().numpy(), matrix)
        assert moved == trainable


def test_bad_vector_files(tmp_path):
    tok = Tokenizer(min_df=1).fit(["good film"])
    bad = tmp_path / "bad.txt"
    bad.write_text("good 1 2 3\nfilm 1 2\n")
    with pytest.raises(ValueError, match="bad.txt:2: 2 numbers, but earlier lines have 3"):
        load_vectors(bad, tok)
    bad.write_text("good 1 x 3\n")
    with pytest.raises(ValueError, match="not a number"):
        load_vectors(bad, tok)
    bad.write_text("\n")
    with pytest.raises(ValueError, match="no vectors"):
        load_vectors(bad, tok)
    with pytest.raises(ValueError, match="not fitted"):
        load_vectors(bad, Tokenizer())
