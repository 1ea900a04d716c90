"""The training tree (`emoomni train ...`): it loads models that may need torchvision beside a CPU-only torch."""

from emoomni.core.torchvision_compat import install_import_hook

install_import_hook()
