"""EmoOmni: an emotion-aware omni-modal dialogue agent.

The public embedding API is :class:`emoomni.sdk.client.Client`; the stack is described by
:class:`emoomni.core.config.StackConfig`.
"""

__version__ = "0.1.0"

__all__ = ["Client", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import emoomni` stays cheap for the CLI's --help and for plugins.
    if name == "Client":
        from emoomni.sdk.client import Client

        return Client
    raise AttributeError(name)
