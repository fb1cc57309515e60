"""Ansible's filters on lists and dicts: set theory, flatten, combinatorics, zip, subelements, random, ...

Semantics follow ansible/plugins/filter/core.py and mathstuff.py. Where Ansible returns an iterator
(product, zip, map, ...) these return a list: a template's value is data, never a lazy Python object.
Combinatorics that would make more than MAX_SIZE items are refused before any item is made."""
from __future__ import annotations

import itertools
import random as _random
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Undefined, pass_context, pass_environment
from jinja2.exceptions import TemplateRuntimeError
from jinja2.filters import (do_unique, sync_do_map, sync_do_reject, sync_do_rejectattr, sync_do_select,
                            sync_do_selectattr)

from engine.recipe.limits import check_count, combinations_size, permutations_size, product_size, sized


class FilterFailure(TemplateRuntimeError):
    """A filter was given what it cannot work on; the message names the filter."""


def is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


@pass_environment
def unique(environment: Any, values: Any, case_sensitive: Any = None, attribute: Any = None) -> list:
    """Jinja's unique (case-insensitive unless told: Ansible passes bool(None)); unhashable items by equality."""
    try:
        return list(do_unique(environment, values, case_sensitive=bool(case_sensitive), attribute=attribute))
    except TypeError:
        if case_sensitive is False or attribute:
            raise FilterFailure("unique: these items cannot be compared with case_sensitive=False or attribute=")
    kept: list = []
    for item in values:
        if item not in kept:
            kept.append(item)
    return kept


# Ansible's set filters use Python sets where the items allow it, so the order is a set's order (ints
# sorted by hash, strings arbitrary per process), and fall back to first-seen order for unhashable items.
@pass_environment
def union(environment: Any, a: Any, b: Any) -> list:
    try:
        return list(set(a) | set(b))
    except TypeError:
        return unique(environment, list(a) + list(b), True)


@pass_environment
def intersect(environment: Any, a: Any, b: Any) -> list:
    try:
        return list(set(a) & set(b))
    except TypeError:
        return unique(environment, [x for x in a if x in b], True)


@pass_environment
def difference(environment: Any, a: Any, b: Any) -> list:
    try:
        return list(set(a) - set(b))
    except TypeError:
        return unique(environment, [x for x in a if x not in b], True)


@pass_environment
def symmetric_difference(environment: Any, a: Any, b: Any) -> list:
    try:
        return list(set(a) ^ set(b))
    except TypeError:
        both = intersect(environment, a, b)
        return [x for x in union(environment, a, b) if x not in both]


def flatten(values: Any, levels: int | None = None, skip_nulls: bool = True) -> list:
    flat: list = []
    for element in values:
        if skip_nulls and (element is None or element in ("None", "null")):
            continue
        if is_sequence(element) and (levels is None or levels >= 1):
            flat.extend(flatten(element, None if levels is None else int(levels) - 1, skip_nulls))
        else:
            flat.append(element)
    return flat


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, Undefined):
        if msg is not None:
            raise FilterFailure(str(msg))
        name = value._undefined_name
        raise FilterFailure(f"Mandatory variable {name!r} not defined." if name is not None
                            else "Mandatory variable not defined.")
    return value


def product(*iterables: Any, repeat: int = 1) -> list:
    pools = [sized(pool) for pool in iterables]
    check_count(product_size([len(pool) for pool in pools] * repeat), "product")
    return list(itertools.product(*pools, repeat=repeat))


def permutations(values: Any, r: int | None = None) -> list:
    pool = sized(values)
    check_count(permutations_size(len(pool), len(pool) if r is None else r), "permutations")
    return list(itertools.permutations(pool, r))


def combinations(values: Any, r: int) -> list:
    pool = sized(values)
    check_count(combinations_size(len(pool), r), "combinations")
    return list(itertools.combinations(pool, r))


def zip_(*iterables: Any) -> list:
    return list(zip(*iterables))


def zip_longest(*iterables: Any, fillvalue: Any = None) -> list:
    return list(itertools.zip_longest(*iterables, fillvalue=fillvalue))


def subelements(obj: Any, path: Any, skip_missing: bool = False) -> list:
    """(element, item) for each item of each element's list at path ('users' or 'a.b' or ['a', 'b'])."""
    if isinstance(obj, Mapping):
        elements = list(obj.values())
    elif isinstance(obj, list):
        elements = list(obj)
    else:
        raise FilterFailure("subelements: obj must be a list of dicts or a nested dict")
    if isinstance(path, list):
        keys = list(path)
    elif isinstance(path, str):
        keys = path.split(".")
    else:
        raise FilterFailure("subelements: subelements must be a list or a string")
    pairs = []
    for element in elements:
        values = _walk(element, keys, skip_missing)
        if not isinstance(values, list):
            raise FilterFailure(f"subelements: the key {keys[-1]!r} should point to a list, got {values!r}")
        pairs.extend([element, value] for value in values)     # lists, as Ansible 2.19 hands them on
    return pairs


