"""Run configuration for ``searchqa train``: preset + config file + overrides, checked up front.

A run's :class:`~research_agents.grpo.config.GRPOConfig` is built in three layers, later ones
winning:

1. ``--preset NAME`` (default ``factbook-smollm2``);
2. ``--config run.yaml`` / ``run.json``: a mapping of field names to values (an optional
   ``preset:`` key picks the preset when the command line does not);
3. overrides on the command line: ``--field value``, ``--field=value`` or ``field=value``;
   ``extra.KEY=value`` sets one key of the free-form ``extra`` dict.

Every value is converted to its field's type and every name is checked (with a "did you mean"
for typos); :func:`check_config` (in :mod:`.runcheck`, re-exported here) then checks what
needs the world (question types against the dataset, reward and template names, the model
folder, the reward hook) before any model loads. Each problem is a
:class:`~research_env.commands.UsageError`: one line, exit status 2.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import types
import typing
from dataclasses import MISSING, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_agents.commands.runcheck import check_config as check_config
from research_agents.commands.runcheck import check_model as check_model
from research_env.commands import UsageError, choices_hint

if TYPE_CHECKING:
    from research_agents.grpo.config import GRPOConfig

RUN_CONFIG = "run_config.json"
"""The resolved config, saved in ``output_dir`` when a run starts (``--config`` reads it back)."""


# ---------------------------------------------------------------- field table
@lru_cache(maxsize=8)
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (attribute docstrings), by name.

    Fields inherited from dataclass bases (``GRPOConfig``'s ``EnvSettings`` and
    ``TurnSettings`` fields) take their base's docstring unless ``cls`` declares them again.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # bases first, so a redeclaration's docstring wins
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    tree = ast.parse(inspect.getsource(cls))
    body = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)).body
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def type_name(annotation: Any) -> str:
    """A short readable name of a field's type (``int | None``, ``hf|vllm``, ``tuple``)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is not None:
        return str(getattr(origin, "__name__", origin))
    return str(getattr(annotation, "__name__", annotation))


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def fields_help() -> str:
    """Every GRPOConfig field with its type, default and docstring (``train --help``)."""
    from research_agents.grpo.config import GRPOConfig

    hints = typing.get_type_hints(GRPOConfig)
    docs = field_docs(GRPOConfig)
    lines = [
        "run configuration (GRPOConfig fields; the preset's value wins over the default shown):",
        "  set any as --FIELD VALUE, --FIELD=VALUE or FIELD=VALUE, or in a --config file",
    ]
    from research_env.settings import EnvSettings, TurnSettings

    shared = {
        "episode rules (EnvSettings)": {f.name for f in fields(EnvSettings)},
        "turns (TurnSettings)": {f.name for f in fields(TurnSettings)},
    }
    inherited = set().union(*shared.values())
    groups = {"trainer": {f.name for f in fields(GRPOConfig)} - inherited, **shared}
    for title, names in groups.items():
        lines.append(f"  -- {title}")
        for f in fields(GRPOConfig):
            if f.name not in names:
                continue
            default = json.dumps(_default(f), default=str)
            lines.append(f"  --{f.name} {type_name(hints[f.name])} (default {default})")
            if docs.get(f.name):
                lines.append(f"      {docs[f.name]}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- values
def convert(name: str, raw: Any, annotation: Any) -> Any:
    """``raw`` (a command-line string, or a value read from a config file) as field ``name``'s type.

    Raises:
        UsageError: Naming the field, the expected type and the value.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        if raw not in args:
            raise UsageError(
                f"{name}: expected one of {', '.join(map(str, args))}, got {raw!r}"
                + choices_hint(str(raw), [str(a) for a in args])
            )
        return raw
    is_union = origin is typing.Union or isinstance(annotation, types.UnionType)
    kinds = [a for a in args if a is not type(None)] if is_union else [annotation]
    if is_union and type(None) in args and (raw is None or str(raw).lower() in ("none", "null")):
        return None
    if len(kinds) > 1:  # e.g. int | Literal["auto"]: the first member that takes the value
        errors = []
        for member in kinds:
            try:
                return convert(name, raw, member)
            except UsageError as e:
                text = str(e).split(": ", 1)[-1].split(", got")[0]
                errors.append(text.removeprefix("expected "))
        raise UsageError(f"{name}: expected {' or '.join(errors)}, got {raw!r}")
    kind = typing.get_origin(kinds[0]) or kinds[0]
    if kind is typing.Literal:
        return convert(name, raw, kinds[0])
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "yes"):
            return True
        if str(raw).lower() in ("0", "false", "no"):
            return False
        raise UsageError(f"{name}: expected true or false, got {raw!r}")
    if kind in (tuple, dict):
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = [v.strip() for v in raw.split(",") if v.strip()]
        if kind is dict and not isinstance(value, dict):
            raise UsageError(f"{name}: expected a mapping, got {raw!r}")
        if kind is tuple:
            if not isinstance(value, list | tuple):
                raise UsageError(f"{name}: expected a list, got {raw!r}")
            return tuple(tuple(v) if isinstance(v, list) else v for v in value)
        return value
    if kind in (int, float):
        if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
            raise UsageError(f"{name}: expected {kind.__name__}, got {raw!r}")
        try:
            return kind(raw)
        except (TypeError, ValueError):
            raise UsageError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
    if kind is str and not isinstance(raw, str):
        raise UsageError(f"{name}: expected a string, got {raw!r}")
    return raw


def _known_field(name: str, where: str) -> None:
    from research_agents.grpo.config import GRPOConfig

    names = [f.name for f in fields(GRPOConfig)]
    if name not in names:
        raise UsageError(
            f"{where}: not a GRPOConfig field{choices_hint(name, names)} "
            "(`searchqa train --help` lists them)"
        )


def typed(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Check the names of ``values`` and convert each to its field's type."""
    from research_agents.grpo.config import GRPOConfig

    hints = typing.get_type_hints(GRPOConfig)
    out: dict[str, Any] = {}
    for name, raw in values.items():
        label = f"--{name}" if where == "flag" else f"{where}: {name}"
        _known_field(name, label)
        out[name] = convert(label, raw, hints[name])
    return out


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["--lr", "1e-5", "--steps=3", "seed=1", "extra.note=x"]`` into typed overrides.

    Raises:
        UsageError: On a malformed pair, an unknown field (with the closest name) or a value
            of the wrong type.
    """
    raw: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    i = 0
    while i < len(pairs):
        key = pairs[i]
        if key.startswith("--"):
            name = key[2:]
            if "=" in name:
                name, value = name.split("=", 1)
                i += 1
            else:
                if i + 1 >= len(pairs) or pairs[i + 1].startswith("--"):
                    raise UsageError(f"--{name}: missing value")
                value = pairs[i + 1]
                i += 2
        elif "=" in key:
            name, value = key.split("=", 1)
            i += 1
        else:
            raise UsageError(f"expected --FIELD VALUE or FIELD=VALUE, got {key!r}")
        name = name.replace("-", "_")
        if name.startswith("extra."):
            extra[name[len("extra.") :]] = value
            continue
        _known_field(name, f"--{name}")
        raw[name] = value
    out = typed(raw, "flag")
    if extra:
        out["extra"] = {**out.get("extra", {}), **extra}
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.yaml`` / ``.yml`` / ``.json`` run config: a mapping of field names to values.

    Raises:
        UsageError: If the file is missing, unreadable, not a mapping, or names unknown fields.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--config: no file at {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped,unused-ignore]

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise UsageError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    else:
        raise UsageError(f"--config: expected a .yaml, .yml or .json file, got {path}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(
            f"{path}: expected a mapping of GRPOConfig fields, got {type(data).__name__}"
        )
    return data


def resolve_config(
    preset: str | None, config_file: str | None, overrides: list[str]
) -> tuple[GRPOConfig, str]:
    """Preset, then config file, then overrides; every name and value checked.

    Args:
        preset: ``--preset`` (``None``: the file's ``preset:`` key, else ``factbook-smollm2``).
        config_file: ``--config`` path, or ``None``.
        overrides: The remaining command-line words.

    Returns:
        The config and the name of the preset it started from.

    Raises:
        UsageError: On any unknown name or bad value.
    """
    from research_agents.grpo.presets import PRESETS, get_preset

    data = load_config_file(config_file) if config_file else {}
    where = str(config_file)
    file_preset = data.pop("preset", None)
    name = preset or file_preset or "factbook-smollm2"
    if name not in PRESETS:
        raise UsageError(
            f"--preset: unknown preset {name!r}; expected one of: {', '.join(PRESETS)}"
            + choices_hint(str(name), PRESETS)
        )
    values = typed(data, where) if data else {}
    flags = parse_overrides(overrides)
    if "extra" in flags and "extra" in values:  # extra.KEY=value adds to the file's extra
        flags["extra"] = {**values["extra"], **flags["extra"]}
    values.update(flags)
    try:
        return get_preset(name).replace(**values), name
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def save_run_config(cfg: GRPOConfig) -> Path:
    """Write the resolved config to ``<output_dir>/run_config.json`` (``--config`` reads it)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RUN_CONFIG
    path.write_text(json.dumps(cfg.to_dict(), indent=2, default=str) + "\n")
    return path


def describe(cfg: GRPOConfig, preset: str) -> str:
    """The resolved config, one ``field value`` line each; ``*`` marks a changed preset value."""
    from research_agents.grpo.presets import get_preset

    base = get_preset(preset).to_dict() if preset else {}
    values = cfg.to_dict()
    width = max(map(len, values))
    lines = []
    for key, value in values.items():
        mark = "*" if key in base and base[key] != value else " "
        lines.append(f" {mark} {key:{width}s} {json.dumps(value, default=str)}")
    return "\n".join(lines)
