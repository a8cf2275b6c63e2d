"""One config path for every command line: dataclasses whose fields carry their help, choices and defaults.

A settings class declares each field with ``option(default, "help", choices=..., runtime=...)``; transformers'
``HfArgumentParser`` turns the class into flags (``--eval-limit`` and ``--eval_limit`` both work, ``--help`` shows
every meaning and default), ``from_namespace`` turns parsed flags back into the class, and ``read_toml`` reads the
same fields from a TOML file. Fields marked ``runtime=True`` say how something is computed, not what (device,
batch size of inference, ...): ``runtime_fields`` names them, for what keys a result (a run's hash, its resume
check) to leave them out. A field that changes results (a dtype, say) is never runtime.
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


def from_namespace(cls, namespace: argparse.Namespace, **overrides):
    """An instance of `cls` from parsed flags (fields the namespace lacks keep their defaults)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in vars(namespace).items() if k in names}
    return cls(**{**values, **overrides})


def add_arguments(parser: argparse.ArgumentParser, cls) -> argparse.ArgumentParser:
    """Add the flags of settings class `cls` to an existing parser (a subcommand's, say): the dashed spelling shown
    first (both work), a boolean flag's optional value shown as true|false."""
    for action in _parser_class()(cls, add_help=False)._actions:
        action.option_strings.sort(key=lambda s: "_" in s)
        if (action.nargs == "?" and action.const is True) or getattr(action.type, "__name__", "") == "string_to_bool":
            action.metavar = "true|false"  # a flag, or an optional boolean whose unset value means "automatic"
        parser._add_action(action)
    return parser


def _parser_class():
    """HfArgumentParser, taught to ignore the field metadata that is ours rather than argparse's."""
    import copy
    from types import MappingProxyType

    from transformers import HfArgumentParser

    class Parser(HfArgumentParser):
        @staticmethod
        def _parse_dataclass_field(parser, field):
            field = copy.copy(field)
            field.metadata = MappingProxyType({k: v for k, v in field.metadata.items() if k not in _OURS})
            HfArgumentParser._parse_dataclass_field(parser, field)

    return Parser


_OURS = ("runtime",)


def read_toml(path: str | Path, cls=None) -> dict:
    """The key/value pairs of a TOML file; with `cls`, unknown keys are an error naming them."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProbekitError(f"cannot read config {path}: {exc}") from None
    if cls is not None:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ProbekitError(f"unknown config key(s) {sorted(unknown)} in {path}")
    return values
