"""Lets the PyPI torchvision wheel import next to a CPU-only torch.

Why: the Qwen2.5-Omni video and image processors need torchvision's transforms (pure PyTorch). PyPI's Linux
torchvision wheel is built against CUDA torch, so its compiled ops (`_C.so`) cannot load beside the CPU torch
build, and torchvision 0.28 then fails at import because it registers fake kernels for `nms`/`qnms` without
checking that the ops exist. Declaring those two op schemas first lets the import finish; the transforms
work, and the detection ops stay unavailable (they raise if called; nothing here calls them). With a
matching torchvision (any CUDA install, or a CPU build) this does nothing.

`install_import_hook` (called when `emoomni.services` or `training` is imported; a client-only `import emoomni` does
not) applies it on the first `import torchvision` of a process,
so that transformers, sentence-transformers and the talker plugins all import cleanly; it imports nothing
until then.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def ensure_torchvision_importable() -> None:
    if "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return  # not installed: transformers will say which processor needs it
    import torch

    compiled = next(Path(spec.origin).parent.glob("_C*.so"), None)
    if compiled is not None:
        try:
            torch.ops.load_library(str(compiled))
            return
        except OSError as exc:
            log.info("torchvision's compiled ops do not load beside this torch (%s); using its transforms only",
                     str(exc).split(":")[-1].strip())
    for name, schema in _SCHEMAS.items():
        if not hasattr(torch.ops.torchvision, name):
            torch.library.define(f"torchvision::{name}", schema)


class _FirstImportGuard:
    """A meta-path finder that runs the fix once, just before torchvision is first imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)
        ensure_torchvision_importable()
        return None  # let the normal finders import it


def install_import_hook() -> None:
    if "torchvision" not in sys.modules and not any(isinstance(f, _FirstImportGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, _FirstImportGuard())
