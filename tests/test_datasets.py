"""passage.datasets: JSON-lines readers on tiny files written here, and the bundled IMDB sample."""

import gzip
import json
from collections import Counter

import pytest

from passage.datasets import load_imdb, load_imdb_sample, read_jsonl


def write_jsonl(path, rows):
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


ROWS = [
    {"text": "a fine film", "label": 1, "rating": 8},
    {"text": "unlabelled, kept out"},
    {"text": "dull", "label": 0, "rating": 2},
    {"text": "héllo — “quoted”", "label": 1, "rating": 10},
]


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz", "ROWS.JSONL.GZ"])
def test_read_jsonl_reads_labelled_rows_in_order_plain_or_gzip(tmp_path, name):
    write_jsonl(tmp_path / name, ROWS)
    texts, labels = read_jsonl(tmp_path / name)
    labelled = [r for r in ROWS if "label" in r]
    assert texts == [r["text"] for r in labelled] and labels == [r["label"] for r in labelled]
    assert read_jsonl(str(tmp_path / name)) == (texts, labels)  # a str path reads the same


def test_read_jsonl_takes_other_keys(tmp_path):
    rows = [{"review": "good", "stars": 4.5}, {"review": "bad", "stars": 1}, {"review": "?"}]
    write_jsonl(tmp_path / "r.jsonl", rows)
    assert read_jsonl(tmp_path / "r.jsonl", text_key="review", label_key="stars") == (
        ["good", "bad"], [4.5, 1])
    # keyed by 'label', no row is labelled
    assert read_jsonl(tmp_path / "r.jsonl", text_key="review") == ([], [])


def test_read_jsonl_of_a_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at .*nothing.jsonl"):
        read_jsonl(tmp_path / "nothing.jsonl")


def imdb_rows(split, n):
    """Reviews as in the full set's JSON lines: ``<br />`` markup, 0/1 labels, 1-10 ratings."""
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        verdict = "good" if positive else "bad"
        rows.append({"split": split, "id": f"{split}_{i}",
                     "text": f"{split} review {i}.<br /><br />It was {verdict}.",
                     "label": int(positive), "rating": 7 + i % 4 if positive else 1 + i % 4})
    return rows


def test_load_imdb_reads_one_split_of_a_directory(tmp_path):
    train, test = imdb_rows("train", 6), imdb_rows("test", 4)
    write_jsonl(tmp_path / "train.jsonl.gz", train)
    write_jsonl(tmp_path / "test.jsonl.gz", test)
    texts, labels = load_imdb(tmp_path)
    assert texts == [r["text"] for r in train] and labels == [r["label"] for r in train]
    texts, ratings = load_imdb(str(tmp_path), split="test", label="rating")
    assert texts == [r["text"] for r in test] and ratings == [r["rating"] for r in test]


def test_load_imdb_can_drop_the_line_break_markup(tmp_path):
    rows = imdb_rows("train", 3)
    write_jsonl(tmp_path / "train.jsonl.gz", rows)
    texts, _ = load_imdb(tmp_path, line_breaks=False)
    assert all("<br" not in t for t in texts)
    # each <br /> becomes one space; the rest of the text is unchanged
    assert texts == [r["text"].replace("<br />", " ") for r in rows]
    assert texts[0].split() == ["train", "review", "0.", "It", "was", "good."]
    kept, _ = load_imdb(tmp_path)
    assert kept[0].count("<br />") == 2


def test_load_imdb_of_a_split_that_is_not_there(tmp_path):
    write_jsonl(tmp_path / "train.jsonl.gz", imdb_rows("train", 2))
    with pytest.raises(FileNotFoundError, match="no file at .*valid.jsonl.gz"):
        load_imdb(tmp_path, split="valid")


def test_the_bundled_sample_is_balanced_with_ratings_that_agree_with_the_labels():
    trX, trY, teX, teY = load_imdb_sample()
    assert (len(trX), len(trY), len(teX), len(teY)) == (5000, 5000, 1000, 1000)
    assert Counter(trY) == {0: 2500, 1: 2500} and Counter(teY) == {0: 500, 1: 500}
    assert all(isinstance(t, str) and t.strip() for t in trX + teX)
    assert not set(trX) & set(teX)  # the two official splits share no review
    trX2, trR, teX2, teR = load_imdb_sample(label="rating")
    assert trX2 == trX and teX2 == teX  # the same reviews in the same order
    # aclImdb: negative reviews are rated 1-4, positive ones 7-10
    for labels, ratings in ((trY, trR), (teY, teR)):
        for y, r in zip(labels, ratings, strict=True):
            assert (7 <= r <= 10) if y == 1 else (1 <= r <= 4), (y, r)
