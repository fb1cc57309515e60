"""HCL2 expressions and Go template actions in Jinja: each translation is rendered by recipe's own template
engine and must give what Packer would have computed."""
from __future__ import annotations

import dataclasses

import hcl2
import pytest

from engine.recipe.template import Scope, render
from modules.importers.packer import go_templates, hcl_expressions
from modules.importers.packer.expressions import InvalidReference, Untranslatable, data
from modules.importers.packer.hcl_expressions import HclContext
from modules.importers.packer.names import RecipeNames

NAMES = RecipeNames.of(["region", "image-name", "cpus", "tags", "zones", "build"], ["label", "region"])
CONTEXT = HclContext(names=NAMES, template_dir="/srv/packer", workdir="/srv")
VALUES = {"region": "eu-west-1", "image_name": "web", "cpus": 2, "tags": {"Name": "web", "team-a": "x"},
          "zones": ["a", "b"], "packer_build": "b", "label": "lbl", "local_region": "local"}


def translated(expression: str) -> object:
    tree = hcl2.parses_to_tree(f"x = {expression}\n")
    attribute = next(c for c in tree.children[0].children if getattr(c, "data", "") == "attribute")
    return data(hcl_expressions.translate(attribute.children[-1], CONTEXT))


def rendered(expression: str) -> object:
    return render(translated(expression), Scope([VALUES], {"build": {"source": "vm", "id": "20240101-0000"}}))


@pytest.mark.parametrize("expression, jinja", [
    ("var.region", "{{ region }}"),
    ("var.image-name", "{{ image_name }}"),                 # hyphens: recipe identifiers
    ("var.build", "{{ packer_build }}"),                    # a name recipe reserves
    ("local.region", "{{ local_region }}"),                 # a local named as a variable
    ('"${var.image-name}-${var.region}"', "{{ image_name }}-{{ region }}"),
    ('"$${HOME}"', "${HOME}"),                              # escaped: the shell's
    ('"${path.root}/http"', "/srv/packer/http"),
    ('env("AWS_REGION")', "{{ lookup('env', 'AWS_REGION') }}"),
    ('"a {{timestamp}}"', "a {{ build.timestamp }}"),       # Go template actions still work in HCL2 strings
    ('"x ${#y}"'.replace("${#", "$${#"), "x ${{ '{#' }}y}"),  # Jinja's comment opener in the text, escaped
    ("source.name", "{{ build.source }}"),
])
def test_translations(expression, jinja):
    assert translated(expression) == jinja


@pytest.mark.parametrize("expression, value", [
    ("var.cpus", 2),                                         # one expression keeps its type
    ("var.cpus * 2 + 1", 5),
    ('var.region == "eu-west-1" ? "eu" : "other"', "eu"),
    ("!true || var.cpus > 1", True),
    ('upper("${var.image-name}-x")', "WEB-X"),
    ('lower("ABC")', "abc"),
    ('join(",", var.zones)', "a,b"),
    ('replace("a-b-c", "-", "_")', "a_b_c"),
    ('replace("a1b22", "/[0-9]+/", "#")', "a#b#"),
    ('regex_replace("web-12", "([a-z]+)-([0-9]+)", "$2-$1")', "12-web"),
    ('trimspace("  x ")', "x"),
    ("length(var.zones)", 2),
    ('var.tags["team-a"]', "x"),
    ("var.tags.Name", "web"),
    ("var.zones[1]", "b"),
    ('{ name = var.region, "k" = 1 }', {"name": "eu-west-1", "k": 1}),
    ("[var.cpus, 3]", [2, 3]),
    ("1.5", 1.5),
    ("null", None),
])
def test_translations_compute_what_packer_computes(expression, value):
    assert rendered(expression) == value


def test_a_heredoc_keeps_its_lines_and_interpolations():
    assert rendered('<<EOF\nregion=${var.region}\n  indented\nEOF\n') == "region=eu-west-1\n  indented\n"
    assert rendered('<<-EOF\n    a ${var.cpus}\n      b\n    EOF\n') == "a 2\n  b\n"


