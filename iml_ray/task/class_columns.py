"""Which class each probability column of a sample submission stands for.

Kaggle names those columns after the classes, but not always bare: the cirrhosis
playground's target `Status` holds C, CL and D while its submission asks for
`Status_C`, `Status_CL` and `Status_D`; others write `class_0`, `p_yes` or
`Adoption` for `adoption`. A column matches a class when it is the class's
name exactly, then ignoring case, then with one prefix and suffix shared by every
column. A match must pair every column with a different class; two different
pairings are ambiguous and give no match.
"""
from __future__ import annotations

from typing import Any

from iml_ray.metrics.labels import as_number


def classes_of_columns(columns: list[str] | tuple[str, ...], classes: list[Any]) -> tuple[tuple[Any, ...], str] | None:
    """The class of each column, in column order, and how they were matched; None when they do not match."""
    if len(columns) != len(classes) or not columns:
        return None
    # Classes as written, then whole numbers without their ".0" (a target with gaps is read as floats).
    for spell in (str, _whole_numbers_bare):
        found = _match(columns, classes, spell)
        if found is not None:
            return found
    return None


def _whole_numbers_bare(value: Any) -> str:
    number = None if isinstance(value, str) else as_number(value)
    return str(int(number)) if number is not None and number.is_integer() else str(value)


def _match(columns, classes, spell) -> tuple[tuple[Any, ...], str] | None:
    for fold, how in ((str, "named exactly as the classes"), (str.casefold, "named as the classes, ignoring case")):
        by_name = {fold(spell(c)): c for c in classes}
        if len(by_name) == len(classes) and all(fold(c) in by_name for c in columns) \
                and len({fold(c) for c in columns}) == len(columns):
            return tuple(by_name[fold(c)] for c in columns), how
    found = _with_shared_affixes(columns, classes, spell)
    if found is None:
        return None
    pairing, prefix, suffix = found
    return pairing, f"named '{prefix}<class>{suffix}'"


def _with_shared_affixes(columns, classes, spell) -> tuple[tuple[Any, ...], str, str] | None:
    """The one pairing where every column is prefix + class + suffix for a prefix and suffix shared by all."""
    folded_columns = [str(c).casefold() for c in columns]
    names = {spell(c).casefold(): c for c in classes}
    if len(names) != len(classes):
        return None
    pairings: dict[tuple, tuple[str, str]] = {}
    first = folded_columns[0]
    for name in names:
        if not name:
            continue
        start = first.find(name)
        while start >= 0:
            prefix, suffix = first[:start], first[start + len(name):]
            if prefix or suffix:
                pairing = _pair(folded_columns, names, prefix, suffix)
                if pairing is not None:
                    pairings.setdefault(pairing, (str(columns[0])[:len(prefix)],
                                                  str(columns[0])[len(str(columns[0])) - len(suffix):]))
            start = first.find(name, start + 1)
    if len(pairings) != 1:
        return None
    pairing, (prefix, suffix) = next(iter(pairings.items()))
    return pairing, prefix, suffix


def _pair(folded_columns: list[str], names: dict[str, Any], prefix: str, suffix: str) -> tuple[Any, ...] | None:
    pairing = []
    for column in folded_columns:
        if not (column.startswith(prefix) and column.endswith(suffix)
                and len(column) > len(prefix) + len(suffix)):
            return None
        name = column[len(prefix): len(column) - len(suffix)]
        if name not in names:
            return None
        pairing.append(names[name])
    if len({str(c) for c in pairing}) != len(pairing):
        return None
    return tuple(pairing)
