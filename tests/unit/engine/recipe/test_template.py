import pytest

from engine.recipe.template import Scope, TemplateFailure, evaluate, names_used, render, render_text


def scope(**values):
    return Scope([values], {"build": {"source": "local", "id": "x"}})


def test_single_expression_keeps_its_type():
    s = scope(ports=[80, 443], port=8080)
    assert render("{{ ports }}", s) == [80, 443]
    assert render("{{ port }}", s) == 8080
    assert render("port {{ port }}", s) == "port 8080"


def test_variables_render_lazily_and_once():
    s = scope(greeting="hello from {{ build.source }}", loud="{{ greeting | upper }}")
    assert render("{{ loud }}!", s) == "HELLO FROM LOCAL!"


def test_rendered_output_is_not_rendered_again():
    s = scope(text="{{ '{{' }} not a template {{ '}}' }}")
    assert render("{{ text }}", s) == "{{ not a template }}"


def test_undefined_variable_is_an_error_with_a_suggestion():
    with pytest.raises(TemplateFailure) as failure:
        render("{{ greting }}", scope(greeting="hi"))
    assert failure.value.message == "undefined variable 'greting'"
    assert "greeting" in failure.value.hint


def test_self_reference_is_reported_not_looped():
    with pytest.raises(TemplateFailure, match="refers to itself"):
        render("{{ a }}", scope(a="{{ b }}", b="{{ a }}"))


@pytest.mark.parametrize("escape", ["{{ ''.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
                                    "{{ build.__class__ }}", "{{ lipsum.__globals__ }}"])
def test_sandbox_refuses_attribute_escapes(escape):
    with pytest.raises(TemplateFailure) as failure:
        render(escape, scope())
    assert "sandbox" in failure.value.message or "undefined" in failure.value.message


def test_filters_people_reach_for():
    s = scope(data={"b": 1, "a": [1, 2]}, name="O'Brien")
    assert render("{{ data | to_json }}", s) == '{"b": 1, "a": [1, 2]}'
    assert render("{{ 'hi' | b64encode }}", s) == "aGk="
    assert render("{{ 'aGk=' | b64decode }}", s) == "hi"
    assert render("{{ name | quote }}", s) == "'O'\"'\"'Brien'"
    assert render("{{ 'a-b-c' | regex_replace('-', '_') }}", s) == "a_b_c"
    assert render("{{ missing | default('dflt') }}", s) == "dflt"
    assert "a: [1, 2]\n" in render("{{ data | to_yaml }}", s)
    assert "a:\n- 1\n- 2\n" in render("{{ data | to_nice_yaml }}", s)


def test_evaluate_bare_and_braced_expressions():
    s = scope(n=3)
    assert evaluate("n > 2", s) is True
    assert evaluate("{{ n == 4 }}", s) is False
    with pytest.raises(TemplateFailure, match="undefined"):
        evaluate("nope == 1", s)


def test_syntax_error_is_reported():
    with pytest.raises(TemplateFailure, match="syntax"):
        render("{{ n + }}", scope(n=1))


def test_render_text_always_gives_a_string():
    assert render_text("{{ n }}", scope(n=3)) == "3"


def test_names_used():
    assert names_used({"a": "{{ x.y }} {% for i in items %}{{ i }}{% endfor %}"}) == {"x", "items"}
    assert names_used("a and not b", expression=True) == {"a", "b"}


def test_text_around_a_single_expression_is_kept():
    assert render("{{ n }}\n", scope(n="x")) == "x\n"
    assert render(" {{ n }}", scope(n=1)) == " 1"
