"""Start a local OpenAI-compatible judge endpoint: llama-cpp-python's server on a GGUF model (by default
the packaged SmolLM2-135M). Used by the eval tests and handy for trying the judge path without a GPU; a
135M model proves the plumbing, not judge quality."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from emoomni.core.natsserver import free_port
from emoomni.core.supervisor import end_process


@contextlib.contextmanager
def llama_cpp_server(model: str | Path | None = None, n_ctx: int = 4096, threads: int = 2,
                     ready_timeout_s: float = 120.0) -> Iterator[str]:
    """Yields the server's /v1 base URL; the server is stopped on exit."""
    if model is None:
        from emoomni.services.reasoning.backends.llama_cpp_backend import packaged_smollm2

        model = packaged_smollm2()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited with code {proc.returncode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"llama_cpp.server not listening after {ready_timeout_s:.0f} s") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        end_process(proc, 20)


def main() -> int:
    """`python -m emoomni.eval.llm_server [MODEL.gguf]`: serve until Ctrl-C and print the judge spec."""
    model = sys.argv[1] if len(sys.argv) > 1 else None
    with llama_cpp_server(model) as url:
        print(f"judge endpoint ready: --judge 'openai:{url}?model=local&media=none'", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
