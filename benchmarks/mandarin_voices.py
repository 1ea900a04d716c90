"""Which packaged Kokoro voice speaks Mandarin best? Each of the five style embeddings (jf_alpha, jf_gongitsune,
jf_nezumi, jf_tebukuro, jm_kumo) reads 30 Mandarin sentences an empathetic agent might say through the Kokoro
talker plugin (misaki's Chinese G2P, clause by clause), and an independent listener, Whisper-base (faster-whisper,
int8, 2 threads, language "zh", beam 5, temperature 0), writes down what it hears.

Measured per voice and per control setting:
- CER: character error rate over Han characters, Whisper's text made Simplified; numbers on both sides spelled in
  Han the same way (cn2an; phone-like digit strings digit by digit, "两" as "二"), punctuation, spaces and Latin
  dropped (so "PPT" and "email" are not scored; whether Whisper wrote them is recorded apart). A sentence counts
  at most its own length in edits (Whisper-base sometimes loops, "1.1.1.1..."; the uncapped figure is kept too).
  The mean is the total edits over the total reference characters, with a 95% bootstrap interval over sentences.
- RTF: synthesis seconds / audio seconds (median, p90), the G2P included;
- first piece: seconds from calling `synthesize` until its first SpokenAudio piece (median, p99).

All five voices are measured with neutral controls; the best --top voices by CER also under pitch 1.1 and 0.9,
rate 1.1 + pitch 1.1 + energy 1.3 (a "bright" reply), rate 1.15 and 0.9, and energy 1.4, in that order; a setting
that would end past --budget-min is skipped (and listed as skipped). One engine is loaded
and its `mandarin_voice` set per voice: `synthesize` takes that style for Mandarin, exactly as a
`KokoroTalker({"mandarin_voice": name})` would, without loading the ONNX model five times. Whisper runs after each
synthesis, never during it, so the timings see the talker alone on the machine.

    .venv/bin/python benchmarks/mandarin_voices.py [--voices jf_alpha,jm_kumo] [--settings pitch_1.1,rate_0.9]
                                                   [--top 2] [--sentences 30] [--budget-min 25]

Writes benchmarks/results/mandarin_voices.json and prints the tables in Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save  # noqa: E402
from emoomni.core.text import simplified  # noqa: E402
from emoomni.v1 import instruction_pb2  # noqa: E402

# Written for this benchmark: short and long, questions, comfort, congratulations, advice with times, dates,
# amounts and phone-like digits, names of people and places, a few English words.
SENTENCES = [
    "你现在还好吗？",
    "别着急，慢慢来。",
    "恭喜你，太厉害了！",
    "我明白你的感受。",
    "今天过得怎么样？",
    "辛苦了，早点休息吧。",
    "有我在呢，别害怕。",
    "周末你打算和家人一起去哪里走走？",
    "听说你顺利通过了考试，我真替你高兴！",
    "张阿姨的手术很成功，你可以放心了。",
    "明天早上7点45分的高铁，别忘了带身份证。",
    "如果晚上睡不着，可以试试睡前泡脚十五分钟。",
    "你上个月的电费一共是186.5元，比之前少了一点。",
    "有问题可以直接打我的手机，号码是13816052749。",
    "客服热线是400-820-1234，周一到周五都有人接。",
    "李明说他下周二从成都飞回北京。",
    "明天的会议改到下午3点，记得把PPT带上。",
    "我刚给你发了一封email，有空的时候看一下。",
    "这次没成功不代表什么，你已经很努力了。",
    "要不要我帮你设一个提醒？",
    "你的快递单号是78326514，预计后天送到。",
    "王医生建议你每天至少走路三十分钟。",
    "生日快乐，小雨！祝你新的一岁心想事成。",
    "2025年6月18日是星期三，那天你有空吗？",
    "会议室订好了，10:30在三楼见。",
    "听起来你这段时间压力真的很大，工作和家里都要顾，先别逼自己，今晚好好睡一觉吧。",
    "你预约的是3月12日下午2点半的牙科门诊，地址在杭州西湖区文三路88号，别迟到了。",
    "分手确实很难受，想哭就哭出来吧，不用急着让自己好起来，我会一直在这里听你说。",
    "恭喜你拿到了心仪公司的offer，这几个月的辛苦终于有了回报，今晚一定要好好庆祝一下！",
    "如果你还是觉得胸口发闷，请马上拨打120，或者让身边的人陪你去最近的医院看看。",
]

# name -> (rate_scale, pitch_scale, energy_scale), the most telling first (energy is a gain after synthesis).
SETTINGS = {
    "neutral": (1.0, 1.0, 1.0),
    "pitch_1.1": (1.0, 1.1, 1.0),
    "pitch_0.9": (1.0, 0.9, 1.0),
    "bright": (1.1, 1.1, 1.3),
    "rate_1.15": (1.15, 1.0, 1.0),
    "rate_0.9": (0.9, 1.0, 1.0),
    "energy_1.4": (1.0, 1.0, 1.4),
}

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
# Phone-like numbers are read digit by digit: groups joined by - or spaces, 5 digits and more, a leading zero.
_PHONE = re.compile(r"\d{3,}(?:[- ]\d{3,})+|\d{5,}|0\d+")
_DIGITS = "零一二三四五六七八九"


def normalize(text: str) -> str:
    """Han characters only, numbers spelled the way a listener writes them, in Simplified characters."""
    import cn2an

    text = simplified(text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)                        # 5,670 -> 5670
    text = re.sub(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)", r"\1点\2", text)     # 10:30 -> 10点30
    text = _PHONE.sub(lambda m: "".join(_DIGITS[int(c)] for c in m.group() if c.isdigit()), text)
    try:
        text = cn2an.transform(text, "an2cn")
    except (ValueError, KeyError):  # cn2an refuses some shapes; read what is left digit by digit
        text = re.sub(r"\d", lambda m: _DIGITS[int(m.group())], text)
    text = re.sub(r"\d", lambda m: _DIGITS[int(m.group())], text)
    return "".join(_HAN.findall(text.replace("两", "二").replace("幺", "一")))


def edits(reference: str, heard: str) -> int:
    out = jiwer.process_characters(reference, heard or "-")
    return out.substitutions + out.deletions + out.insertions


def instruction(rate: float, pitch: float, energy: float) -> instruction_pb2.AcousticInstruction:
    return instruction_pb2.AcousticInstruction(controls=instruction_pb2.AcousticControls(
        rate_scale=rate, pitch_scale=pitch, energy_scale=energy))


def speak(engine, text: str, controls: instruction_pb2.AcousticInstruction) -> tuple[np.ndarray, float, float, int]:
    """Audio (float32, 24 kHz), synthesis seconds, seconds to the first piece, number of pieces."""
    parts, first = [], None
    start = time.perf_counter()
    for piece in engine.synthesize(text, controls, "zh"):
        if first is None:
            first = time.perf_counter() - start
        parts.append(piece.pcm16)
    total = time.perf_counter() - start
    return np.concatenate(parts).astype(np.float32) / 32768.0, total, first or total, len(parts)


def hear(whisper, audio_24k: np.ndarray, max_tokens: int = 440) -> str:
    from scipy.signal import resample_poly

    audio = resample_poly(audio_24k, 2, 3).astype(np.float32)
    segments, _ = whisper.transcribe(audio, language="zh", beam_size=5, temperature=0.0, vad_filter=False,
                                     condition_on_previous_text=False, max_new_tokens=max_tokens)
    return simplified("".join(segment.text for segment in segments).strip())


def controls_of(setting: str) -> dict[str, float]:
    return dict(zip(("rate", "pitch", "energy"), SETTINGS[setting], strict=True))


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def bootstrap_ci(edit_counts: list[int], lengths: list[int], runs: int = 2000) -> list[float]:
    rng = np.random.default_rng(0)
    e, n = np.asarray(edit_counts, float), np.asarray(lengths, float)
    picks = rng.integers(0, len(e), size=(runs, len(e)))
    rates = e[picks].sum(axis=1) / n[picks].sum(axis=1)
    return [round(float(np.percentile(rates, 2.5)), 3), round(float(np.percentile(rates, 97.5)), 3)]


def measure(engine, whisper, voice: str, setting: str, sentences: list[str]) -> dict:
    engine.voice = engine.mandarin_voice = voice  # Mandarin reads `mandarin_voice`
    controls = instruction(*SETTINGS[setting])
    rows = []
    for text in sentences:
        audio, synth_s, first_s, pieces = speak(engine, text, controls)
        # A looping decode ("1.1.1.1...") is cut at three tokens a character; it scores as wholly wrong anyway.
        heard = hear(whisper, audio, min(3 * len(text) + 20, 440))
        reference, got = normalize(text), normalize(heard)
        n_edits = edits(reference, got)
        latin = _LATIN_WORD.findall(text)
        rows.append({"text": text, "heard": heard, "reference_han": reference, "heard_han": got,
                     "cer": round(min(n_edits, len(reference)) / len(reference), 3), "edits": n_edits,
                     "chars": len(reference),
                     "latin_words": latin,
                     "latin_heard": [w for w in latin if w.lower() in heard.lower()],
                     "audio_s": round(len(audio) / 24000, 3), "synth_s": round(synth_s, 3),
                     "rtf": round(synth_s / (len(audio) / 24000), 3), "first_piece_s": round(first_s, 3),
                     "pieces": pieces})
    # A sentence counts at most its own length in errors: one hallucinated loop of Whisper's (hundreds of inserted
    # characters) would otherwise outweigh everything else the voice said.
    capped = [min(r["edits"], r["chars"]) for r in rows]
    total_edits, total_chars = sum(capped), sum(r["chars"] for r in rows)
    rtf, first = [r["rtf"] for r in rows], [r["first_piece_s"] for r in rows]
    return {"voice": voice, "setting": setting, "controls": controls_of(setting),
            "cer_mean": round(total_edits / total_chars, 4),
            "cer_mean_uncapped": round(sum(r["edits"] for r in rows) / total_chars, 4),
            "cer_ci95": bootstrap_ci(capped, [r["chars"] for r in rows]),
            "cer_per_sentence": [r["cer"] for r in rows], "sentences_exact": sum(r["edits"] == 0 for r in rows),
            "edits": total_edits, "chars": total_chars,
            "rtf_median": percentile(rtf, 50), "rtf_p90": percentile(rtf, 90),
            "first_piece_s_median": percentile(first, 50), "first_piece_s_p99": percentile(first, 99),
            "audio_s_total": round(sum(r["audio_s"] for r in rows), 2), "sentences": rows}


def markdown(results: dict[str, dict[str, dict]], best: list[str]) -> str:
    lines = ["| voice | CER (95% CI) | exact / n | RTF median (p90) | first piece median / p99 (s) |",
             "|---|---|---|---|---|"]
    for voice, by_setting in results.items():
        r = by_setting["neutral"]
        lines.append(f"| {voice} | {r['cer_mean']:.3f} ({r['cer_ci95'][0]:.3f}-{r['cer_ci95'][1]:.3f}) | "
                     f"{r['sentences_exact']}/{len(r['sentences'])} | {r['rtf_median']:.3f} ({r['rtf_p90']:.3f}) | "
                     f"{r['first_piece_s_median']:.2f} / {r['first_piece_s_p99']:.2f} |")
    settings = [s for s in SETTINGS if all(s in results[v] for v in best)]
    if best and len(settings) > 1:
        lines += ["", "| setting | " + " | ".join(f"{v} CER" for v in best) + " |",
                  "|---|" + "---|" * len(best)]
        for s in settings:
            rate, pitch, energy = SETTINGS[s]
            cells = " | ".join(f"{results[v][s]['cer_mean']:.3f} ({results[v][s]['sentences_exact']} exact)"
                               for v in best)
            lines.append(f"| {s} (rate {rate}, pitch {pitch}, energy {energy}) | {cells} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default="", help="comma-separated voices (default: every packaged one)")
    parser.add_argument("--settings", default=",".join(s for s in SETTINGS if s != "neutral"),
                        help="control settings for the best voices (neutral is always measured)")
    parser.add_argument("--top", type=int, default=2, help="how many voices (best CER) get the control settings")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="the first N sentences only")
    parser.add_argument("--budget-min", type=float, default=25.0,
                        help="skip a control setting that would end past this many minutes of wall time")
    args = parser.parse_args()
    from emoomni_talker_kokoro import KokoroTalker
    from faster_whisper import WhisperModel

    from emoomni.services.perception.backends.faster_whisper_asr import packaged_whisper_base

    wall = time.perf_counter()
    start = time.perf_counter()
    engine = KokoroTalker({})
    engine.load()
    load_s = time.perf_counter() - start
    whisper = WhisperModel(str(packaged_whisper_base()), device="cpu", compute_type="int8", cpu_threads=2)
    # Lazy initialisation of both (ONNX Runtime, jieba, the Whisper decoder) kept out of the figures.
    hear(whisper, speak(engine, "你好，很高兴认识你。", instruction(1.0, 1.0, 1.0))[0])
    voices = [v for v in args.voices.split(",") if v] or list(engine.styles)
    sentences = SENTENCES[:args.sentences]
    results: dict[str, dict[str, dict]] = {v: {} for v in voices}
    for voice in voices:
        results[voice]["neutral"] = r = measure(engine, whisper, voice, "neutral", sentences)
        print(f"{voice:14s} neutral     CER {r['cer_mean']:.3f} {r['cer_ci95']}  exact {r['sentences_exact']}  "
              f"RTF {r['rtf_median']:.3f}  first {r['first_piece_s_median']:.2f}/{r['first_piece_s_p99']:.2f} s  "
              f"({time.perf_counter() - wall:.0f} s)", flush=True)
    best = sorted(voices, key=lambda v: (results[v]["neutral"]["cer_mean"], results[v]["neutral"]["rtf_median"]))
    best = best[:args.top]
    per_run = (time.perf_counter() - wall) / len(voices)  # seconds for one voice and setting, loads included
    skipped = []
    for setting in (s for s in args.settings.split(",") if s and s != "neutral"):
        if time.perf_counter() - wall + per_run * len(best) > args.budget_min * 60:
            skipped.append(setting)
            print(f"skipped {setting}: it would end past {args.budget_min} min", flush=True)
            continue
        for voice in best:
            results[voice][setting] = r = measure(engine, whisper, voice, setting, sentences)
            print(f"{voice:14s} {setting:11s} CER {r['cer_mean']:.3f} {r['cer_ci95']}  exact {r['sentences_exact']}  "
                  f"RTF {r['rtf_median']:.3f}  ({time.perf_counter() - wall:.0f} s)", flush=True)
    path = save("mandarin_voices", {
        "benchmark": "mandarin_voices",
        "host": {"processor": platform.processor(), "cpu_count": os.cpu_count()},
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "talker": "kokoro (packaged int8 Kokoro-82M, misaki zh G2P, 2 threads)", "engine_load_s": round(load_s, 2),
        "listener": "Whisper-base (packaged, faster-whisper int8, cpu_threads 2, language zh, beam 5, temperature 0)",
        "cer": "Han characters only, numbers spelled alike on both sides (see normalize); total edits / total chars",
        "settings": {name: controls_of(name) for name in SETTINGS},
        "sentences": sentences, "best_voices": best, "skipped_settings": skipped,
        "wall_s": round(time.perf_counter() - wall, 1),
        "results": results})
    print()
    print(markdown(results, best))
    print(f"\nwritten to {path} ({time.perf_counter() - wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
