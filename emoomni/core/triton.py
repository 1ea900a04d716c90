"""Triton Inference Server for stages set to `backend: triton`: a launcher for the `tritonserver` binary that
ships inside nvidia-pytriton (installed into .venv-triton by scripts/setup_triton.sh), and the small client
helpers the Triton backends share.

Why a launcher: that binary needs a few things set up that its own Python API does for it, and that API would
rewrite our model repository. It needs a backend folder with the Python-backend stub for the interpreter's
version, the libraries of nvidia_pytriton.libs and the interpreter's own libpython on LD_LIBRARY_PATH (else the
stub picks up the system libpython), and the venv's bin/ first on PATH so the stub's Python finds the venv.

    python -m emoomni.core.triton [--grpc-port 8001] [--otlp-http http://127.0.0.1:4318/v1/traces]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = ROOT / "deploy" / "triton" / "model_repository"
MODELS = ("asr_whisper", "face_expression", "talker")


class TritonUnavailable(RuntimeError):
    """Triton is not reachable, or a model it should serve is not ready."""


class TritonInputError(ValueError):
    """Triton refused the request's input (the model said INVALID_ARG)."""


class TritonLaunch(BaseModel):
    """How to start one tritonserver: everything the launcher needs, validated up front."""

    venv: Path = ROOT / ".venv-triton"
    model_repository: Path = MODEL_REPOSITORY
    models: tuple[str, ...] = MODELS
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    # OTLP over HTTP (Triton's OpenTelemetry exporter speaks HTTP/protobuf), e.g. http://127.0.0.1:4318/v1/traces.
    otlp_http_url: str = ""
    trace_service_name: str = "emoomni-triton"
    # Stack config the Python-backend models read (EMOOMNI_CONFIG); empty: config/stack.yaml.
    stack_config: str = ""
    log_path: Path | None = None
    extra_env: dict[str, str] = {}


def _venv_python_home(venv: Path) -> tuple[str, Path]:
    """(python version "3.11", the base interpreter's lib dir) of `venv`, from its pyvenv.cfg."""
    cfg = venv / "pyvenv.cfg"
    if not cfg.exists():
        raise FileNotFoundError(f"{venv} is not a virtual environment: run `bash scripts/setup_triton.sh`")
    values = dict(line.split("=", 1) for line in cfg.read_text().splitlines() if "=" in line)
    values = {k.strip(): v.strip() for k, v in values.items()}
    version = ".".join(values.get("version", values.get("version_info", "")).split(".")[:2])
    return version, Path(values["home"]).parent / "lib"


def _pytriton_dir(venv: Path, version: str) -> Path:
    found = venv / "lib" / f"python{version}" / "site-packages" / "pytriton"
    if not (found / "tritonserver" / "bin" / "tritonserver").exists():
        raise FileNotFoundError(f"no tritonserver in {venv}: run `bash scripts/setup_triton.sh`")
    return found


