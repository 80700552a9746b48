"""Cold-search benchmark: a whole `cinedex search` in a fresh process, against loading and running the query
embedder through sentence-transformers in a fresh process (what every cold search paid before the ONNX path).

  ours      python -m cinedex.cli search QUERY --json      (a fresh process: imports, index open, query encoding
                                                           through ONNX Runtime, BM25 + kNN, fusion, JSON out)
  baseline  python -c "SentenceTransformerEncoder('all-MiniLM-L6-v2').encode([QUERY], 1)"   (a fresh process:
                                                           imports torch/transformers/sentence-transformers, loads
                                                           the model, encodes the query; no index, no search)

The two alternate, one process at a time, REPEAT times each, after one warm-up of each (the page cache holds the
libraries for both). The index is the sample film's reference dialogue, loaded once into a temporary CINEDEX_HOME.
Goal (issue "Throughput on one machine"): ours <= 3 s on 2 cores.

Usage:
  .venv/bin/python benchmarks/bench_search_cold.py [--repeat 5]
Results: a table and one JSON line on stdout; append it to benchmarks/results/search_cold.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY = "greeting on the telephone"
GOAL_S = 3.0
BASELINE = ("from cinedex.index.embedder import SentenceTransformerEncoder; "
            f"SentenceTransformerEncoder('all-MiniLM-L6-v2').encode([{QUERY!r}], 1)")


def _timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from cinedex.core.model import EVENT_FIELDS, Event
    from cinedex.core.settings import Settings
    from cinedex.index import open_index
    from cinedex.index.embedder import encode
    from cinedex.sample import conversation, read_stm

    home = Path(tempfile.mkdtemp(prefix="bench-search-cold-"))
    settings = Settings(home=home)
    lines = read_stm(conversation()[1])
    events = [Event(video_id="call", start_s=u.start_s, end_s=u.end_s, content=u.text, scene_type="dialogue")
              for u in lines]
    open_index(settings).replace_video("call", events, encode([EVENT_FIELDS.passage(e) for e in events],
                                                              settings.embedding_model))
    env = {**os.environ, "CINEDEX_HOME": str(home)}
    ours_command = [sys.executable, "-m", "cinedex.cli", "search", QUERY, "--json"]
    baseline_command = [sys.executable, "-c", BASELINE]
    hits = json.loads(subprocess.run(ours_command, env=env, check=True, capture_output=True, text=True).stdout)
    _timed(baseline_command, env)

    ours, baseline = [], []
    for _ in range(args.repeat):
        ours.append(_timed(ours_command, env))
        baseline.append(_timed(baseline_command, env))
    result = {"bench": "search_cold", "query": QUERY, "top_hit": hits[0]["content"] if hits else None,
              "repeat": args.repeat, "ours_s": [round(t, 3) for t in ours], "baseline_s": [round(t, 3) for t in baseline],
              "ours_median_s": round(statistics.median(ours), 3),
              "baseline_median_s": round(statistics.median(baseline), 3),
              "baseline_over_ours": round(statistics.median(baseline) / statistics.median(ours), 2),
              "goal_s": GOAL_S, "meets_goal": statistics.median(ours) <= GOAL_S, "cpus": os.cpu_count(),
              "load_avg": [round(x, 2) for x in os.getloadavg()]}
    print(f"{'':10} {'median s':>9}   each run")
    print(f"{'ours':10} {result['ours_median_s']:9.2f}   {' '.join(f'{t:.2f}' for t in ours)}")
    print(f"{'baseline':10} {result['baseline_median_s']:9.2f}   {' '.join(f'{t:.2f}' for t in baseline)}")
    print(f"baseline / ours: {result['baseline_over_ours']}; top hit: {result['top_hit']!r}; "
          f"goal ours <= {GOAL_S} s: {'met' if result['meets_goal'] else 'missed'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
