"""A small ctypes binding to the synthesis API of libespeak-ng, as shipped (with espeak-ng-data) by the
espeakng-loader package. Only what the talker needs: initialise in synchronous mode, pick a voice (by name or
by voice file), set parameters, and synthesise text into 16-bit samples delivered to a callback.

libespeak-ng keeps one synthesiser per process (global state, not re-entrant), so there is one `Espeak`
object per process (`engine()`), and every caller holds `LOCK` around a whole voice + parameters + synth
sequence."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

# espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS hands the samples to the callback inside espeak_Synth.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize option: report errors instead of calling exit().
_INITIALIZE_DONT_EXIT = 0x8000
# espeak_POSITION_TYPE / synthesis flags.
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
# espeak_PARAMETER ids.
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4
# Callback buffer length in ms: only how often the callback fires inside one synth call.
_BUFFER_MS = 200

# int callback(short *wav, int numsamples, espeak_EVENT *events); events are not used here.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

LOCK = threading.Lock()
_engine: Espeak | None = None


class EspeakError(RuntimeError):
    pass


def package_paths() -> tuple[Path, Path]:
    """(libespeak-ng shared library, espeak-ng-data folder) from the espeakng-loader package."""
    import espeakng_loader

    return Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())


class Espeak:
    def __init__(self, library: Path, data: Path):
        self.data = data
        lib = ctypes.CDLL(str(library))
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByFile.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByFile.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        self._lib = lib
        # The folder that holds espeak-ng-data (espeak-ng also accepts the data folder itself).
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(data.parent).encode(),
                                     _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}) with data folder {data}")
        self.sample_rate = rate
        self.version = (lib.espeak_Info(None) or b"").decode()
        self._pieces: list[np.ndarray] = []
        # Kept on the object: ctypes must not collect the callback while the library holds its pointer.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, _events) -> int:
        if count > 0 and wav:
            self._pieces.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = go on synthesising

    def set_voice(self, name: str = "", file: Path | None = None) -> None:
        if file is not None:
            status = self._lib.espeak_SetVoiceByFile(str(file).encode())
        else:
            status = self._lib.espeak_SetVoiceByName(name.encode())
        if status != 0:
            raise EspeakError(f"espeak-ng has no voice {str(file or name)!r} (status {status})")

    def set_parameter(self, parameter: int, value: int) -> None:
        status = self._lib.espeak_SetParameter(parameter, int(value), 0)
        if status != 0:
            raise EspeakError(f"espeak_SetParameter({parameter}, {value}) failed (status {status})")

    def synth(self, text: str) -> np.ndarray:
        """Synthesise `text` with the current voice and parameters; int16 mono at `sample_rate`."""
        data = text.encode("utf-8") + b"\0"
        self._pieces = []
        status = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        pieces, self._pieces = self._pieces, []
        if status != 0:
            raise EspeakError(f"espeak_Synth failed (status {status})")
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)


def engine() -> Espeak:
    """The process-wide espeak-ng instance, initialised on first use. Call with `LOCK` held."""
    global _engine
    if _engine is None:
        _engine = Espeak(*package_paths())
    return _engine
