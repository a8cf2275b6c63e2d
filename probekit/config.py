"""One config path for every command line: dataclasses whose fields carry their help, choices and defaults.

A settings class declares each field with ``option(default, "help", choices=..., runtime=...)``; transformers'
``HfArgumentParser`` turns the class into flags (``--eval-limit`` and ``--eval_limit`` both work, ``--help`` shows
every meaning and default), ``from_namespace`` turns parsed flags back into the class, and ``read_toml`` reads the
same fields from a TOML file. Fields marked ``runtime=True`` say how something is computed, not what (device,
batch size of inference, ...): ``runtime_fields`` names them, for what keys a result (a run's hash, its resume
check) to leave them out. A field that changes results (a dtype, say) is never runtime.

Settings are declared once and nested: ``nested(SlickConfig, prefix="slick_", inherit=("seed",))`` makes a field
holding a whole settings class (its flags prefixed: ``--slick-runs``; `inherit`: names that take the parent's value),
``section(RunConfig, "epochs", "lr", name=...)`` a class of some of another's fields (the same ``Field`` objects), and
``declared(C, "x")`` one field of another class. ``flat_values`` and ``replace_flat`` read and replace an instance's
settings by their flag dests.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from .errors import ProbekitError


def option(default: Any = MISSING, help: str = "", *, choices: list | tuple | None = None, runtime: bool = False,
           default_factory: Any = MISSING, **metadata) -> Any:
    """A dataclass field with its help text (and choices) for the command line; ``runtime`` as above. The help is
    plain text ("95%" is shown as written)."""
    meta = {"help": help.replace("%", "%%"), "runtime": runtime, **metadata}
    if choices is not None:
        meta["choices"] = list(choices)
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def runtime_fields(cls) -> frozenset[str]:
    """The fields of settings class `cls` that do not change results."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("runtime"))


def add_arguments(parser: argparse.ArgumentParser, cls, prefix: str = "", skip: tuple[str, ...] = (),
                  label: str = "") -> argparse.ArgumentParser:
    """Add the flags of settings class `cls` to an existing parser (a subcommand's, say), its sections' flags too
    (with their prefixes): the dashed spelling shown first (both work), a boolean flag's optional value shown as
    true|false."""
    for action in _parser_class()(cls, add_help=False)._actions:
        if action.dest in skip:
            continue
        if prefix:
            _prefix(action, prefix)
        if label and action.help:
            action.help = f"{label}: {action.help}"
        action.option_strings.sort(key=lambda s: "_" in s)
        if (action.nargs == "?" and action.const is True) or getattr(action.type, "__name__", "") == "string_to_bool":
            action.metavar = "true|false"  # a flag, or an optional boolean whose unset value means "automatic"
        parser._add_action(action)
    for f in _sections(cls):
        add_arguments(parser, f.metadata[_SECTION], prefix + f.metadata["prefix"], _skipped(f),
                      ": ".join(x for x in (label, f.metadata["label"]) if x))
    return parser


def _prefix(action: argparse.Action, prefix: str) -> None:
    """Rename a section's flag: ``--runs`` → ``--slick-runs`` and ``--slick_runs`` (dest ``slick_runs``)."""
    name = prefix + action.dest
    strings = []
    for s in action.option_strings:
        head = s[: len(s) - len(action.dest)]  # "--", or "--no_" / "--no-" of a boolean's complement
        strings += [head.replace("_", "-") + name.replace("_", "-"), head + name]
    action.option_strings, action.dest = list(dict.fromkeys(strings)), name


