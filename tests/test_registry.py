"""passage.registry: name lookup with errors that list the valid names, and the model classes a
model file can name (saved and loaded back through ``passage.io``)."""

import numpy as np
import pytest

from passage.io import load, save
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.lm import LanguageModel
from passage.models import RNN
from passage.registry import MODELS, lookup, register_model


def square(x):
    return x * x


def double(x):
    return 2 * x


TABLE = {"square": square, "double": double, "twice": double}


def test_lookup_is_case_insensitive_on_the_name_given():
    assert lookup(TABLE, "square", "op") is square
    assert lookup(TABLE, "SQUARE", "op") is square
    assert lookup(TABLE, "Twice", "op") is double


def test_an_unknown_name_lists_the_valid_ones_sorted():
    with pytest.raises(ValueError) as info:
        lookup({"square": square, "double": double}, "cube", "op")
    assert str(info.value) == "unknown op 'cube'; valid names: double, square"
    # values without a __name__ are listed by their key
    with pytest.raises(ValueError, match="unknown size 'huge'; valid names: large, small$"):
        lookup({"small": 1, "large": 2}, "huge", "size")


def test_a_name_that_is_not_a_string_is_a_type_error():
    for name, type_name in [(3, "int"), (None, "NoneType"), (square, "function")]:
        with pytest.raises(TypeError, match=f"op must be a name \\(str\\), got {type_name}$"):
            lookup(TABLE, name, "op")


def test_the_model_classes_are_registered_under_their_own_names():
    assert MODELS["RNN"] is RNN and MODELS["LanguageModel"] is LanguageModel
    for name, cls in MODELS.items():
        assert isinstance(cls, type) and cls.__name__ == name


def tiny(cls=RNN):
    model = cls([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0,
                seed=0)
    model.fit([[3, 4], [5], [6, 7, 8]], [1, 0, 1], n_epochs=1)
    return model


def test_a_registered_class_is_rebuilt_from_its_model_file(tmp_path):
    class ProbeRNN(RNN):
        def get_config(self):
            return {**super().get_config(), "class": "ProbeRNN"}

    assert "ProbeRNN" not in MODELS
    try:
        assert register_model(ProbeRNN) is ProbeRNN  # usable as a decorator
        assert MODELS["ProbeRNN"] is ProbeRNN
        model = tiny(ProbeRNN)
        path = tmp_path / "probe.passage"
        save(model, path)
        loaded = load(path)
        assert type(loaded) is ProbeRNN
        assert loaded.get_config() == model.get_config()
        X = [[3, 4, 5], [9]]
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    finally:
        MODELS.pop("ProbeRNN", None)
    # once it is no longer registered, the file names a class this Passage does not know
    with pytest.raises(ValueError, match="holds a 'ProbeRNN', which this Passage does not know "
                                         r"\(known: .*RNN"):
        load(path)


def test_a_plain_rnn_file_loads_as_an_rnn(tmp_path):
    model = tiny()
    assert "class" not in model.get_config()  # RNN is the default class of a model file
    save(model, tmp_path / "m.passage")
    loaded = load(tmp_path / "m.passage")
    assert type(loaded) is RNN and loaded.get_config() == model.get_config()


def test_an_unknown_name_lists_each_valid_name_once_aliases_included():
    from passage import activations

    with pytest.raises(ValueError) as e:
        activations.get("x")
    names = str(e.value).split("valid names: ")[1].split(", ")
    assert len(names) == len(set(names)) and {"relu", "rectify", "tanh"} <= set(names)
