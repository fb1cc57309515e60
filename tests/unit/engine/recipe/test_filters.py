import pytest

from engine.recipe.template import SandboxRefusal, Scope, TemplateFailure, render


def r(template, **values):
    return render(template, Scope([values]))


def test_mandatory_names_the_variable_or_says_the_message():
    with pytest.raises(TemplateFailure, match="Mandatory variable 'port' not defined"):
        r("{{ port | mandatory }}")
    with pytest.raises(TemplateFailure, match="set a port"):
        r("{{ port | mandatory('set a port') }}")
    assert r("{{ port | mandatory }}", port=22) == 22


@pytest.mark.parametrize("template", [
    "{{ range(2000) | product(range(2000)) }}",
    "{{ range(20) | permutations }}",
    "{{ range(60) | combinations(30) }}",
    "{{ 'x' | comment(prefix_count=10000000) }}",
])
def test_combinatorics_that_would_be_huge_are_refused_before_they_are_made(template):
    with pytest.raises(SandboxRefusal, match="larger than 1000000"):
        r(template)


def test_product_and_zip_give_lists_not_iterators():
    assert r("{{ [1, 2] | product(['a']) }}") == [(1, "a"), (2, "a")]
    assert r("{{ [1, 2] | zip(['a', 'b']) }}") == [(1, "a"), (2, "b")]
    assert r("{{ [1, 2] | map('string') }}") == ["1", "2"]


# What Ansible 2.19's password_hash gives (with passlib 1.7.4, which it needs) for these salts.
@pytest.mark.parametrize("args, expected", [
    ("'sha512', 'abcdefgh'", "$6$rounds=656000$abcdefgh$/Ei/7YaGhLUaj/.Vzhbn8/qTav7snBIiSWc4ltNfH/h5CKGCnV8Kt"
                             "AzHxd56WDXc3DF7SfbULGkU/EoGIlOV70"),
    ("'sha512', 'abcdefgh', rounds=5000", "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrV"
                                          "ACtLtip/cZ/1GM/O6IND4WQhG."),
    ("'md5', 'abcdefgh'", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"),
])
def test_password_hash_is_ansibles_for_a_given_salt(args, expected):
    assert r("{{ 'secret' | password_hash(" + args + ") }}") == expected


def test_password_hash_without_salt_is_random_and_well_formed():
    first, second = r("{{ 'x' | password_hash('sha256') }}"), r("{{ 'x' | password_hash('sha256') }}")
    assert first != second and first.startswith("$5$rounds=535000$") and len(first.split("$")[3]) == 16


@pytest.mark.parametrize("args, message", [
    ("'sha512', 'a_b'", "invalid characters"), ("'sha512', 'x' * 17", "salt too large"),
    ("'sha512', 'ab', rounds=10", "rounds"), ("'bcrypt2'", "not supported"),
])
def test_password_hash_refuses_what_ansible_refuses(args, message):
    with pytest.raises(TemplateFailure, match=message):
        r("{{ 'secret' | password_hash(" + args + ") }}")


def test_regex_search_with_an_unknown_group_argument_is_an_error():
    with pytest.raises(TemplateFailure, match="unknown argument"):
        r("{{ 'abc' | regex_search('b', 'x') }}")


def test_type_debug_gives_the_builtin_names():
    class Mine(dict):
        pass
    assert r("{{ v | type_debug }}", v=Mine()) == "dict"
