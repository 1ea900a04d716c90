"""EmoOmniPipe (coming next): batch and streaming pipelines of the agent's stages on Ray.

This is its home, installed as ``emoomni.pipe``. Like EmoOmniEval (eval/), it is an area of its own: it uses
the SDK (emoomni.sdk) and the services' public classes (emoomni.services.<stage>.core), never the CLI; its
`emoomni pipe` command registers under the entry-point group ``emoomni.commands`` (see README, Layout).
"""
