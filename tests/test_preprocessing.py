import threading
import warnings
from collections import Counter

import numpy as np
import pytest

from passage._tokenizer import compiled as compiled_engine
from passage._tokenizer import (
    current_settings,
    keys,
    numpy_engine,
    settings,
)
from passage._tokenizer.chunks import parts
from passage.exceptions import NotFittedError
from passage.preprocessing import END, PAD, SPECIAL, UNK, LenFilter, Tokenizer, Truncate, tokenize
from passage.preprocessing import tokenize_reference as tokenize_2015
from passage.sequences import TokenArray


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
    with pytest.raises(NotFittedError, match="not fitted"):
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


# -- the vectorised engine gives the ids of the plain-Python algorithms ---------------------------

TRICKY = [
    "", " ", "Hello, World!", "  spaced   out  ", "tabs\tand\nnew\r\nlines\t\t", "...!!!???",
    "it\u2019s \u2018single\u2019 and \u201cdouble\u201d \u00b4acute\u00b4",
    "\u2026 ellipsis\u2026and\u00a0nbsp \u20ac5 \u201a low quote", "caf\u00e9 na\u00efve CAF\u00c9",
    "\u0130stanbul \u0130I\u0131i", "STRA\u1e9eE stra\u00dfe",
    "\u039f\u0394\u039f\u03a3 \u03a3\u03a3 \u03a3",
    "emoji \U0001f600\U0001f600! x\U0001f600y", "lone \ud800 surrogate\udfff pair \ud83d\ude00",
    "nul\x00inside", "abcdefg abcdefgh abcdefghi", "sixteen-bytes-xx abcdefghijklmnop",
    "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
    "\u00e9\u00e9\u00e9\u00e9 \u00e9\u00e9\u00e9\u00e9\u00e9 \u4e2d\u6587\u5b57\u7b26",
    "word", "word", "WORD.", ".starts and ends.", "a<br /><br />b", "x\u00a0y\u2009z",
    "THE END", "PAD UNK END the end", "\u00e2\u20ac\u2122 mojibake",
    "".join(map(chr, range(128))),  # every ASCII character (the compiled engine lowercases ASCII)
]


def ids_2015(train, test, max_features=9997, min_df=1, lowercase=True, character=False):
    """The 2015 algorithm: character loop, dict counts, ties by first occurrence; a token
    spelled like a special name keeps the special id (see Tokenizer._choose_vocabulary)."""
    split = list if character else tokenize_2015
    docs = [split(t.lower() if lowercase else t) for t in train]
    df, first = Counter(), {}
    for doc in docs:
        for tok in doc:
            first.setdefault(tok, len(first))
        df.update(set(doc))
    kept = sorted((t for t in df if df[t] >= min_df and t not in SPECIAL),
                  key=lambda t: (-df[t], first[t]))[: max_features - 3]
    enc = {t: i for i, t in enumerate(kept, start=3)} | {"PAD": 0, "END": 1, "UNK": 2}
    test_docs = [split(t.lower() if lowercase else t) for t in test]
    return [[enc.get(t, UNK) for t in doc] for doc in docs + test_docs]


def fitted_ids(train, test, engine, **kw):
    tok = Tokenizer(**kw)
    with settings(engine=engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = tok.fit_transform(train) + tok.transform(test)
    return tok, ids


@pytest.fixture(params=["compiled", "numpy"])
def fast_engine(request):
    if request.param == "compiled":
        request.getfixturevalue("compiled")  # skipped, or failed in CI, if not built
    return request.param


SETTINGS = [
    dict(min_df=1), dict(min_df=1, lowercase=False), dict(min_df=2), dict(min_df=1, max_features=8),
    dict(min_df=1, character=True), dict(min_df=1, character=True, lowercase=False),
    dict(min_df=2, character=True, max_features=12),
]


@pytest.mark.parametrize("kw", SETTINGS)
def test_fast_engine_matches_python_and_2015(kw, fast_engine):
    train, test = TRICKY, TRICKY[::-1] + ["unseen words \u2019 here", ""]
    tok, fast = fitted_ids(train, test, fast_engine, **kw)
    ref, slow = fitted_ids(train, test, "python", **kw)
    assert fast == slow == ids_2015(train, test, **kw)
    assert tok.encoder == ref.encoder and tok.unk_rate_ == ref.unk_rate_
    assert max(max(d, default=0) for d in fast) < tok.n_features
    assert tok.inverse_transform(fast) == ref.inverse_transform(slow)


@pytest.mark.parametrize("kw", [dict(min_df=1), dict(min_df=3, max_features=50),
                                dict(min_df=1, character=True)])
def test_many_chunks_and_threads(kw, fast_engine):
    """Chunks of ~60 characters: words at chunk edges, new tokens in every chunk, the pool;
    the compiled engine counts in 3 threads and merges their lexicons."""
    rng = np.random.default_rng(0)
    alphabet = list("abcAB .,'\u2019\u00e9\u4e2d\t") + ["\U0001f600", "longwordlongword", "\u2026"]
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 40))) for _ in range(300)]
    with settings(chunk_chars=60, part_chars=60, workers=3):
        assert len(parts(texts[:200], current_settings())) == 3
        tok, fast = fitted_ids(texts[:200], texts[200:], fast_engine, **kw)
        ref, slow = fitted_ids(texts[:200], texts[200:], "python", **kw)
    assert fast == slow == ids_2015(texts[:200], texts[200:], **kw)
    assert tok.encoder == ref.encoder


