"""EmoOmniPipe: raw video in, annotated emotional-dialogue training data out (paper sections 3.1-3.2, appendix G).

Installed as ``emoomni.pipe``; `emoomni pipe` registers under the entry-point group ``emoomni.commands``. It uses the
services' public classes (perception backends, the reasoning backend, the instruction core) and never the CLI.

Layout: `stage` (the Stage contract and its result), `manifest` (durable item -> stage -> status records), `stages/`
(one module per family of stages), `executors` (local and Ray), `runner` (the stage loop, resume, summary),
`export` (the training files), `cli` (the command). docs/pipe.md is the user's guide.
"""
