"""Bulk load throughput: our load (`ElasticIndex.replace_video`: streaming_bulk with retries, stale-event delete,
refresh, alias) against the obvious baseline, bare `helpers.streaming_bulk` of the same documents with the same
chunking to the same server, each followed by a refresh. Rounds alternate so both see the same server state.

    .venv/bin/python benchmarks/bench_bulk.py --events 20000            # starts noida-db (tests' server helper)
    .venv/bin/python benchmarks/bench_bulk.py --url http://localhost:9200  # a real Elasticsearch (docker compose)

The goal is a ratio >= 0.9 (ours / bare, events per second).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from elasticsearch import Elasticsearch, helpers

from bench_search import EventFactory
from cinedex.index.elastic import ElasticIndex, event_mapping

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from elastic_server import elasticsearch_server  # noqa: E402

DIMS = 384


def films(total: int, videos: int) -> list[tuple[str, list, np.ndarray]]:
    factory = EventFactory()
    rng = np.random.default_rng(1)
    per_video = total // videos
    out = []
    for number in range(videos):
        events = factory.video(f"video-{number:04d}", per_video)
        vectors = rng.standard_normal((len(events), DIMS)).astype(np.float32)
        out.append((events[0].video_id, events, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))
    return out


def ours(client: Elasticsearch, alias: str, data) -> float:
    index = ElasticIndex(client, alias=alias, dims=DIMS)
    started = time.perf_counter()
    for video_id, events, vectors in data:
        report = index.replace_video(video_id, events, vectors)
        assert not report.failed, report.failed[:3]
    return time.perf_counter() - started


def bare(client: Elasticsearch, name: str, data) -> float:
    template = ElasticIndex(client, alias=name, dims=DIMS)  # only to build identical actions
    client.indices.create(index=name, **event_mapping(DIMS))
    options = template._bulk_options()
    started = time.perf_counter()
    for _, events, vectors in data:
        actions = [{**action, "_index": name} for action in template.bulk_actions(events, vectors)]
        for ok, item in helpers.streaming_bulk(client, actions, chunk_size=options["chunk_size"],
                                               max_chunk_bytes=options["max_chunk_bytes"]):
            assert ok, item
        client.indices.refresh(index=name)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="an Elasticsearch to use instead of starting noida-db")
    args = parser.parse_args()

    data = films(args.events, args.videos)
    count = sum(len(events) for _, events, _ in data)
    with contextlib.ExitStack() as stack:
        if args.url:
            url, server = args.url, "Elasticsearch at " + args.url
        else:
            url = stack.enter_context(elasticsearch_server(Path(stack.enter_context(tempfile.TemporaryDirectory())))).url
            server = "noida-db (Elasticsearch 8 API) on this machine"
        client = Elasticsearch(url, request_timeout=120)
        print(f"{count:,} events in {len(data)} videos, {DIMS}-dimension vectors, against {server}")
        rates: dict[str, list[float]] = {"ours": [], "bare": []}
        for round_number in range(args.rounds):
            names = {"ours": f"bench-ours-{round_number}", "bare": f"bench-bare-{round_number}"}
            for who in (("ours", "bare") if round_number % 2 == 0 else ("bare", "ours")):
                seconds = ours(client, names[who], data) if who == "ours" else bare(client, names[who], data)
                rates[who].append(count / seconds)
                print(f"  round {round_number + 1} {who:<4} {seconds:7.2f} s  {count / seconds:9,.0f} events/s")
            client.indices.delete(index=[f"{names['ours']}-v1", names["bare"]], ignore_unavailable=True)
        ours_rate, bare_rate = statistics.median(rates["ours"]), statistics.median(rates["bare"])
        ratio = ours_rate / bare_rate
        print(f"median: ours {ours_rate:,.0f} events/s, bare streaming_bulk {bare_rate:,.0f} events/s, "
              f"ratio {ratio:.2f} (goal >= 0.9: {'met' if ratio >= 0.9 else 'MISSED'})")


if __name__ == "__main__":
    main()