@pytest.mark.parametrize("seed", range(3))
def test_random_texts_near_the_marks(seed, fast_engine):
    """Characters sharing a UTF-8 lead byte with a multi-byte mark (U+2010-U+2020, U+00A0-
    U+00BF), case changes that alter lengths or depend on context (I with dot, final sigma),
    surrogates and emoji, in random texts split across threads."""
    rng = np.random.default_rng(seed)
    alphabet = ([chr(c) for c in range(0x2010, 0x2021)] + [chr(c) for c in range(0xA0, 0xC0)] +
                list("aZ .,\t\n\u0130\u03a3\u03c3\u00c9\ud800\U0001f600\u4e2d") + ["ab", "XYZW"])
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 30))) for _ in range(120)]
    for kw in [dict(min_df=1), dict(min_df=1, lowercase=False), dict(min_df=1, character=True)]:
        with settings(part_chars=100, workers=2):
            tok, fast = fitted_ids(texts[:80], texts[80:], fast_engine, **kw)
            ref, slow = fitted_ids(texts[:80], texts[80:], "python", **kw)
        assert fast == slow == ids_2015(texts[:80], texts[80:], **kw)
        assert tok.encoder == ref.encoder


def test_ties_by_first_occurrence_and_document_frequency():
    # 'b' occurs 3 times but in 1 document; 'c' and 'a' in 2 documents each, 'c' first
    ids = Tokenizer(min_df=1).fit_transform(["c b b b", "a c", "a"])
    assert ids == [[3, 5, 5, 5], [4, 3], [4]]


def test_special_names_keep_their_ids_without_a_gap():
    texts = ["THE END"] * 3 + ["the end"] * 2
    tok = Tokenizer(min_df=1, lowercase=False)
    ids = tok.fit_transform(texts)
    assert ids[0] == [3, END] and ids[-1] == [4, 5]
    assert tok.n_features == 6 and sorted(tok.decoder) == list(range(6))
    assert Tokenizer.from_config(tok.get_config()).transform(["PAD END"]) == [[PAD, END]]


def _colliding_keys(words, starts, lengths, long=None):
    """Every token of 8 bytes or more gets the same hashed key."""
    out = keys.token_keys(words, starts, lengths, long)
    out[lengths >= keys.SHORT] = keys.HASHED | np.uint64(12345)
    return out


def test_hash_collisions_are_caught():
    texts = ["abcdefghij klmnopqrst abcdefghij", "klmnopqrst uvwxyzabcd", "short words"]
    expected = ids_2015(texts, ["uvwxyzabcd abcdefghij"])
    # the compiled engine compares whole bytes; the numpy one is given colliding keys
    with settings(engine="numpy", token_keys=_colliding_keys):
        tok = Tokenizer(min_df=1)
        # fit falls back to the Python engine; transform maps a same-key token of other bytes
        # to UNK
        assert tok.fit_transform(texts) + tok.transform(["uvwxyzabcd abcdefghij"]) == expected
        vocab = {"PAD": 0, "END": 1, "UNK": 2, "abcdefghij": 3}
        tok2 = Tokenizer.from_config({"vocabulary": list(vocab)})
        assert tok2.transform(["klmnopqrst abcdefghij"]) == [[UNK, 3]]
        # two vocabulary entries with one key: the Python engine
        tok3 = Tokenizer.from_config({"vocabulary": list(vocab) + ["klmnopqrst"]})
        assert tok3.transform(["klmnopqrst abcdefghij x"]) == [[4, 3, UNK]]


class Shouty(str):
    """A str whose lower() shouts and whose encode() lies: the engines must call its lower(), as
    the reference does, and split its text, not what its encode() says."""

    def lower(self):
        return self.upper()

    def encode(self, *args, **kwargs):
        return b"not the text"


@pytest.mark.parametrize("lowercase", [True, False])
def test_str_subclasses_are_split_like_the_reference(lowercase, fast_engine):
    texts = [Shouty("Ab c\u00e9"), "Ab c\u00e9", Shouty("plain ascii")]
    kw = dict(min_df=1, lowercase=lowercase)
    tok, fast = fitted_ids(texts, texts, fast_engine, **kw)
    ref, slow = fitted_ids(texts, texts, "python", **kw)
    assert fast == slow and tok.encoder == ref.encoder and "not" not in tok.encoder
    assert ("AB" in tok.encoder) == lowercase


