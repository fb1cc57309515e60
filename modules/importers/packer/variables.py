"""Packer's variables and locals as the recipe's vars and secrets.

A variable's value is the last one given (its default, then the variable
files, then -var, as Packer takes them); a local is a var whose value is a
template of the others. A sensitive one is listed in `secrets:`, and its value
is written only when it is no value in clear (a lookup of the environment);
otherwise it is left for --var or RECIPE_VAR_<name> to give, and a comment says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from modules.importers.packer.draft import Comment, Part
from modules.importers.packer.template import Assignment, Template, Value, Variable

GIVE = "give it with --var {name}=... or the environment variable RECIPE_VAR_{name}"


@dataclass(frozen=True)
class MappedVariables:
    variables: tuple[Part, ...]      # keyed by name
    secrets: tuple[Part, ...]        # the names, each with its comments
    comments: tuple[Comment, ...]    # above vars: (how to set them, what could not be kept)


def _value_of(variable: Variable, assignments: list[Assignment]) -> tuple[Value | None, str]:
    """The value Packer would use, and where it comes from ("" for the variable's own default)."""
    given = [a for a in assignments if a.name == variable.name]
    if given and not variable.is_local:
        return given[-1].value, given[-1].origin
    return variable.default, ""


def _comments(variable: Variable, value: Value, origin: str) -> list[Comment]:
    comments = []
    if variable.description:
        comments.append(Comment(variable.description))
    if variable.template_name != variable.name:
        kind = "local" if variable.is_local else "var"
        comments.append(Comment.note(f"Packer's {kind}.{variable.template_name}"))
    if origin:
        comments.append(Comment.note(f"the value given in {origin}"))
    for name in value.env:
        comments.append(Comment.note(f"read from the environment variable {name} when the recipe is rendered, as "
                                     f"Packer read it (empty when unset); RECIPE_VAR_{variable.name} overrides it"))
    return comments


def _secret(variable: Variable, value: Value | None, origin: str) -> tuple[Part, Part | None]:
    """A sensitive variable: listed in secrets; its value kept only when it is not in clear."""
    if value is not None and value.translated and not value.is_literal:
        return Part(variable.name, comments=(Comment.note("sensitive: never shown in logs or errors"),)), \
            Part(value.data, key=variable.name, comments=tuple(_comments(variable, value, origin)))
    where = f" (the template's value, from {origin or 'its default'}, is left out)" if value is not None else ""
    text = f"sensitive, so its value is not written here{where}: {GIVE.format(name=variable.name)}"
    return Part(variable.name, comments=(Comment.note(text),)), None


def map_variables(template: Template) -> MappedVariables:
    assignments = list(template.assignments)
    variables: list[Part] = []
    secrets: list[Part] = []
    comments = [Comment.note("set these with --var NAME=VALUE or RECIPE_VAR_NAME, as Packer's -var and PKR_VAR_NAME")]
    for variable in template.variables:
        value, origin = _value_of(variable, assignments)
        if variable.sensitive:
            secret, kept = _secret(variable, value, origin)
            secrets.append(secret)
            variables += [kept] if kept else []
        elif value is None:
            comments.append(Comment.note(f"{variable.name} has no default in the template: "
                                         f"{GIVE.format(name=variable.name)}"))
        elif not value.translated:
            comments.append(Comment.not_imported(value.position, f"{'local' if variable.is_local else 'var'}."
                                                 f"{variable.template_name}", value.problem, value.source))
        else:
            variables.append(Part(value.data, key=variable.name, comments=tuple(_comments(variable, value, origin))))
    return MappedVariables(tuple(variables), tuple(secrets), tuple(comments))