class TritonServer:
    """One tritonserver process serving the model repository over gRPC (HTTP and metrics off)."""

    def __init__(self, launch: TritonLaunch | None = None):
        self.launch = launch or TritonLaunch()
        self.proc: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"{self.launch.host}:{self.launch.grpc_port}"

    def command(self, backend_dir: Path, pytriton: Path, repository: Path) -> list[str]:
        """Model control "none" on a repository of the chosen models only: they load at start, and no caller can
        load or unload a model (explicit control would let anyone who reaches the port load Python code)."""
        ln = self.launch
        cmd = [str(pytriton / "tritonserver" / "bin" / "tritonserver"),
               f"--model-repository={repository}", f"--backend-directory={backend_dir}",
               "--model-control-mode=none",
               "--allow-http=false", "--allow-metrics=false", "--allow-grpc=true",
               f"--grpc-address={ln.host}", f"--grpc-port={ln.grpc_port}",
               # Unique shared-memory names, so that several servers (tests, replicas) share a host.
               f"--backend-config=python,shm-region-prefix-name=emoomni{os.getpid()}x{ln.grpc_port}",
               "--log-verbose=0"]
        if ln.otlp_http_url:
            # Every request traced; the caller's `traceparent` gRPC header makes these spans children of its span.
            cmd += ["--trace-config=mode=opentelemetry", "--trace-config=rate=1", "--trace-config=level=TIMESTAMPS",
                    "--trace-config=count=-1", f"--trace-config=opentelemetry,url={ln.otlp_http_url}",
                    f"--trace-config=opentelemetry,resource=service.name={ln.trace_service_name}"]
        return cmd

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        ln = self.launch
        version, libdir = _venv_python_home(ln.venv)
        pytriton = _pytriton_dir(ln.venv, version)
        self._workdir = Path(tempfile.mkdtemp(prefix="emoomni-triton-"))
        backend_dir = self._workdir / "backends"
        # The backend folder holds the Python backend plus the stub built for this interpreter version.
        shutil.copytree(pytriton / "tritonserver" / "backends", backend_dir)
        shutil.copy(pytriton / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
                    backend_dir / "python" / "triton_python_backend_stub")
        env = dict(os.environ)
        env.update(ln.extra_env)
        libs = [str(pytriton.parent / "nvidia_pytriton.libs"), str(libdir)]
        env["LD_LIBRARY_PATH"] = ":".join(libs + [p for p in [env.get("LD_LIBRARY_PATH", "")] if p])
        env["PATH"] = f"{ln.venv / 'bin'}:{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(ln.venv)
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        if ln.stack_config:
            env["EMOOMNI_CONFIG"] = str(ln.stack_config)
        repository = self._workdir / "models"  # the chosen models of the repository, linked
        repository.mkdir()
        for model in ln.models:
            (repository / model).symlink_to(Path(ln.model_repository).resolve() / model, target_is_directory=True)
        return self.command(backend_dir, pytriton, repository), env

    def start(self, timeout_s: float = 300.0) -> TritonServer:
        """Start the server and return once every model in `launch.models` is ready."""
        cmd, env = self._prepare()
        out = None  # inherit: the server's log goes where ours goes
        if self.launch.log_path is not None:
            self._log = out = open(self.launch.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # Own process group: stop() ends the server and its Python-backend stubs together.
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(self.url, self.launch.models, timeout_s, proc=self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_ready(url: str, models: tuple[str, ...] | list[str], timeout_s: float,
               proc: subprocess.Popen | None = None) -> None:
    """Block until the server at `url` is live and each of `models` is ready; TritonUnavailable after `timeout_s`."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    deadline = time.monotonic() + timeout_s
    pending = list(models)
    last = "no answer"
    with contextlib.closing(grpcclient.InferenceServerClient(url)) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise TritonUnavailable(f"tritonserver exited with code {proc.returncode} while starting")
            try:
                if client.is_server_live(client_timeout=2):
                    pending = [m for m in pending if not client.is_model_ready(m, client_timeout=2)]
                    if not pending:
                        return
                    last = f"models not ready: {', '.join(pending)}"
            except InferenceServerException as exc:
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            time.sleep(0.3)
    raise TritonUnavailable(f"Triton at {url} not ready after {timeout_s:.0f} s ({last})")


def connect(url: str, model: str, wait_s: float):
    """A gRPC client for `url`, once `model` is ready there (a service started beside Triton waits for it)."""
    import tritonclient.grpc as grpcclient

    wait_ready(url, [model], wait_s)
    return grpcclient.InferenceServerClient(url)


def served_talkers(model_config: dict) -> list[str]:
    """The engines the talker model's `talkers` parameter names, from its config as Triton hands it to the
    model (`args["model_config"]`) or as get_model_config(as_json=True) returns it (wrapped in "config")."""
    config = model_config.get("config", model_config)
    raw = config.get("parameters", {}).get("talkers", {}).get("string_value", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def triton_error(exc: Exception, url: str, model: str) -> Exception:
    """The exception to raise for a tritonclient error: TritonInputError (the model refused the input, the
    request is at fault) or TritonUnavailable (anything else: the server, the network, the model)."""
    message = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    message = message or str(exc) or type(exc).__name__
    if "invalid input:" in message:
        return TritonInputError(message.split("invalid input:", 1)[1].strip())
    return TritonUnavailable(f"Triton model {model!r} at {url} failed: {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emoomni.core.triton",
                                     description="Run tritonserver from .venv-triton with EmoOmni's models.")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--otlp-http", default="", help="OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces")
    parser.add_argument("--config", default="", help="stack config the models read (default: config/stack.yaml)")
    parser.add_argument("--venv", default=str(ROOT / ".venv-triton"))
    args = parser.parse_args(argv)
    launch = TritonLaunch(venv=Path(args.venv), host=args.host, grpc_port=args.grpc_port, otlp_http_url=args.otlp_http,
                          stack_config=args.config)
    server = TritonServer(launch)
    with server:
        print(f"tritonserver ready on {server.url}: {', '.join(launch.models)}; Ctrl-C stops it", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            server.proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
