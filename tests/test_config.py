import json

import pytest

from gpt_tf.config import PRESETS, RunConfig, apply_overrides, preset
from gpt_tf.errors import UserError


@pytest.mark.parametrize("name, low, high", [
    ("nano", 1, 100_000), ("mini", 5_000_000, 10_000_000),
    ("small", 25_000_000, 35_000_000), ("gpt2-124m", 124_000_000, 125_000_000),
])
def test_preset_sizes(name, low, high):
    assert low <= preset(name).model.num_parameters() < high


def test_gpt2_preset_has_gpt2_small_shape():
    m = preset("gpt2-124m").model
    assert (m.num_layers, m.hidden_dim, m.num_heads, m.sequence_length) == (12, 768, 12, 1024)


def test_json_round_trip_for_every_preset():
    for name in PRESETS:
        config = preset(name)
        assert RunConfig.from_json(config.to_json()) == config


def test_overrides_are_typed():
    config = apply_overrides(preset("nano"), ["--model.num_layers=3", "train.xla=false",
                                              "train.learning_rate=2e-3"])
    assert config.model.num_layers == 3
    assert config.train.xla is False
    assert config.train.learning_rate == 2e-3


@pytest.mark.parametrize("override, message", [
    ("model.num_layerz=3", "unknown config key 'model.num_layerz'"),
    ("modle.num_layers=3", "unknown config section 'modle'"),
    ("model.num_layers=three", "expected int"),
    ("train.xla=maybe", "expected bool"),
    ("model.num_layers", "section.key=value"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(UserError, match=message):
        apply_overrides(preset("nano"), [override])


def test_validation_reports_inconsistent_values():
    with pytest.raises(UserError, match=r"hidden_dim \(30\) must be divisible by model.num_heads \(4\)"):
        apply_overrides(preset("nano"), {"model.hidden_dim": 30, "model.num_heads": 4})
    with pytest.raises(UserError, match="dropout"):
        apply_overrides(preset("nano"), {"model.dropout": 1.5})
    # A fine-tune's learning rate below the floor it inherits: the error names the fix.
    with pytest.raises(UserError, match=r"learning_rate=5e-05\] \(got 0\.0001\); lower it too, "
                                        r"e\.g\. --train\.min_learning_rate=5e-06"):
        apply_overrides(preset("nano"), {"train.learning_rate": 5e-5,
                                         "train.min_learning_rate": 1e-4})
    with pytest.raises(UserError, match="train.best_metric must be one of loss, task_loss, "
                                        "translate_accuracy, qa_accuracy, sentiment_accuracy "
                                        r"\(got 'accuracy'\)"):
        apply_overrides(preset("nano"), ["train.best_metric=accuracy"])


def test_from_dict_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(UserError, match="unknown config key 'model.width'"):
        RunConfig.from_dict({"model": {"width": 3}})
    with pytest.raises(UserError, match="must be int"):
        RunConfig.from_dict({"model": {"num_layers": "2"}})
    with pytest.raises(UserError, match="not valid JSON"):
        RunConfig.from_json("{")
    assert RunConfig.from_dict(json.loads(preset("mini").to_json())) == preset("mini")


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown preset 'huge'; choose one of: nano, mini"):
        preset("huge")


def test_config_is_frozen():
    with pytest.raises(Exception):
        preset("nano").model.num_layers = 5
