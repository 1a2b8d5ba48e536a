"""Tagging: CoNLL-U reading, word features, padding-invariant per-token predictions, save/load."""

import gzip

import numpy as np
import pytest

from passage.tagging import Tagger, WordFeatures, read_conllu, word_shape

CONLLU = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3.1\tgone\t_\t_\t_\t_\t_\t_\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_read_conllu_skips_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "t.conllu.gz"  # built by gzip itself, not open_text: the reading is checked
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(CONLLU)
    sents, tags = read_conllu(path)
    assert sents == [["I", "do", "n't", "know", "."], ["Hi"]]
    assert tags == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["INTJ"]]
    assert read_conllu(path, "xpos")[1][0] == ["PRP", "VBP", "RB", "VB", "."]
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tI\tPRON\n")
    with pytest.raises(ValueError, match="bad.conllu:1: expected 10"):
        read_conllu(bad)


def test_word_features():
    assert [word_shape(w) for w in ("McDonald", "U.S.", "1,000", "the")] == [
        "XxXx", "X.X.", "d,d", "x"]
    f = WordFeatures(min_df=2, min_df_affix=1).fit([["Walking", "talking"], ["walking"]])
    a, b = f.transform([["walking", "stalking"]])[0]
    assert a[0] != f.vocab_[0]["\0unk"] and b[0] == f.vocab_[0]["\0unk"]  # rare word -> unk
    assert a[3] == b[3]  # ...but it shares the suffix 'ing' with 'walking'
    ids = np.concatenate(f.transform([["walking", "x"]]))
    assert ids.min() >= 1 and ids.max() < f.n_features_
    back = WordFeatures.from_config(f.get_config())
    assert back.n_features_ == f.n_features_
    assert np.array_equal(back.transform([["Talking"]])[0], f.transform([["Talking"]])[0])


def synthetic(n=300, seed=0):
    """Random sentences over a tiny vocabulary, each word with its own tag."""
    rng = np.random.default_rng(seed)
    sents, tags = [], []
    for _ in range(n):
        words = list(rng.choice(["the", "a", "dog", "cat", "runs", "sleeps", "big"],
                                size=rng.integers(1, 9)))
        sents.append(words)
        tags.append(["DET" if w in ("the", "a") else
                     "ADJ" if w == "big" else
                     "NOUN" if w in ("dog", "cat") else "VERB" for w in words])
    return sents, tags


@pytest.fixture(scope="module")
def tagger():
    X, Y = synthetic()
    return Tagger(size=16, embedding_size=8, n_epochs=4, seed=0).fit(
        X, Y, validation_data=synthetic(50, seed=1))


def test_tagger_learns_and_is_padding_invariant(tagger):
    X, Y = synthetic(100, seed=2)
    assert tagger.score(X, Y) > 0.95
    together = tagger.predict_proba(X)
    for i in (0, 5, 17):
        alone = tagger.predict_proba([X[i]])[0]
        assert alone.shape == (len(X[i]), len(tagger.tags_))
        np.testing.assert_allclose(alone, together[i], atol=1e-5)
    assert tagger.predict([X[3]])[0] == tagger.predict(X)[3]
    assert tagger.model_.best_epoch_ >= 1 and "val_accuracy" in tagger.model_.history_[-1]


def test_tagger_save_load(tagger, tmp_path):
    X, _ = synthetic(20, seed=3)
    tagger.save(tmp_path / "tagger.passage")
    back = Tagger.load(tmp_path / "tagger.passage")
    assert back.predict(X) == tagger.predict(X)
    assert back.get_params() == tagger.get_params()


def test_tagger_trains_in_bf16_and_keeps_it(tmp_path):
    X, Y = synthetic()
    tagger = Tagger(size=16, embedding_size=8, n_epochs=4, seed=0, precision="bf16").fit(X, Y)
    assert tagger.model_.precision == "bf16"
    assert tagger.score(*synthetic(100, seed=2)) > 0.95
    tagger.save(tmp_path / "tagger.passage")
    assert Tagger.load(tmp_path / "tagger.passage").model_.precision == "bf16"


def test_tagger_bad_input(tagger):
    with pytest.raises(TypeError, match="list of token lists"):
        tagger.predict("The dog runs")
    with pytest.raises(TypeError, match=r"sentences\[0\] must be a list of str"):
        tagger.predict(["The dog runs"])
    with pytest.raises(ValueError, match="tag 'XYZ' was not seen"):
        tagger._encode([["XYZ"]])
    with pytest.raises(ValueError, match="not fitted"):
        Tagger().predict([["a"]])


def test_passage_load_and_save_give_back_the_tagger(tmp_path):
    import passage
    from passage.io import load_model

    sentences = [["The", "cat", "sat", "."], ["A", "dog", "ran", "."]] * 10
    tags = [["DET", "NOUN", "VERB", "PUNCT"]] * 20
    tagger = Tagger(size=8, embedding_size=8, n_epochs=2, seed=0, min_df=1).fit(sentences, tags)
    passage.save(tagger, tmp_path / "t.passage")  # the same file as tagger.save writes
    back = passage.load(tmp_path / "t.passage")
    assert isinstance(back, Tagger) and back.tags_ == tagger.tags_
    assert back.predict(sentences[:2]) == tagger.predict(sentences[:2])
    assert type(load_model(tmp_path / "t.passage")).__name__ == "RNN"  # the inner model
    with pytest.raises(TypeError, match="own features and tags"):
        passage.save(tagger, tmp_path / "u.passage", extra={"a": 1})
