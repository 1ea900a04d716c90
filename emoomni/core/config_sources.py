"""Where the stack config comes from besides its YAML file: the environment (through pydantic-settings sources)
and the preset files. Kept apart from config.py, which holds only the declaration of the config."""

from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, PydanticBaseSettingsSource

from emoomni.core.packages import package_dir

PRESETS_DIR = package_dir("emoomni.presets", "the preset stack configs")
DEFAULT_CONFIG_PATH = PRESETS_DIR / "stack.yaml"


@dataclass(frozen=True)
class EnvVar:
    """Marks a field that an environment variable of this name overrides (declared on the field in config.py, read
    here)."""

    name: str


def backend_of(value: Any, default: str) -> str:
    """The `backend` of a reasoning section, as a dict (YAML) or a model."""
    return value.get("backend", default) if isinstance(value, dict) else getattr(value, "backend", default)


def set_dotted(data: dict, dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


# The environment that load_config hands to the settings sources (None: do not read the environment).
_ENV: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("emoomni_config_env", default=None)


def declared_env_vars(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(variable, dotted key, backend it belongs to or "") for every field of `model` (StackConfig) marked with
    `EnvVar`, through the reasoning union's members (the models with a `backend` field)."""
    found = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        found += [(m.name, dotted, "") for m in info.metadata if isinstance(m, EnvVar)]
        for sub in _models_in(info):
            tag = sub.model_fields["backend"].default if "backend" in sub.model_fields else ""
            found += [(var, key, tag or backend) for var, key, backend in declared_env_vars(sub, f"{dotted}.")]
    return list(dict.fromkeys(found))


def _models_in(info: FieldInfo) -> list[type[BaseModel]]:
    args = getattr(info.annotation, "__args__", None) or (info.annotation,)
    flat = []
    for arg in args:
        arg = getattr(arg, "__origin__", arg) if getattr(arg, "__metadata__", None) else arg
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            flat.append(arg)
    return flat


class _DeclaredEnv(PydanticBaseSettingsSource):
    """Variables declared on fields with `EnvVar`. One that sets a key of a backend the stage does not use is left
    out (an exported EMOOMNI_OPENAI_MODEL must not break a stack that runs llama.cpp)."""

    def __init__(self, settings_cls, env: dict[str, str], file_data: dict):
        super().__init__(settings_cls)
        self.env, self.file_data = env, file_data

    def get_field_value(self, field, field_name):  # required by the base class; __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        declared = declared_env_vars(self.settings_cls)
        backend = self.env.get("EMOOMNI_REASONING_BACKEND") or backend_of(self.file_data.get("reasoning", {}),
                                                                         "llama_cpp")
        for var, dotted, member in declared:
            if self.env.get(var) and (not member or member == backend or dotted == "reasoning.backend"):
                set_dotted(data, dotted, self.env[var])
        return data


class _NestedEnv(EnvSettingsSource):
    """Any key as EMOOMNI__SECTION__KEY, from the environment load_config was given."""

    def __init__(self, settings_cls, env: dict[str, str]):
        self._given = env
        super().__init__(settings_cls)

    def _load_env_vars(self):
        return {k.lower(): v for k, v in self._given.items()}



@contextlib.contextmanager
def reading_environment(env: dict[str, str]):
    """While inside, StackConfig(...) reads overrides from `env` (load_config's environment)."""
    token = _ENV.set(env)
    try:
        yield
    finally:
        _ENV.reset(token)


def environment_sources(settings_cls, file_data: dict) -> tuple[PydanticBaseSettingsSource, ...]:
    """Highest first: declared variables, then EMOOMNI__SECTION__KEY; none outside `reading_environment` (a
    StackConfig(...) built in code reads no environment, as before)."""
    env = _ENV.get()
    if env is None:
        return ()
    return _DeclaredEnv(settings_cls, env, file_data), _NestedEnv(settings_cls, env)


def presets() -> list[str]:
    """Names of the preset configs shipped in config/ (emoomni.presets): `--config NAME` loads one."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve_config_path(name: str | os.PathLike | None, env: dict[str, str]) -> Path:
    """The file to read: the one named (a path, or a preset's name), else $EMOOMNI_CONFIG, else the CPU default.
    A file that was named but does not exist is an error, never a silent fall-back to defaults."""
    named = name or env.get("EMOOMNI_CONFIG")
    if not named:
        return DEFAULT_CONFIG_PATH
    path = Path(named).expanduser()
    if path.is_file():
        return path
    if not path.suffix and os.sep not in str(named) and (PRESETS_DIR / f"{named}.yaml").is_file():
        return PRESETS_DIR / f"{named}.yaml"
    source = "--config" if name else "EMOOMNI_CONFIG"
    raise FileNotFoundError(f"stack config {str(named)!r} ({source}) not found: give a YAML file or a preset "
                            f"({', '.join(presets())})")


