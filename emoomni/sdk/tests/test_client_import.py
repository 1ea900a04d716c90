"""A client that embeds the SDK gets only the SDK: `import emoomni` and the clients change nothing in the process
(no import hook, no torch), while the services ready torchvision for their models."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import emoomni, emoomni.sdk.client, emoomni.sdk.live, emoomni.sdk.agent
from emoomni.core.torchvision_compat import _FirstImportGuard
hooked = lambda: any(isinstance(f, _FirstImportGuard) for f in sys.meta_path)
print(hooked(), "torch" in sys.modules)
import emoomni.services
print(hooked())
"""


def test_importing_the_sdk_has_no_side_effects_and_the_services_ready_torchvision():
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False", "True"]
