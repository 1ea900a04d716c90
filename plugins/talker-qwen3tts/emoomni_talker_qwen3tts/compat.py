"""Runs the `qwen-tts` 0.1.1 package (written against transformers 4.57) on the transformers 5 that EmoOmni uses.

Every adjustment is confined to qwen-tts's own modules and classes, or held only while qwen-tts is being imported,
so other models in the same process see transformers unchanged. Each one is applied only when the installed
transformers needs it, so the same code also runs on transformers 4.57. The list, with the reason for each:

- while importing: `torchaudio` may be absent (PyPI ships only CUDA builds, which do not load next to the CPU
  torch). Only the 25 Hz (V1) speech tokenizer uses it, and no released Qwen3-TTS VoiceDesign/CustomVoice model
  uses that tokenizer, so a placeholder stands in during the import and raises if it is ever used;
- while importing: transformers 5's `check_model_inputs` is a plain decorator, qwen-tts calls it as a factory;
- the rotary tables: transformers 5 dropped the "default" entry from ROPE_INIT_FUNCTIONS;
- `_tied_weights_keys` became a mapping in transformers 5; none of these models ties weights;
- configs: `pad_token_id` is no longer a base-config attribute; `rope_scaling` may arrive as `rope_parameters`;
  the speaker-encoder config refuses the bookkeeping keys a transformers 5 `save_pretrained` writes;
- the speech tokenizer's Mimi encoder: transformers 5's MimiModel made `upsample`/`decoder_transformer`
  read-only views of a separate decoder, which qwen-tts tried to set to None;
- masks: `create_causal_mask` renamed `input_embeds` to `inputs_embeds` and no longer takes `cache_position`;
- the KV cache's name: transformers 5.24 renamed `past_key_values` to `cache` across generation. `generate()` now
  hands the models `cache=`, which qwen-tts's `forward` methods (written for `past_key_values`) would let slip into
  `**kwargs`, so each step would start from an empty cache; and every `ModelOutput` renames a `past_key_values=`
  argument to `cache=`, which qwen-tts's own output dataclasses (whose field is still `past_key_values`) refuse.
  So the models' `forward` takes `cache` back as `past_key_values`, the output classes are rebuilt with the field
  named `cache` (transformers keeps `.past_key_values` readable on every output), and the mask helpers get
  whichever name they accept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import logging
import sys
import threading
import types
from collections.abc import Iterator

QWEN_TTS_VERSION = "0.1.1"
_lock = threading.Lock()
_loaded: types.ModuleType | None = None


class _AbsentTorchaudio(types.ModuleType):
    """Stands in for torchaudio during qwen-tts's import; any use names what is missing."""

    def __getattr__(self, item: str):
        if item.startswith("__"):
            raise AttributeError(item)
        raise ImportError(f"torchaudio is not installed; qwen-tts needs it only for the 25 Hz (V1) speech tokenizer "
                          f"(asked for {self.__name__}.{item}). Use a 12 Hz Qwen3-TTS checkpoint.")


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _torchaudio_importable() -> bool:
    try:
        importlib.import_module("torchaudio.compliance.kaldi")
    except Exception:  # absent, or a CUDA build that cannot load here
        return False
    return True


