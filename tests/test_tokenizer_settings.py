"""How the Tokenizer's engine and chunk sizes are chosen: ``passage._tokenizer.settings``."""

import threading

import pytest

from passage import _tokenizer
from passage._tokenizer import EngineSettings, current_settings, engine_name, settings
from passage._tokenizer import compiled as compiled_engine
from passage.preprocessing import Tokenizer

TEXTS = ["the cat sat", "the dog sat", "a cat, a dog."]


def test_settings_apply_inside_the_block_only():
    before = current_settings()
    with settings(engine="python", chunk_chars=10) as inside:
        assert current_settings() is inside
        assert (inside.engine, inside.chunk_chars, inside.workers) == ("python", 10,
                                                                      before.workers)
        with settings(workers=0):  # nested blocks change what the outer one set
            assert (current_settings().engine, current_settings().workers) == ("python", 0)
        assert current_settings() is inside
    assert current_settings() is before
    with pytest.raises(KeyError), settings(engine="numpy"):
        raise KeyError  # restored on an exception too
    assert current_settings() is before


def test_settings_are_per_thread():
    """A block in one thread does not change the engine under another thread."""
    seen = []
    with settings(engine="python"):
        thread = threading.Thread(target=lambda: seen.append(current_settings().engine))
        thread.start()
        thread.join()
    assert seen == ["auto"]


@pytest.mark.parametrize("changes, error, match", [
    (dict(engine="fast"), ValueError, "engine must be one of"),
    (dict(chunk_chars=0), ValueError, "chunk_chars must be an int >= 1"),
    (dict(part_chars=2.5), TypeError, "part_chars must be an int"),
    (dict(workers=-1), ValueError, "workers must be an int >= 0"),
])
def test_bad_settings_are_named(changes, error, match):
    with pytest.raises(error, match=match):
        EngineSettings(**changes)
    with pytest.raises(error, match=match), settings(**changes):
        pass
    with pytest.raises(TypeError):
        settings(unknown=1).__enter__()


def test_auto_is_compiled_when_built_else_numpy(monkeypatch):
    built = compiled_engine.Lexicon is not None
    assert engine_name(EngineSettings()) == ("compiled" if built else "numpy")
    monkeypatch.setattr(compiled_engine, "Lexicon", None)  # as if installed without a compiler
    assert engine_name(EngineSettings()) == "numpy"
    with pytest.raises(RuntimeError, match="passage._tokens is not built"):
        engine_name(EngineSettings(engine="compiled"))
    tok = Tokenizer(min_df=1)
    assert tok.fit_transform(TEXTS) == [[3, 4, 5], [3, 6, 5], [7, 4, 8, 7, 6, 9]]


@pytest.mark.parametrize("engine", ["numpy", "python"])
def test_settings_are_not_saved_with_the_tokenizer(engine):
    """The engine says how the ids are computed, not which: the config is the one of before."""
    with settings(engine=engine, workers=0):
        tok = Tokenizer(min_df=1).fit(TEXTS)
    config = tok.get_config()
    assert set(config) == {"max_features", "min_df", "lowercase", "character", "vocabulary"}
    assert Tokenizer.from_config(config).transform(TEXTS) == tok.transform(TEXTS)


def test_count_and_encode_take_settings_explicitly():
    s = EngineSettings(engine="python")
    counts = _tokenizer.count(TEXTS, True, False, s)
    assert counts.tokens(range(4)) == ["the", "cat", "sat", "dog"]
    assert counts.df.tolist()[:4] == [2, 2, 2, 2] and counts.find(["dog", "zebra"]) == [3, -1]
    encoder = {"PAD": 0, "END": 1, "UNK": 2, "cat": 3}
    for engine in ("numpy", "python"):
        assert _tokenizer.encode(["a cat"], encoder, True, False, True,
                                 EngineSettings(engine=engine)) == [[2, 3]]