def test_compiled_lexicons_merge_as_if_counted_together(compiled):
    first = ["b a", "a", "samelongtoken x"]
    second = ["c a c", "samelongtoken B", "samelongtokeN"]

    def counted(texts):
        lex = compiled_engine.lexicon()
        ids, counts = lex.count(texts, False, False, True)
        return lex, np.frombuffer(ids, np.int32), np.frombuffer(counts, np.int64)

    whole, whole_ids, whole_counts = counted(first + second)
    lex, ids_a, counts_a = counted(first)
    other, ids_b, counts_b = counted(second)
    to_id = np.frombuffer(lex.merge(other), np.int32)
    assert to_id.tolist() == [4, 1, 2, 5, 6]  # c, a, samelongtoken, B, samelongtokeN
    assert np.array_equal(np.concatenate([ids_a, to_id[ids_b]]), whole_ids)
    assert np.array_equal(np.concatenate([counts_a, counts_b]), whole_counts)
    assert lex.frequencies() == whole.frequencies()
    assert lex.tokens(range(len(lex))) == whole.tokens(range(len(whole))) == [
        "b", "a", "samelongtoken", "x", "c", "B", "samelongtokeN"]
    df, tf = (np.frombuffer(f, np.int64).tolist() for f in lex.frequencies())
    assert df == [1, 3, 2, 1, 1, 1, 1] and tf == [1, 3, 2, 1, 2, 1, 1]
    assert lex.find(["a", "samelongtokeN", "zz", ""]) == [1, 6, -1, -1]


def test_compiled_lexicon_errors(compiled):
    lex = compiled_engine.lexicon()
    with pytest.raises(ValueError, match="given twice"):
        lex.add(["x", "y", "x"])
    with pytest.raises(ValueError, match="itself"):
        lex.merge(lex)
    with pytest.raises(TypeError, match="must be str"):
        lex.count(["ok", b"bytes"], True, False, True)
    with pytest.raises(IndexError, match="no token has id 99"):
        lex.tokens([0, 99])
    with pytest.raises(ValueError, match="cannot be a token"):
        lex.add([""])
    bare = type(lex).__new__(type(lex))  # never initialised: no classes, but no crash either
    assert bare.find(["a"]) == [-1] and len(bare) == 0


def test_compiled_lexicon_is_shared_by_readers_not_writers(compiled):
    """Lookups (add=False) in one lexicon may run in many threads at once; a thread adding
    tokens must have the lexicon to itself (the others get a clear error, not a crash)."""
    lex = compiled_engine.lexicon()
    lex.add(["a", "b"])
    big = ["a b c " * 20000] * 50
    results, errors = [], []

    def look_up():
        results.append(np.frombuffer(lex.count(big, True, False, False)[0], np.int32))

    threads = [threading.Thread(target=look_up) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(np.array_equal(r, results[0]) for r in results)
    assert results[0][:3].tolist() == [0, 1, -1]

    def read_while_adding():  # find() only checks that no thread is adding: it never blocks one
        try:
            lex.find(["a"])
        except RuntimeError as e:
            errors.append(str(e))

    writer = threading.Thread(target=lex.count, args=(big * 4, True, False, True))
    writer.start()
    while writer.is_alive() and not errors:
        read_while_adding()
    writer.join()
    assert errors and "in use by another thread" in errors[0]


def test_to_lists_matches_slicing(compiled):
    from passage._tokens import to_lists

    values = np.array([3, 0, 2, 2, 1], np.int32)
    offsets = np.array([0, 2, 2, 5], np.int64)
    objects = ["x", "y", "z", "w"]
    assert to_lists(values, offsets, objects) == [["w", "x"], [], ["z", "z", "y"]]
    with pytest.raises(IndexError, match="value 3 has no object"):
        to_lists(values, offsets, objects[:3])
    with pytest.raises(ValueError, match="must not decrease"):
        to_lists(values, np.array([0, 3, 2, 5], np.int64), objects)
    with pytest.raises(ValueError, match="nor pass len"):  # caught before reading past the end
        to_lists(values, np.array([0, 100, 5], np.int64), objects)
    with pytest.raises(ValueError, match="int32"):
        to_lists(values.astype(np.int16), offsets, objects)


def test_as_array_and_empty_documents():
    tok = Tokenizer(min_df=1)
    arr = tok.fit_transform(["a b", "", "b c ."], as_array=True)
    assert isinstance(arr, TokenArray) and arr.values.dtype == np.int32
    assert arr.tolist() == tok.transform(["a b", "", "b c ."]) == [[4, 3], [], [3, 5, 6]]
    assert tok.transform([], as_array=True).tolist() == [] and tok.transform([]) == []
    assert tok.transform(["", ""]) == [[], []]
    assert tok.inverse_transform(arr) == ["a b", "", "b c ."]
    only_empty = Tokenizer(min_df=1)
    assert only_empty.fit_transform(["", " "]) == [[], []] and only_empty.n_features == 3


def test_len_filter_keeps_a_token_array():
    X = TokenArray.from_sequences([[1] * n for n in range(1, 11)])
    with pytest.warns(UserWarning, match="dropped 5 of 10"):
        fx, fy = LenFilter(max_len=5, percentile=0).filter(X, list(range(10)))
    assert isinstance(fx, TokenArray) and fx.lengths().tolist() == [1, 2, 3, 4, 5]
    assert fy == [0, 1, 2, 3, 4]


# all ids in the table (3), both ways (500: ids below ~4 x 9.5 tokens per document in the
# table), no tokens at all (empty documents), no documents
@pytest.mark.parametrize("n_ids, n_docs, max_len", [(3, 40, 20), (500, 40, 20), (500, 5, 1),
                                                     (50, 0, 1)])
def test_document_frequency(n_ids, n_docs, max_len):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, n_ids, size=rng.integers(0, max_len)) for _ in range(n_docs)]
    ids = np.concatenate([np.zeros(0, np.int32), *docs]).astype(np.int32)
    counts = np.array([len(d) for d in docs], np.int64)
    expected = np.zeros(n_ids, np.int64)
    for d in docs:
        expected[np.unique(d)] += 1
    assert np.array_equal(numpy_engine.doc_frequency(ids, counts, n_ids), expected)


