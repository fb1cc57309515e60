import pytest

from engine.recipe.template import Scope, TemplateFailure, evaluate


def ev(expression, **values):
    return evaluate(expression, Scope([values]))


def test_result_tests_read_the_registered_result():
    result = {"changed": True, "failed": False, "skipped": False}
    assert ev("r is changed and r is succeeded and r is not failed and r is not skipped", r=result)
    assert ev("r is failed", r={"failed": True}) and ev("r is not success", r={"failed": True})


def test_defined_is_false_for_an_undefined_name_even_with_strict_undefined():
    assert ev("missing is defined") is False
    assert ev("missing is undefined") is True


def test_result_test_on_a_non_dict_names_the_test():
    with pytest.raises(TemplateFailure, match="'changed' test expects a dictionary"):
        ev("'text' is changed")


@pytest.mark.parametrize("expression, expected", [
    ("'1.10' is version('1.9', '>')", True),
    ("'1.0' is version('1.0.0', '<')", True),            # loose: [1, 0] < [1, 0, 0]
    ("'2.0.0-rc.1' is version('2.0.0', 'lt', version_type='semver')", True),
    ("'1.0b2' is version('1.0a9', '>', strict=true)", True),
    ("'1.2' is version('1.2', '!=')", False),
])
def test_version_operators_and_kinds(expression, expected):
    assert ev(expression) is expected


@pytest.mark.parametrize("expression, message", [
    ("'1.0' is version('1.0', 'bigger')", "Invalid operator type"),
    ("'1.a' is version('1.1', '<')", "Version comparison failed"),   # a number against a word, as in Ansible
    ("'1' is version('1.0', '<', strict=true)", "invalid version number '1'"),
    ("'' is version('1.0')", "cannot be empty"),
])
def test_version_errors_say_why(expression, message):
    with pytest.raises(TemplateFailure, match=message):
        ev(expression)


def test_file_tests_look_at_the_controller(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    assert ev("(d ~ '/f') is file and d is directory and (d ~ '/l') is link and d is abs", d=str(tmp_path))
    assert ev("(d ~ '/gone') is exists", d=str(tmp_path)) is False
