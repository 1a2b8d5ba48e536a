"""passage.exceptions: NotFittedError, one type everywhere, a ValueError and an AttributeError."""

import importlib

import pytest

import passage
from passage import exceptions
from passage.exceptions import NotFittedError


def test_not_fitted_error_is_a_value_error_and_an_attribute_error():
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    for base in (ValueError, AttributeError, Exception):
        with pytest.raises(base, match="not fitted"):
            raise NotFittedError("not fitted")
    assert exceptions.__all__ == ["NotFittedError"]


def test_it_is_one_object_wherever_it_is_imported_from():
    assert passage.NotFittedError is NotFittedError and "NotFittedError" in passage.__all__
    for name in ("passage.models", "passage.preprocessing", "passage.lm", "passage.tagging",
                 "passage.ensemble", "passage.vectors"):
        assert importlib.import_module(name).NotFittedError is NotFittedError, name


def test_the_unfitted_library_raises_it_catchable_as_either_base():
    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN
    from passage.preprocessing import Tokenizer

    calls = {
        "Tokenizer.transform": lambda: Tokenizer().transform(["a text"]),
        "Tokenizer.inverse_transform": lambda: Tokenizer().inverse_transform([[3]]),
        "RNN.predict": lambda: RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")],
                                   "bce", verbose=0).predict([[3, 4]]),
    }
    for name, call in calls.items():
        for base in (NotFittedError, ValueError, AttributeError):
            with pytest.raises(base, match="not (been trained|fitted yet)") as info:
                call()
            assert f"this {name.split('.')[0]} " in str(info.value)  # says what is not fitted


def test_hasattr_reads_an_unfitted_error_as_a_missing_attribute():
    # an AttributeError raised by a property makes hasattr False and getattr use its default
    class Model:
        @property
        def coef_(self):
            raise NotFittedError("this Model is not fitted yet")

    assert not hasattr(Model(), "coef_") and getattr(Model(), "coef_", None) is None


def test_the_scikit_learn_estimators_raise_a_subclass_both_libraries_catch():
    sklearn_exceptions = pytest.importorskip("sklearn.exceptions")
    from passage.sklearn import RNNClassifier

    with pytest.raises(NotFittedError) as info:
        RNNClassifier().predict(["a text"])
    assert isinstance(info.value, sklearn_exceptions.NotFittedError)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
