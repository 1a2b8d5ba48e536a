"""passage.options: the recipe's settings as plain data, copies with changes, and their names."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest

import passage.options as options_module
from passage.options import (
    AUTO_MONITOR,
    MIN_FOR_METRIC,
    MIN_FOR_VALIDATION,
    TextModelOptions,
)


def test_updated_is_a_changed_copy_and_leaves_the_original_alone():
    base = TextModelOptions()
    changed = base.updated(size=16, lr=0.01, truncate=None)
    assert isinstance(changed, TextModelOptions) and changed is not base
    assert (changed.size, changed.lr, changed.truncate) == (16, 0.01, None)
    assert base == TextModelOptions()  # untouched
    # every setting not named keeps its value
    for field in dataclasses.fields(TextModelOptions):
        if field.name not in ("size", "lr", "truncate"):
            assert getattr(changed, field.name) == getattr(base, field.name), field.name
    same = base.updated()
    assert same == base and same is not base


def test_updated_with_an_unknown_name_says_which_and_lists_the_known_ones():
    with pytest.raises(TypeError) as info:
        TextModelOptions().updated(size=8, epochs=3, hidden=4)
    message = str(info.value)
    assert message.startswith("unknown training option(s) ['epochs', 'hidden']; known: ")
    known = ast.literal_eval(message.split("known: ", 1)[1])
    assert known == sorted(f.name for f in dataclasses.fields(TextModelOptions))
    assert "n_epochs" in known  # the right spelling of 'epochs' is there to find


def test_the_constructor_refuses_unknown_names_too():
    with pytest.raises(TypeError, match="unexpected keyword argument 'epochs'"):
        TextModelOptions(epochs=3)


def test_to_dict_holds_every_setting_as_plain_data():
    options = TextModelOptions(size=32, patience=None, precision="fp32")
    d = options.to_dict()
    assert list(d) == [f.name for f in dataclasses.fields(TextModelOptions)]
    assert TextModelOptions(**d) == options
    assert TextModelOptions(**json.loads(json.dumps(d))) == options  # JSON-able, loses nothing
    d["size"] = 1
    assert options.size == 32  # a copy, not a view


def test_defaults_have_the_types_their_annotations_name():
    defaults = TextModelOptions()
    plain = {"int": int, "float": float, "str": str, "bool": bool}
    for field in dataclasses.fields(TextModelOptions):
        value = getattr(defaults, field.name)
        allowed = tuple(plain[t.strip()] for t in field.type.split("|") if t.strip() != "None")
        assert value is None and "None" in field.type or isinstance(value, allowed), field.name
        if isinstance(value, bool):
            assert allowed == (bool,), f"{field.name} is a bool but annotated {field.type}"


def test_the_defaults_are_choices_the_recipe_takes():
    from passage import costs, metrics
    from passage.models import PRECISIONS
    from passage.recipe import OUTPUTS, RECURRENT

    d = TextModelOptions()
    assert d.layer in RECURRENT and d.pool in ("last", "max", "mean")
    assert d.precision == "auto" or d.precision in PRECISIONS
    assert d.monitor == "auto" and d.lr_schedule in ("constant", "linear")
    assert 0 < d.validation_split < 1 and d.lr > 0 and d.n_epochs >= 1 and d.batch_size >= 1
    # monitor='auto' watches a metric the model of each task computes
    assert set(AUTO_MONITOR) == set(OUTPUTS)
    for task, metric in AUTO_MONITOR.items():
        n_outputs = 3 if task == "multiclass" else 1
        assert metric in metrics.names(costs.get(OUTPUTS[task][1]), n_outputs), task


def test_the_split_thresholds_are_ordered():
    # a validation split of a set too small to hold one out could not reach the metric threshold
    assert 0 < MIN_FOR_VALIDATION < MIN_FOR_METRIC


def test_the_module_imports_no_torch_and_no_model_code():
    source = Path(options_module.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "dataclasses"}, imported