@pytest.mark.parametrize("expression, words", [
    ("data.amazon-ami.debian.id", "data sources are not imported"),
    ('formatdate("YYYY", timestamp())', "formatdate() function has no recipe equivalent"),
    ("[for z in var.zones : upper(z)]", "has no Jinja equivalent"),
    ("build.Host", "known only to Packer while it builds"),
    ('"%{ if true }x%{ endif }"', "template directives"),
])
def test_what_has_no_jinja_equivalent(expression, words):
    with pytest.raises(Untranslatable, match=words.replace("(", r"\(").replace(")", r"\)")):
        translated(expression)


@pytest.mark.parametrize("expression, words", [("var.regoin", "no variable 'regoin' is declared"),
                                               ("local.lable", "no local 'lable' is declared")])
def test_an_undeclared_reference_is_invalid(expression, words):
    with pytest.raises(InvalidReference, match=words):
        translated(expression)


GO = go_templates.GoContext(user_variables={"ssh_user": "ssh_user", "name": "name"}, template_dir="/srv/packer",
                            workdir="/srv")


@pytest.mark.parametrize("text, jinja", [
    ("{{user `ssh_user`}}", "{{ ssh_user }}"),
    ('{{ user "name" }}-x', "{{ name }}-x"),
    ("{{env `HOME`}}", "{{ lookup('env', 'HOME') }}"),
    ("{{template_dir}}/scripts", "/srv/packer/scripts"),
    ("{{pwd}}", "/srv"),
    ("web-{{timestamp}}", "web-{{ build.timestamp }}"),
    ("{{build_name}}", "{{ build.source }}"),
    ("{{ uuid }}", "{{ build.id }}"),
    ("{{user `name` | lower}}", "{{ (name) | lower }}"),
    ("plain {% raw %}", "plain {{ '{%' }} raw %}"),
])
def test_go_template_actions(text, jinja):
    assert data(go_templates.translate(text, GO)) == jinja


def test_go_clean_resource_name_renders_as_packer_cleans():
    jinja = data(go_templates.translate("{{user `name` | clean_resource_name}}", GO))
    assert render(jinja, Scope([{"name": "web:1.0 (beta)*"}], {})) == "web-1.0 (beta)-"


@pytest.mark.parametrize("text, words", [("{{ .Path }}", "filled in by Packer"),
                                         ("{{isotime \"2006\"}}", "'isotime' function"),
                                         ("{{ user `name` | split \"-\" 0 }}", "no Jinja filter")])
def test_go_actions_recipe_cannot_evaluate(text, words):
    with pytest.raises(Untranslatable, match=words):
        go_templates.translate(text, GO)


def test_go_builder_fields_are_known_where_packer_fills_them_in():
    """{{ .HTTPIP }} and the rest are Packer's only in a builder's boot_command: recipe's variables there."""
    boot = dataclasses.replace(GO, fields=go_templates.builder_fields("boot_command"))
    text = "url=http://{{ .HTTPIP }}:{{.HTTPPort}}/ks.cfg hostname={{ .Name }}"
    assert data(go_templates.translate(text, boot)) == \
        "url=http://{{ http_ip }}:{{ http_port }}/ks.cfg hostname={{ build.name }}"
    assert go_templates.builder_fields("iso_url") == {}
    with pytest.raises(Untranslatable, match="filled in by Packer"):
        go_templates.translate("{{ .Path }}", boot)
    with pytest.raises(Untranslatable, match="filled in by Packer"):
        go_templates.translate("{{ .HTTPIP }}", GO)


def test_go_user_of_an_undeclared_variable_is_invalid():
    with pytest.raises(InvalidReference, match="no variable 'nope' is declared"):
        go_templates.translate("{{user `nope`}}", GO)


@pytest.mark.parametrize("text", ["it's", 'say "hi"', "both ' and \"", r"back\slash", "two\nlines"])
def test_constants_inside_expressions_keep_their_text(text):
    hcl_text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    assert rendered(f'upper("{hcl_text}")') == text.upper()
