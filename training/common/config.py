"""Training configs: one YAML file per recipe (training/configs/), overridden from the command line.

`--set optim.lr=2e-5` writes one dotted key; the value is read as YAML, so numbers, booleans and lists keep
their types. Every trainer validates the merged result with its own pydantic model (unknown keys are errors),
so a typo fails before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """The config file or an override is wrong; the message says which key and why."""


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such config file: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def apply_override(data: dict, assignment: str) -> None:
    """Set one `dotted.key=value` in place; the value is parsed as YAML."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set wants key=value, got {assignment!r}")
    *parents, leaf = key.strip().split(".")
    node = data
    for name in parents:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {name!r} is not a section")
        node = child
    node[leaf] = yaml.safe_load(raw) if raw.strip() else ""


def load(model: type[BaseModel], path: str | Path, overrides: list[str] | None = None,
         **fields: Any) -> BaseModel:
    """Read `path`, apply `--set` overrides and then `fields` (dotted keys; None leaves the file's value)."""
    data = read_yaml(path)
    for assignment in overrides or []:
        apply_override(data, assignment)
    for key, value in fields.items():
        if value is not None:
            node = data
            *parents, leaf = key.split(".")
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
