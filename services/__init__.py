"""The stages (perception, reasoning, instruction, talker) and the gateway, imported as ``emoomni.services``.

Importing them readies a CPU-only torch for PyPI's torchvision (emoomni.core.torchvision_compat): the model code
here needs it, a client-only install (``import emoomni``, the SDK) does not, and is left untouched.
"""

from emoomni.core.torchvision_compat import install_import_hook

install_import_hook()
