import numpy as np
import pytest

from passage.preprocessing import END, PAD, UNK, LenFilter, Tokenizer, tokenize
from passage.preprocessing import tokenize_reference as tokenize_2015


@pytest.mark.parametrize("text", [
    "Hello, world!", "  spaced   out  ", "it's a \u201cquote\u201d\u2026 ok?", "tabs\tand\nlines",
    "", "...", "caf\u00e9 na\u00efve \u00e0 la carte", "a<br /><br />b", "x\r\ny\u00a0z",
])
def test_tokenize_matches_2015_algorithm(text):
    assert tokenize(text) == tokenize_2015(text)


def test_ids_and_vocabulary():
    tok = Tokenizer(min_df=1)
    ids = tok.fit_transform(["the cat", "the dog", "a cat"])
    assert tok.encoder["PAD"] == PAD == 0 and tok.encoder["END"] == END == 1
    assert tok.encoder["UNK"] == UNK == 2
    # most frequent by document frequency first, ties by first occurrence
    assert ids == [[3, 4], [3, 5], [6, 4]]
    assert tok.n_features == 7
    assert tok.transform(["the zebra"]) == [[3, UNK]]
    assert tok.inverse_transform(ids) == ["the cat", "the dog", "a cat"]


def test_min_df_and_max_features():
    texts = ["a b c", "a b", "a"]
    assert Tokenizer(min_df=2).fit(texts).n_features == 3 + 2
    tok = Tokenizer(min_df=1, max_features=4).fit(texts)
    assert tok.n_features == 4 and tok.transform(["a b c"]) == [[3, UNK, UNK]]


def test_lowercase_and_characters():
    assert Tokenizer(min_df=1, lowercase=False).fit(["A a"]).n_features == 5
    tok = Tokenizer(min_df=1, character=True)
    ids = tok.fit_transform(["abba", "cab"])
    assert len(ids[0]) == 4 and tok.inverse_transform(ids) == ["abba", "cab"]


def test_warns_when_most_tokens_are_unk():
    with pytest.warns(UserWarning, match="lower min_df"):
        Tokenizer().fit(["a few words only", "and some more words"])


@pytest.mark.parametrize("bad, match", [
    ("just one string", "single str"),
    (["ok", None], r"texts\[1\] is None.*missing"),
    (["ok", float("nan")], r"texts\[1\].*missing"),
    (["ok", 3], r"texts\[1\] is 3.*convert"),
])
def test_bad_texts_are_named(bad, match):
    with pytest.raises(TypeError, match=match):
        Tokenizer(min_df=1).fit(bad)


def test_unfitted_and_empty():
    with pytest.raises(RuntimeError, match="not fitted"):
        Tokenizer().transform(["x"])
    with pytest.raises(ValueError, match="empty"):
        Tokenizer().fit([])
    with pytest.raises(ValueError, match="not in this tokenizer"):
        Tokenizer(min_df=1).fit(["a"]).inverse_transform([[99]])


def test_config_round_trip():
    tok = Tokenizer(min_df=1).fit(["one two", "two three"])
    again = Tokenizer.from_config(tok.get_config())
    assert again.transform(["three two one four"]) == tok.transform(["three two one four"])


def test_len_filter_says_what_it_drops():
    X = [[1] * n for n in range(1, 301)]
    Y = list(range(300))
    with pytest.warns(UserWarning, match="dropped 100 of 300"):
        fx, fy = LenFilter(max_len=200, percentile=0).filter(X, Y)
    assert len(fx) == len(fy) == 200 and max(map(len, fx)) == 200
    assert np.array_equal(fy, np.arange(200))
