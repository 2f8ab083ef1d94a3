import pytest

from omnifer_lib import config
from omnifer_lib.config import ProfileError


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