def _cut_reference(x, m, keep):
    """Truncation by slicing, one sequence at a time."""
    if len(x) <= m:
        return list(x)
    return {"head": list(x[:m]), "tail": list(x[-m:]),
            "ends": list(x[:m - m // 2]) + list(x[len(x) - m // 2:])}[keep]


@pytest.mark.parametrize("keep", Truncate.KEEP)
@pytest.mark.parametrize("max_len", [1, 2, 5, 11])
def test_truncate_lists_and_token_arrays_like_slicing(keep, max_len):
    rng = np.random.default_rng(max_len)
    X = [rng.integers(0, 50, rng.integers(0, 14)).tolist() for _ in range(300)]
    want = [_cut_reference(x, max_len, keep) for x in X]
    cut = Truncate(max_len, keep)
    assert cut.transform(X) == want
    arr = cut.transform(TokenArray.from_sequences(X))
    assert isinstance(arr, TokenArray) and arr.tolist() == want
    assert [a.tolist() for a in cut.transform([np.asarray(x) for x in X])] == want
    assert max(map(len, want)) == min(max_len, max(map(len, X)))


def test_truncate_as_len_filter_cuts_sequence_targets_alike_and_trains():
    X = [[1, 2, 3, 4, 5, 6], [7, 8], [9, 1, 2, 3, 4]]
    tags = [[0, 1, 2, 3, 4, 5], [6, 7], [8, 9, 0, 1, 2]]
    fx, fy = Truncate(4).filter(X, tags)
    assert fx == [[1, 2, 5, 6], [7, 8], [9, 1, 3, 4]] and fy == [[0, 1, 4, 5], [6, 7], [8, 9, 1, 2]]
    fx, fy = Truncate(4, "tail").filter(X, [0, 1, 0])  # one label per sequence: untouched
    assert fx == [[3, 4, 5, 6], [7, 8], [1, 2, 3, 4]] and fy == [0, 1, 0]
    onehot = np.eye(6)[[0, 1, 2]]  # one row per sequence, as long as the first sequence
    cut = Truncate(4)
    fx, fy = cut.filter(X, onehot)
    assert fx[0] == [1, 2, 5, 6] and fy is onehot  # not mistaken for one label per token
    assert cut.n_cut_ == 2 and cut.kept_ == pytest.approx(10 / 13)
    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN
    model = RNN([Embedding(8, 10), GatedRecurrent(8), Dense(1, "sigmoid")], "bce", verbose=0,
                seed=0)
    model.fit(TokenArray.from_sequences(X * 4), [0, 1, 0] * 4, len_filter=Truncate(3))
    assert model.history_[-1]["tokens"] == 4 * (3 + 2 + 3)  # trained on the cut sequences


def test_truncate_bad_arguments():
    for bad in (0, -3, 2.5, "10", True):
        with pytest.raises(ValueError, match="max_len must be a positive int"):
            Truncate(bad).transform([[1]])
    with pytest.raises(ValueError, match="keep must be one of"):
        Truncate(5, keep="middle").filter([[1]], [0])
