"""EmoOmni: an emotion-aware omni-modal dialogue agent.

The public embedding API is :class:`emoomni.client.Client`; the stack is described by
:class:`emoomni.config.StackConfig`.
"""

from emoomni.torchvision_compat import install_import_hook

__version__ = "0.1.0"

install_import_hook()

__all__ = ["Client", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import emoomni` stays cheap for the CLI's --help and for plugins.
    if name == "Client":
        from emoomni.client import Client

        return Client
    raise AttributeError(name)