@contextlib.contextmanager
def _import_window() -> Iterator[None]:
    """What qwen-tts's module-level imports need, held only while they run."""
    import transformers
    import transformers.modeling_utils  # noqa: F401  (load transformers fully before anything is swapped)
    import transformers.utils.generic as generic
    from transformers.utils import import_utils

    # Ask transformers (cached) before a placeholder could be mistaken for a real torchaudio.
    import_utils.is_torchaudio_available()
    placeholders: dict[str, types.ModuleType] = {}
    if not _torchaudio_importable():
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]
        root, compliance, kaldi = (_AbsentTorchaudio(n) for n in
                                   ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi"))
        object.__setattr__(root, "compliance", compliance)
        object.__setattr__(compliance, "kaldi", kaldi)
        placeholders = {m.__name__: m for m in (root, compliance, kaldi)}
        sys.modules.update(placeholders)

    original_check = generic.check_model_inputs
    if "func" in inspect.signature(original_check).parameters:
        def check_model_inputs(func=None, **_options):
            return original_check(func) if func is not None else original_check
        generic.check_model_inputs = check_model_inputs
    # The pure-Python `sox` wrapper logs a warning at import when the sox binary is missing; qwen-tts only uses it
    # in the 25 Hz tokenizer's reference-audio path.
    sox_log = logging.getLogger("sox")
    quiet = _BelowError()
    sox_log.addFilter(quiet)
    try:
        yield
    finally:
        generic.check_model_inputs = original_check
        sox_log.removeFilter(quiet)
        for name, module in placeholders.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _default_rope(config, device=None, seq_len=None, **_kwargs):
    """Plain RoPE inverse frequencies (transformers 4's "default" entry), and attention scaling 1."""
    import torch

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    theta = getattr(config, "rope_theta", None)
    if theta is None:
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (theta ** exponents), 1.0


def _mask_adapter(mask_fn):
    accepted = set(inspect.signature(mask_fn).parameters)

    @functools.wraps(mask_fn)
    def adapted(*args, **kwargs):
        if "input_embeds" in kwargs and "input_embeds" not in accepted:
            kwargs["inputs_embeds"] = kwargs.pop("input_embeds")
        if "cache_position" in kwargs and "cache_position" not in accepted:
            kwargs.pop("cache_position")
        if "past_key_values" in kwargs and "past_key_values" not in accepted and "cache" in accepted:
            kwargs["cache"] = kwargs.pop("past_key_values")
        return mask_fn(*args, **kwargs)

    return adapted


def _accept_rope_parameters(config_cls) -> None:
    original = config_cls.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        if kwargs.get("rope_scaling") is None and kwargs.get("rope_parameters"):
            kwargs["rope_scaling"] = dict(kwargs.pop("rope_parameters"))
        original(self, *args, **kwargs)

    config_cls.__init__ = init


def _ignore_unknown_keys(config_cls) -> None:
    original = config_cls.__init__
    accepted = set(inspect.signature(original).parameters) - {"self"}

    @functools.wraps(original)
    def init(self, **kwargs):
        original(self, **{key: value for key, value in kwargs.items() if key in accepted})

    config_cls.__init__ = init


def _kv_cache_is_named_cache() -> bool:
    """True where transformers calls the KV cache `cache` (5.24 and later), not `past_key_values`."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    return "cache" in {f.name for f in dataclasses.fields(BaseModelOutputWithPast)}


def _forward_takes_cache_as_past_key_values(model_cls) -> None:
    original = model_cls.forward

    @functools.wraps(original)
    def forward(self, *args, **kwargs):
        if "cache" in kwargs:
            cache = kwargs.pop("cache")
            if kwargs.get("past_key_values") is None:
                kwargs["past_key_values"] = cache
        return original(self, *args, **kwargs)

    model_cls.forward = forward


def _output_class_with_cache_field(output_cls):
    """The same ModelOutput dataclass, its `past_key_values` field named `cache`."""
    from transformers.utils import ModelOutput

    spec = [("cache" if f.name == "past_key_values" else f.name, f.type, dataclasses.field(default=f.default))
            for f in dataclasses.fields(output_cls)]
    return dataclasses.make_dataclass(output_cls.__name__, spec, bases=(ModelOutput,),
                                      namespace={"__module__": output_cls.__module__, "__doc__": output_cls.__doc__})


def _rename_cache(module) -> None:
    import torch
    from transformers.utils import ModelOutput

    for name, value in list(vars(module).items()):
        if not (isinstance(value, type) and value.__module__ == module.__name__):
            continue
        if issubclass(value, ModelOutput) and dataclasses.is_dataclass(value):
            if "past_key_values" in {f.name for f in dataclasses.fields(value)}:
                setattr(module, name, _output_class_with_cache_field(value))
        elif issubclass(value, torch.nn.Module) and "forward" in vars(value):
            accepted = inspect.signature(value.forward).parameters
            if "past_key_values" in accepted and "cache" not in accepted:
                _forward_takes_cache_as_past_key_values(value)


def _adapt() -> None:
    import transformers
    from qwen_tts.core.models import configuration_qwen3_tts as configs
    from qwen_tts.core.models import modeling_qwen3_tts as talker_modeling
    from qwen_tts.core.tokenizer_12hz import modeling_qwen3_tts_tokenizer_v2 as codec_modeling
    from qwen_tts.core.tokenizer_25hz import modeling_qwen3_tts_tokenizer_v1 as v1_modeling
    from transformers import MimiModel

    modeling = (talker_modeling, codec_modeling, v1_modeling)
    transformers_5 = int(transformers.__version__.split(".")[0]) >= 5
    renamed_cache = _kv_cache_is_named_cache()
    for module in modeling:
        if renamed_cache:
            _rename_cache(module)
        table = getattr(module, "ROPE_INIT_FUNCTIONS", None)
        if table is not None and "default" not in table:
            module.ROPE_INIT_FUNCTIONS = {**table, "default": _default_rope}
        for name in ("create_causal_mask", "create_sliding_window_causal_mask"):
            if hasattr(module, name):
                setattr(module, name, _mask_adapter(getattr(module, name)))
        if transformers_5:
            for value in list(vars(module).values()):
                if isinstance(value, type) and isinstance(value.__dict__.get("_tied_weights_keys"), list):
                    value._tied_weights_keys = {}

    for config_cls in (configs.Qwen3TTSConfig, configs.Qwen3TTSTalkerConfig,
                       configs.Qwen3TTSTalkerCodePredictorConfig):
        if "pad_token_id" not in dir(config_cls):
            config_cls.pad_token_id = None
    for config_cls in (configs.Qwen3TTSTalkerConfig, configs.Qwen3TTSTalkerCodePredictorConfig):
        _accept_rope_parameters(config_cls)
    _ignore_unknown_keys(configs.Qwen3TTSSpeakerEncoderConfig)

    if isinstance(inspect.getattr_static(MimiModel, "upsample", None), property):
        def encoder_init(self, config):
            # transformers 5's MimiModel holds the decoding half in `self.decoder`; the codec only encodes with it.
            MimiModel.__init__(self, config)
            self.decoder = None

        codec_modeling.Qwen3TTSTokenizerV2Encoder.__init__ = encoder_init


def import_qwen_tts() -> types.ModuleType:
    """Import `qwen_tts` once, adapted to the installed transformers."""
    global _loaded
    with _lock:
        if _loaded is None:
            with _import_window():
                qwen_tts = importlib.import_module("qwen_tts")
            _adapt()
            _loaded = qwen_tts
        return _loaded


def installed_qwen_tts_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qwen-tts")
    except PackageNotFoundError:
        return None


def restore_rotary_tables(model) -> int:
    """Recompute every rotary table (`inv_freq`) in `model`; returns how many.

    transformers 5 builds the model on the meta device and materialises non-persistent buffers only where its
    own weight initialisation knows them. qwen-tts's rotary modules keep `inv_freq` as such a buffer, so after
    loading it holds uninitialised memory (tiny garbage, sometimes NaN) and generation breaks. The table is a
    pure function of the config, so it is rebuilt here with the module's own `rope_init_fn`."""
    import torch

    restored = 0
    for module in model.modules():
        if not (hasattr(module, "rope_init_fn") and isinstance(getattr(module, "inv_freq", None), torch.Tensor)):
            continue
        device = module.inv_freq.device
        inv_freq, module.attention_scaling = module.rope_init_fn(module.config, device)
        module.inv_freq = inv_freq.to(device=device, dtype=torch.float32)
        module.original_inv_freq = module.inv_freq
        restored += 1
    return restored
