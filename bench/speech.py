"""Speech in and out: the voice's round trip (text -> piper-joe -> whisper-tiny-en -> text) and speed.

A sentence set written for genlab (below: orders, times, names, numbers, questions) is spoken by the
shipped voice and transcribed by the shipped transcriber; the word error rate (WER: word-level
edit distance over the reference's words, after lower-casing and dropping punctuation) says how
intelligible the voice is to an independent listener. Also the real-time factors (seconds of
compute per second of audio) of synthesis and transcription. Prints a table and writes
bench/results/speech.json.

    python bench/speech.py
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "speech.json"
SENTENCES = [
    "Hello, your order has been sent.",
    "The train to London leaves at nine fifteen.",
    "Please call me back tomorrow morning.",
    "Your package will arrive on Friday.",
    "The meeting has been moved to room four.",
    "Thank you for waiting, we are almost ready.",
    "It will be sunny and warm this afternoon.",
    "Turn left at the next corner, then go straight.",
    "Do you want tea or coffee with your breakfast?",
    "The museum is open every day except Monday.",
    "Remember to take your medicine after dinner.",
    "We found three mistakes in the report.",
    "The doctor will see you in ten minutes.",
    "Can you send me the file before noon?",
    "My favourite colour is green.",
    "The store closes at six o'clock tonight.",
    "She plays the piano and the violin.",
    "Our flight was delayed by two hours.",
    "Water boils at one hundred degrees.",
    "Good night, and see you next week.",
]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("o'clock", "oclock"))


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def main() -> int:
    from genlab.codecs.audio import resample
    from genlab.core.settings import Settings
    from genlab.generators.transcriber import SAMPLE_RATE
    from genlab.registry import Registry

    registry = Registry(Settings.from_env())
    voice, ear = registry.load("piper-joe"), registry.load("whisper-tiny-en")
    voice.generate("Warm up.")
    rows, errors, total = [], 0, 0
    synth_s = stt_s = audio_s = 0.0
    for i, sentence in enumerate(SENTENCES):
        started = time.perf_counter()
        clip = voice.generate(sentence, seed=i)[0]
        synth_s += time.perf_counter() - started
        audio_s += clip.samples.size / clip.sample_rate
        started = time.perf_counter()
        heard = ear.transcribe(resample(clip.samples, clip.sample_rate, SAMPLE_RATE)).text
        stt_s += time.perf_counter() - started
        ref, hyp = words(sentence), words(heard)
        e = edit_distance(ref, hyp)
        errors, total = errors + e, total + len(ref)
        rows.append({"text": sentence, "heard": heard, "word_errors": e, "words": len(ref)})
    result = {
        "sentences": len(SENTENCES),
        "wer": round(errors / total, 4),
        "exact_sentences": sum(r["word_errors"] == 0 for r in rows),
        "audio_seconds": round(audio_s, 1),
        "tts_real_time_factor": round(synth_s / audio_s, 3),
        "stt_real_time_factor": round(stt_s / audio_s, 3),
        "rows": rows,
    }
    table = Table(title=f"round trip: piper-joe -> whisper-tiny-en, {len(SENTENCES)} sentences")
    for col in ("WER", "sentences exact", "audio s", "TTS s per audio s", "STT s per audio s"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result['wer']:.1%}",
        f"{result['exact_sentences']} of {len(SENTENCES)}",
        str(result["audio_seconds"]),
        str(result["tts_real_time_factor"]),
        str(result["stt_real_time_factor"]),
    )
    console = Console()
    console.print(table)
    for r in rows:
        if r["word_errors"]:
            console.print(f"[dim]{r['text']!r} heard as {r['heard']!r}[/]")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"machine": {"platform": platform.platform(), "python": sys.version.split()[0]}, **result},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
