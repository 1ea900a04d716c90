"""What the Triton hop adds per call: each Triton-capable stage called through a real tritonserver (gRPC, Python
backend, started here from .venv-triton) against the same backend class in-process.

    python benchmarks/triton_hop.py [--asr 8] [--face 40] [--talker 30] [--url HOST:PORT]

Three paths, called in turn (so that drift in the machine's load hits all alike): in-process in this venv
(numpy 2, what the services run), in-process in .venv-triton (numpy 1, OpenCV 4.11: exactly the packages
Triton's Python stub runs, driven over a pipe), and Triton. Per stage: latency median / p99 of each path, and
the added latency = Triton minus each in-process path, paired call by call (median, p99); against the
.venv-triton path it is the hop alone. Talker: time to the first chunk and to the whole sentence.
Writes benchmarks/results/triton_hop.json."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, summary  # noqa: E402
from conftest import ENGLISH_CLIP, SHARED_MEDIA, clip_audio  # noqa: E402
from emoomni.core.config import StackConfig, load_config  # noqa: E402
from emoomni.core.media import decode_audio, decode_frames, read_source  # noqa: E402
from emoomni.core.natsserver import free_port  # noqa: E402
from emoomni.core.triton import TritonLaunch, TritonServer  # noqa: E402
from emoomni.v1 import instruction_pb2  # noqa: E402

SENTENCE = "I hear you, and we can look at the record together."


def paired(n: int, paths: dict[str, Callable[[], dict]], warmup: int = 2) -> dict:
    """Call the paths in turn, n rounds; each call returns {metric: ms}. Per metric: a summary per path, and the
    paired difference of Triton against each in-process path (`added_vs_<path>`), call by call."""
    for _ in range(warmup):
        for call in paths.values():
            call()
    times: dict[str, dict[str, list[float]]] = {name: {} for name in paths}
    for _ in range(n):
        for name, call in paths.items():
            for metric, ms in call().items():
                times[name].setdefault(metric, []).append(ms)
    out: dict[str, dict] = {}
    for metric in times["triton"]:
        row = {f"{name}_ms": summary(times[name][metric]) for name in paths}
        for name in paths:
            if name != "triton":
                row[f"added_vs_{name}_ms"] = summary([b - a for a, b in zip(times[name][metric],
                                                                            times["triton"][metric], strict=True)])
        out[metric] = row
    return out


class SameEnvironment:
    """The same backends in-process inside .venv-triton (numpy 1, OpenCV 4.11: the packages Triton's stub runs),
    driven line by line over a pipe, so that its calls interleave with the others. Against this path the added
    latency is the hop alone, without the difference between the two package sets."""

    SCRIPT = """
import json, sys, time, numpy as np
from emoomni.core.config import load_config
from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr
from emoomni.services.perception.backends.opencv_fer_face import OpenCvFerFace
from emoomni.services.talker.core import TalkerCore
from emoomni.v1 import instruction_pb2
data = np.load(sys.argv[1])
cfg = load_config(env={})
face, asr, talker = OpenCvFerFace(cfg.perception.face), FasterWhisperAsr(cfg.perception.asr), TalkerCore(cfg)
frames = [(0.0, f) for f in data["frames"]]
tiny = [(0.0, np.zeros((32, 32, 3), dtype=np.uint8))]
instruction = instruction_pb2.AcousticInstruction(controls=instruction_pb2.AcousticControls(rate_scale=0.95))
def speak(engine):
    started, first = time.perf_counter(), None
    for _ in talker.speak(sys.argv[2], instruction, "en", engine):
        first = first if first is not None else time.perf_counter()
    return {"first_chunk": (first - started) * 1e3, "sentence": (time.perf_counter() - started) * 1e3}
def timed(call):
    started = time.perf_counter(); call(); return {"call": (time.perf_counter() - started) * 1e3}
calls = {"face": lambda: timed(lambda: face.observe(frames)), "tiny": lambda: timed(lambda: face.observe(tiny)),
         "asr": lambda: timed(lambda: asr.transcribe(data["audio"], 16000)),
         "piper": lambda: speak("piper"), "espeak": lambda: speak("espeak")}
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps(calls[line.strip()]()), flush=True)
"""

    def __init__(self, frames: list, audio: np.ndarray, workdir: Path):
        data = workdir / "inputs.npz"
        np.savez(data, frames=np.stack([f for _, f in frames]), audio=audio)
        self.proc = subprocess.Popen([str(ROOT / ".venv-triton" / "bin" / "python"), "-c", self.SCRIPT, str(data),
                                      SENTENCE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the .venv-triton baseline did not start")

    def call(self, what: str) -> Callable[[], dict]:
        def run() -> dict:
            self.proc.stdin.write(what + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())

        return run

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def timed(call: Callable[[], object]) -> Callable[[], dict]:
    def run() -> dict:
        started = time.perf_counter()
        call()
        return {"call": (time.perf_counter() - started) * 1e3}

    return run


def talker_timing(core, talker: str) -> Callable[[], dict]:
    instruction = instruction_pb2.AcousticInstruction(controls=instruction_pb2.AcousticControls(rate_scale=0.95))

    def run() -> dict:
        started = time.perf_counter()
        first = None
        for _ in core.speak(SENTENCE, instruction, "en", talker):
            first = first if first is not None else time.perf_counter()
        done = time.perf_counter()
        return {"first_chunk": (first - started) * 1e3, "sentence": (done - started) * 1e3}

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asr", type=int, default=8, help="ASR calls per path (a 5 s clip, ~2.5 s each here)")
    parser.add_argument("--face", type=int, default=40, help="face calls per path (8 frames of the clip)")
    parser.add_argument("--talker", type=int, default=30, help="talker calls per path and engine")
    parser.add_argument("--url", default="", help="use a running Triton instead of starting one")
    args = parser.parse_args(argv)

    from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr
    from emoomni.services.perception.backends.opencv_fer_face import OpenCvFerFace
    from emoomni.services.perception.backends.triton_asr import TritonAsr
    from emoomni.services.perception.backends.triton_face import TritonFace
    from emoomni.services.talker.core import TalkerCore
    from emoomni.services.talker.triton_backend import TritonTalkerCore

    local_cfg = load_config(env={})
    clip = SHARED_MEDIA / ENGLISH_CLIP
    audio = clip_audio(clip)
    source = read_source(str(clip), None, local_cfg.limits)
    frames = decode_frames(source, decode_audio(source, local_cfg.limits).duration_s,
                           local_cfg.perception.face.frames_sampled, local_cfg.perception.face.max_side_px)
    tiny = [(0.0, np.zeros((32, 32, 3), dtype=np.uint8))]

    with contextlib.ExitStack() as stack:
        url = args.url
        if not url:
            server = TritonServer(TritonLaunch(grpc_port=free_port(), log_path=Path("/tmp/emoomni-triton-bench.log")))
            stack.enter_context(server)
            url = server.url
        cfg = StackConfig.model_validate({"triton": {"url": url}})
        same = SameEnvironment(frames, audio, Path(stack.enter_context(tempfile.TemporaryDirectory())))
        stack.callback(same.close)
        results: dict[str, dict] = {}
        face_here, face_there = OpenCvFerFace(cfg.perception.face), TritonFace(cfg.perception.face, cfg.triton)
        results["face_8_frames"] = paired(args.face, {
            "in_process": timed(lambda: face_here.observe(frames)), "in_process_triton_env": same.call("face"),
            "triton": timed(lambda: face_there.observe(frames))})["call"]
        # A 32x32 frame: next to no compute, so the difference is the hop itself.
        results["face_1_tiny_frame"] = paired(args.face, {
            "in_process": timed(lambda: face_here.observe(tiny)), "in_process_triton_env": same.call("tiny"),
            "triton": timed(lambda: face_there.observe(tiny))})["call"]
        talk_here, talk_there = TalkerCore(local_cfg), TritonTalkerCore(cfg)
        for engine in ("piper", "espeak"):
            for metric, figures in paired(args.talker, {
                    "in_process": talker_timing(talk_here, engine), "in_process_triton_env": same.call(engine),
                    "triton": talker_timing(talk_there, engine)}).items():
                results[f"talker_{engine}_{metric}"] = figures
        asr_here, asr_there = FasterWhisperAsr(cfg.perception.asr), TritonAsr(cfg.perception.asr, cfg.triton)
        results["asr_5s_clip"] = paired(args.asr, {
            "in_process": timed(lambda: asr_here.transcribe(audio, 16000)), "in_process_triton_env": same.call("asr"),
            "triton": timed(lambda: asr_there.transcribe(audio, 16000))}, warmup=1)["call"]

    path = save("triton_hop", {
        "what": "Triton hop (gRPC to tritonserver 2.51 CPU, Python backend, loopback) vs the same backend class "
                "in-process, in the main venv (numpy 2) and in .venv-triton (numpy 1, the packages Triton's stub "
                "runs); paths called in turn; added = Triton - in-process, paired per call",
        "calls": {"asr": args.asr, "face": args.face, "talker": args.talker}, "results": results})
    width = max(len(k) for k in results)
    print(f"{'stage':<{width}}  {'in-process':>17}  {'same env':>17}  {'Triton':>17}  {'added vs same env':>17}"
          "   (median / p99 ms)")
    for name, r in results.items():
        cells = [r["in_process_ms"], r["in_process_triton_env_ms"], r["triton_ms"],
                 r["added_vs_in_process_triton_env_ms"]]
        print(f"{name:<{width}}  " + "  ".join(f"{c['median']:>8.2f} / {c['p99']:<6.2f}" for c in cells))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