def named_preset(argv: list[str], flag: str, presets, default: str) -> str:
    """The preset `flag` names in `argv` (`default` if none), read before the full parser is built so that the
    preset's values can be its defaults; an unknown name gives `default` here and is refused by the full parser."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument(flag, default=default)
    name = getattr(ap.parse_known_args(argv)[0], flag.lstrip("-").replace("-", "_"))
    return name if name in presets else default


def section(cls, *names: str, name: str) -> type:
    """A frozen settings class of the named fields of `cls`: the very same ``Field`` objects, so each setting stays
    declared once (e.g. the run settings an analysis profile nests are RunConfig's own). It belongs to the module
    that calls this (where pickle finds it by `name`)."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    made = dataclasses.make_dataclass(name, [(n, by_name[n].type, by_name[n]) for n in names], frozen=True)
    made.__module__ = sys._getframe(1).f_globals["__name__"]
    made.__doc__ = f"{cls.__name__}'s {', '.join(names)}."
    return made


def declared(cls, name: str) -> Any:
    """Field `name` of settings class `cls`, to declare the same setting in another class (``x: T = declared(C,
    "x")``, with the annotation C has)."""
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def nested(cls, label: str = "", *, prefix: str = "", inherit: tuple[str, ...] = (),
           exclude: tuple[str, ...] = ()) -> Any:
    """A field holding a settings section, an instance of `cls`: its flags are the section's with `prefix` (prefix
    "slick_": ``--slick-runs``) and `label` before their help ("SLiCK: ..."); the names in `inherit` are no flags
    but take the parent's value of the same name (the profile's one seed); those in `exclude` are no flags and keep
    the section's default."""
    meta = {_SECTION: cls, "prefix": prefix, "inherit": tuple(inherit), "exclude": tuple(exclude), "label": label}
    return dataclasses.field(default_factory=cls, metadata=meta)


def _sections(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if _SECTION in f.metadata]


def _skipped(f: dataclasses.Field) -> tuple[str, ...]:
    return (*f.metadata["inherit"], *f.metadata["exclude"])


def sync_sections(obj) -> None:
    """Give `obj`'s sections the values they inherit from it (call in ``__post_init__``; frozen classes too)."""
    for f in _sections(type(obj)):
        part = getattr(obj, f.name)
        want = {n: getattr(obj, n) for n in f.metadata["inherit"]}
        if any(getattr(part, n) != v for n, v in want.items()):
            object.__setattr__(obj, f.name, dataclasses.replace(part, **want))


def flat_values(obj, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Flag dest → value of settings instance `obj`, its sections flattened (what the parser's defaults are)."""
    out = {}
    for f in dataclasses.fields(obj):
        if f.name in skip or not f.init:
            continue
        value = getattr(obj, f.name)
        if _SECTION in f.metadata:
            out.update(flat_values(value, prefix + f.metadata["prefix"], _skipped(f)))
        else:
            out[prefix + f.name] = value
    return out


def replace_flat(obj, **flat):
    """`obj` with the settings named by their flag dests (``known_size``, ``slick_runs``) replaced."""
    unknown = set(flat) - set(flat_values(obj))
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no setting(s) {sorted(unknown)}")
    changes = {k: v for k, v in flat.items() if k in {f.name for f in dataclasses.fields(obj)}}
    for f in _sections(type(obj)):
        part = getattr(obj, f.name)
        mine = flat_values(part, f.metadata["prefix"], _skipped(f))
        sub = {k[len(f.metadata["prefix"]):]: v for k, v in flat.items() if k in mine}
        if sub:
            changes[f.name] = replace_flat(part, **sub)
    changed = dataclasses.replace(obj, **changes)
    sync_sections(changed)
    return changed


def from_namespace(cls, namespace: argparse.Namespace | dict, **overrides):
    """An instance of `cls` from parsed flags (or a dest → value dict; fields it lacks keep their defaults), its
    sections built from their (prefixed) flags and given the values they inherit."""
    values = {**(namespace if isinstance(namespace, dict) else vars(namespace)), **overrides}
    return _build(cls, values, "", {}, ())


def _build(cls, values: dict, prefix: str, inherited: dict, skip: tuple[str, ...]):
    kw = {f.name: values[prefix + f.name] for f in dataclasses.fields(cls)
          if f.init and _SECTION not in f.metadata and f.name not in skip and prefix + f.name in values}
    kw.update(inherited)
    for f in _sections(cls):
        parent = {n: kw[n] if n in kw else _default(cls, n) for n in f.metadata["inherit"]}
        kw[f.name] = _build(f.metadata[_SECTION], values, prefix + f.metadata["prefix"], parent, _skipped(f))
    return cls(**kw)


def _default(cls, name: str) -> Any:
    f = declared(cls, name)
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def _parser_class():
    """HfArgumentParser, taught to ignore the field metadata that is ours rather than argparse's."""
    import copy
    from types import MappingProxyType

    from transformers import HfArgumentParser

    class Parser(HfArgumentParser):
        @staticmethod
        def _parse_dataclass_field(parser, field):
            if _SECTION in field.metadata:
                return  # a section: its fields are flags of their own (add_arguments)
            field = copy.copy(field)
            field.metadata = MappingProxyType({k: v for k, v in field.metadata.items() if k not in _OURS})
            HfArgumentParser._parse_dataclass_field(parser, field)

    return Parser


_SECTION = "section"
_OURS = ("runtime", _SECTION, "prefix", "inherit", "exclude", "label")


def read_toml(path: str | Path, cls=None, renamed: dict[str, str] | None = None) -> dict:
    """The key/value pairs of a TOML file, keys named by `renamed`'s old names under their new ones; with `cls`,
    unknown keys are an error naming them."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProbekitError(f"cannot read config {path}: {exc}") from None
    values = {(renamed or {}).get(k, k): v for k, v in values.items()}
    if cls is not None:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ProbekitError(f"unknown config key(s) {sorted(unknown)} in {path}")
    return values
