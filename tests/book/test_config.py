import pytest

from omnifer_lib.publish import config
from omnifer_lib.publish.config import ProfileError, load_profile


def test_every_profile_loads_and_sets_every_parameter():
    specs = config.parameter_specs()
    assert set(config.available_profiles()) >= {"smoke", "demo", "paper"}
    for name in config.available_profiles():
        values = config.load_profile(name)
        assert list(values) == list(specs)
        for key, spec in specs.items():
            assert config.coerce(spec, values[key]) == values[key]


def test_default_profile_is_demo():
    assert config.DEFAULT_PROFILE == "demo"
    assert config.load_profile() == config.load_profile("demo")


def test_overrides_merge_and_leave_the_rest():
    base = config.load_profile("smoke")
    merged = config.load_profile("smoke", {"seed": 7, "seeds": [3, 4]})
    assert merged["seed"] == 7 and merged["seeds"] == [3, 4]
    assert {k: v for k, v in merged.items() if k not in ("seed", "seeds")} == \
        {k: v for k, v in base.items() if k not in ("seed", "seeds")}
    assert config.load_profile("smoke")["seed"] == base["seed"]  # the shipped profile is not mutated


def test_unknown_profile_names_the_choices():
    with pytest.raises(ProfileError, match=r"unknown profile 'nope'.*demo"):
        config.load_profile("nope")


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ProfileError, match=r"unknown parameter 'nonexistent'.*seed"):
        config.load_profile("demo", {"nonexistent": 1})
    with pytest.raises(ProfileError, match="nonexistent"):
        config.parse_overrides([("nonexistent", "1")])


@pytest.mark.parametrize("name,text,expected", [
    ("seed", "3", 3),
    ("seeds", "[1, 2]", [1, 2]),
    ("seeds", "5", [5]),
    ("device", "cpu", "cpu"),
])
def test_cli_values_are_parsed_by_type(name, text, expected):
    assert config.parse_overrides([(name, text)]) == {name: expected}


@pytest.mark.parametrize("name,text", [("seed", "abc"), ("seed", "1.5"), ("seeds", "[1, x]"), ("seed", "true")])
def test_wrong_types_are_rejected(name, text):
    with pytest.raises(ProfileError, match=name):
        config.parse_overrides([(name, text)])


def test_coerce_rules():
    f = config.ParamSpec("x", "float", "")
    assert config.coerce(f, 1) == 1.0 and isinstance(config.coerce(f, 1), float)
    with pytest.raises(ProfileError):
        config.coerce(f, True)
    i = config.ParamSpec("n", "int", "")
    with pytest.raises(ProfileError):
        config.coerce(i, None)
    assert config.coerce(config.ParamSpec("r", "str?", ""), None) is None
    b = config.ParamSpec("b", "bool", "")
    with pytest.raises(ProfileError):
        config.coerce(b, 1)
    assert config.coerce(config.ParamSpec("l", "list[float]", ""), (1, 2.5)) == [1.0, 2.5]


def test_declared_choices_are_what_the_library_accepts():
    from omnifer_lib import models, train
    from omnifer_lib.publish.config import parameter_specs
    from omnifer_lib.distill.functional import INIT_SCOPES
    from omnifer_lib.select.rules import RULES

    specs = parameter_specs()
    assert sorted(specs["backbones"].checks["choices"]) == sorted(models.available())
    assert sorted(specs["backbones"].checks["min_image_size"]) == sorted(models.available())
    assert tuple(specs["das_strategy"].checks["choices"]) == tuple(train.DAS_STRATEGIES)
    assert tuple(specs["selection_rule"].checks["choices"]) == tuple(RULES)
    assert sorted(specs["distill_init_scope"].checks["choices"]) == sorted(INIT_SCOPES)


def test_each_backbone_runs_at_its_declared_smallest_image_size():
    import torch

    from omnifer_lib import models
    from omnifer_lib.publish.config import parameter_specs

    for name, px in parameter_specs()["backbones"].checks["min_image_size"].items():
        model = models.build(name, width=4) if name.endswith("small") else models.build(name)
        with torch.no_grad():
            assert model.eval()(torch.rand(1, 3, px, px)).shape == (1, 7)


@pytest.mark.parametrize("overrides,needle", [
    ({"delta": -1.0}, "[0, 2)"), ({"epochs": 0}, "[1, inf)"), ({"selection_rule": "bogus"}, "'margin'"),
    ({"backbones": ["nope"]}, "'vgg_small'"), ({"device": "gpu"}, "cuda:N"), ({"momentum": 1.0}, "[0, 1)"),
    ({"softmax_threshold": 0.0}, "(0, 1]"), ({"deltas": [0.1, 2.5]}, "2.5 (in [0.1, 2.5])"),
    ({"backbones": ["vgg_face"], "image_size": 16}, "at least 32 px"),
])
def test_values_outside_what_is_declared_are_refused(overrides, needle):
    with pytest.raises(ProfileError) as err:
        load_profile("smoke", overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)
    name = next(iter(overrides)) if "image_size" not in overrides else "image_size"
    assert f"'{name}'" in str(err.value)


def test_null_passes_the_checks_of_a_nullable_parameter():
    assert load_profile("smoke", {"per_class_cap": None, "softmax_threshold": None})["per_class_cap"] is None
