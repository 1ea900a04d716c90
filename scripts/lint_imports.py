"""Checks the layer contracts (pyproject.toml, [tool.importlinter]) with import-linter.

Why not plain `lint-imports`: services/, eval/, pipe/ and config/ become emoomni.services, emoomni.eval, ... only
when the package is installed (setup.py maps the folders), while import-linter reads a package's own folder. So
the installed layout of emoomni is copied (Python files only, well under a second) into a temporary folder that
goes first on the path, and lint-imports runs there; the plugins, training/ and benchmarks/ are found as they are.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def areas() -> dict[str, str]:
    """setup.py's AREAS: emoomni subpackage -> top-level folder."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "AREAS")
    return ast.literal_eval(node.value)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="emoomni-layers-") as view:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
        shutil.copytree(ROOT / "emoomni", Path(view) / "emoomni", ignore=ignore)
        for name, folder in areas().items():
            shutil.copytree(ROOT / folder, Path(view) / "emoomni" / name, ignore=ignore, dirs_exist_ok=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([view, str(ROOT), os.environ.get("PYTHONPATH", "")]))
        lint = Path(sys.executable).with_name("lint-imports")
        return subprocess.run([str(lint), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=view,
                              env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