def _walk(element: Any, keys: list, skip_missing: bool) -> Any:
    values = element
    for key in keys:
        try:
            values = values[key]
        except KeyError:
            if skip_missing:
                return []
            raise FilterFailure(f"subelements: could not find {key!r} key in iterated item {values!r}") from None
        except TypeError:
            raise FilterFailure(f"subelements: the key {key} should point to a dictionary, got '{values}'") from None
    return values


@pass_environment
def extract(environment: Any, item: Any, container: Any, morekeys: Any = None) -> Any:
    keys = [item] if morekeys is None else [item, *morekeys] if isinstance(morekeys, list) else [item, morekeys]
    value = container
    for key in keys:
        value = environment.getitem(value, key)     # the sandbox's getitem: no reaching into internals
    return value


def random(end: Any, start: Any = None, step: Any = None, seed: Any = None) -> Any:
    """Seeded, the same number Ansible picks (random.Random(seed)); unseeded, a system random one."""
    generator = _random.SystemRandom() if seed is None else _random.Random(seed)
    if isinstance(end, int) and not isinstance(end, bool):
        return generator.randrange(start or 0, end, step or 1)
    if hasattr(end, "__iter__"):
        if start or step:
            raise FilterFailure("random: start and step can only be used with integer values")
        return generator.choice(end)
    raise FilterFailure("random can only be used on sequences and integers")


def shuffle(values: Any, seed: Any = None) -> Any:
    try:
        items = list(values)
    except TypeError:
        return values       # Ansible gives back what it could not shuffle
    if seed:
        _random.Random(seed).shuffle(items)
    else:
        _random.SystemRandom().shuffle(items)
    return items


def type_debug(value: Any) -> str:
    """The builtin type's name Ansible shows: recipe's YAML mappings are 'dict', its strings 'str'."""
    return next(kind for kind in type(value).__mro__ if kind.__module__ == "builtins").__name__


def dict2items(value: Any, key_name: str = "key", value_name: str = "value") -> list[dict]:
    if not isinstance(value, Mapping):
        raise FilterFailure(f"dict2items requires a dictionary, got {type_debug(value)} instead.")
    return [{key_name: key, value_name: value[key]} for key in value]


def items2dict(value: Any, key_name: str = "key", value_name: str = "value") -> dict:
    if not is_sequence(value):
        raise FilterFailure(f"items2dict requires a list, got {type_debug(value)} instead.")
    try:
        return {item[key_name]: item[value_name] for item in value}
    except KeyError:
        raise FilterFailure(f"items2dict requires each dictionary in the list to contain the keys "
                            f"'{key_name}' and '{value_name}', got {value} instead.") from None
    except TypeError:
        raise FilterFailure(f"items2dict requires a list of dictionaries, got {value} instead.") from None


# Jinja's own map/select/reject return generators; Ansible's templates hand their lists on as lists.
@pass_context
def map_(context: Any, value: Any, *args: Any, **kwargs: Any) -> list:
    return list(sync_do_map(context, value, *args, **kwargs))


@pass_context
def select(context: Any, value: Any, *args: Any) -> list:
    return list(sync_do_select(context, value, *args))


@pass_context
def reject(context: Any, value: Any, *args: Any) -> list:
    return list(sync_do_reject(context, value, *args))


@pass_context
def selectattr(context: Any, value: Any, *args: Any) -> list:
    return list(sync_do_selectattr(context, value, *args))


@pass_context
def rejectattr(context: Any, value: Any, *args: Any) -> list:
    return list(sync_do_rejectattr(context, value, *args))


FILTERS = {
    "unique": unique, "union": union, "intersect": intersect, "difference": difference,
    "symmetric_difference": symmetric_difference, "flatten": flatten, "ternary": ternary, "mandatory": mandatory,
    "product": product, "permutations": permutations, "combinations": combinations,
    "zip": zip_, "zip_longest": zip_longest, "subelements": subelements, "extract": extract,
    "random": random, "shuffle": shuffle, "type_debug": type_debug, "dict2items": dict2items, "items2dict": items2dict,
    "map": map_, "select": select, "reject": reject, "selectattr": selectattr, "rejectattr": rejectattr,
}
