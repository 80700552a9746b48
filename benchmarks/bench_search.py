"""Embedded index at scale: indexing rate, size on disk, embedding rate, and search latency.

Builds an index of synthetic dialogue events (fixed seed) spread over many videos, one `replace_video` per
video as ingestion does it, then times `search()` over varied queries with and without a video filter, next to
the obvious baseline: tantivy's own lenient query parser over the same fields, without our query building
or hit building.

Vectors: embedding a million events with MiniLM on a laptop CPU takes over an hour, so a pool of events is
embedded for real (which gives the embedding rate) and every event gets the vector of a pool event plus a little
noise: the vectors keep the real ones' clustered distribution, which is what the kNN shortlist depends on.
Query vectors are real encodings, and the hybrid timings include encoding the query.

    .venv/bin/python benchmarks/bench_search.py --events 1000000
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tantivy

from cinedex.core.model import EVENT_FIELDS, Event, SearchFilters
from cinedex.core.settings import Settings
from cinedex.index.embedded import TEXT_ANALYZER, TEXT_TOKENIZER, EmbeddedIndex
from cinedex.index.embedder import encode
from cinedex.index.search import _cached_query_vector, search

SEED = 20240607
COMMON_WORDS = """
the a to of and i you it in that is was he she we they me my your this what for on be have not with do at but
are his her all so no just there can like know get go one if out up about when right now here come think see
well want yeah oh time back did how why who would could should never nothing something everything tell said
look let take make good over been only going because still need these those them then than more little man
woman old new long down way give find call again away always last first thing night day home house door car
money gun phone city world life people father mother brother sister friend kid boy girl police doctor captain
""".split()
STORY_WORDS = """
dream dreams dreaming gravitation gravity orbit station engine ship planet ocean river mountain forest desert
storm rain snow winter summer morning evening midnight window kitchen hospital prison church bridge tunnel
train airport hotel office basement rooftop letter photograph secret promise betrayal revenge escape murder
detective witness lawyer judge soldier general king queen prince dragon sword treasure map island castle
wedding funeral birthday party dance music song guitar piano violin painting museum library school teacher
student scientist experiment machine robot computer signal message radio satellite rocket launch mission
danger trouble accident explosion fire smoke blood poison knife bullet chase running falling flying swimming
laughing crying screaming whisper silence shadow ghost memory future past tomorrow yesterday forever
""".split()
NAMES = """
Rick Ilsa Sam Victor Louis Cooper Murph Brand Cobb Ariadne Arthur Eames Saito Mal Ripley Dallas Kane Deckard
Rachael Roy Gaff Neo Trinity Morpheus Smith Marty Doc Biff Lorraine Ellen Sarah Kyle John Kate Vincent Mia
""".split()
LOCATIONS = ["a smoky bar", "the airfield", "a farmhouse", "the bridge of the ship", "a rainy street", "a hotel room",
             "the kitchen", "a police station", "the desert", "an office at night", "a train car", "the rooftop"]
ACTIONS = ["argues", "whispers", "laughs", "walks away", "pours a drink", "draws a gun", "opens the door",
           "looks out the window", "hands over a letter", "starts the engine", "lights a cigarette"]


class EventFactory:
    """Dialogue-like events: Zipf-weighted words from a small vocabulary plus a long tail of rare made-up words."""

    def __init__(self, seed: int = SEED, rare_words: int = 20_000) -> None:
        self.rng = random.Random(seed)
        syllables = ["ka", "lo", "mi", "ran", "tes", "vor", "zu", "pel", "dra", "quin", "sol", "mar", "bex", "tor"]
        rare = sorted({"".join(self.rng.choices(syllables, k=self.rng.randint(2, 4))) for _ in range(rare_words)})
        self.vocabulary = COMMON_WORDS + STORY_WORDS + [name.lower() for name in NAMES] + rare
        zipf = (1.0 / (rank + 1) ** 1.05 for rank in range(len(self.vocabulary)))
        self.cumulative_weights = list(itertools.accumulate(zipf))

    def sentence(self, low: int = 4, high: int = 18) -> str:
        words = self.rng.choices(self.vocabulary, cum_weights=self.cumulative_weights, k=self.rng.randint(low, high))
        return " ".join(words).capitalize() + self.rng.choice([".", "?", "!", "..."])

    def video(self, video_id: str, events: int) -> list[Event]:
        cast = self.rng.sample(NAMES, 4)
        clock = 0.0
        moments = []
        for _ in range(events):
            clock += self.rng.uniform(0.5, 6.0)
            duration = self.rng.uniform(1.0, 8.0)
            speaker = self.rng.choice(cast)
            moments.append(
                Event(
                    video_id=video_id,
                    start_s=round(clock, 3),
                    end_s=round(clock + duration, 3),
                    content=" ".join(self.sentence() for _ in range(self.rng.randint(1, 3))),
                    scene_type="dialogue",
                    speaker=speaker,
                    characters=self.rng.sample(cast, 2),
                    event=f"{speaker} {self.rng.choice(ACTIONS)} in {self.rng.choice(LOCATIONS)}.",
                    location=self.rng.choice(LOCATIONS),
                )
            )
            clock += duration
        return moments


class VectorPool:
    """Real MiniLM vectors of `size` generated events; `vectors(n)` deals out noisy copies of them."""

    def __init__(self, factory: EventFactory, size: int, model: str) -> None:
        events = factory.video("pool", size)
        texts = [EVENT_FIELDS.passage(e) for e in events]
        encode(texts[:64], model)  # loads the model outside the timing
        started = time.perf_counter()
        self.pool = encode(texts, model)
        self.embedding_rate = size / (time.perf_counter() - started)
        self.rng = np.random.default_rng(SEED)

    def vectors(self, count: int) -> np.ndarray:
        picked = self.pool[self.rng.integers(0, len(self.pool), count)]
        noisy = picked + 0.02 * self.rng.standard_normal(picked.shape, dtype=np.float32)
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def build(index: EmbeddedIndex, factory: EventFactory, total: int, videos: int,
          pool: VectorPool) -> tuple[list[str], list[str], float]:
    """Indexes `total` events; returns the video ids, some of the indexed sentences, and seconds spent indexing."""
    per_video, extra = divmod(total, videos)
    video_ids, sample_contents = [], []
    indexing_s = 0.0
    for number in range(videos):
        video_id = f"video-{number:05d}"
        events = factory.video(video_id, per_video + (number < extra))
        if not events:
            continue
        vectors = pool.vectors(len(events))
        started = time.perf_counter()
        index.replace_video(video_id, events, vectors)
        indexing_s += time.perf_counter() - started
        video_ids.append(video_id)
        sample_contents.append(factory.rng.choice(events).content)
        if (number + 1) % max(videos // 20, 1) == 0:
            done = index.count()
            print(f"  {done:>9,} events indexed, {done / indexing_s:,.0f} events/s", flush=True)
    return video_ids, sample_contents, indexing_s


def queries(factory: EventFactory, contents: list[str], count: int) -> list[str]:
    """A mix: single common and rare words, phrases lifted from indexed events, word bags, and hostile input."""
    rng = factory.rng
    hostile = ['"unclosed phrase', "title:gun AND", "(((", "-murder -night", "gun*", "C-3PO: [x] {y}", "NOT OR AND",
               "雨の夜に", "¿dónde está?", "a" * 300, "\\", "'; DROP TABLE events; --", "~2^3", "field:", "🙂 🔫"]
    kinds = [
        lambda: rng.choice(COMMON_WORDS + STORY_WORDS),
        lambda: rng.choice(factory.vocabulary[-5000:]),
        lambda: " ".join((words := rng.choice(contents).split())[(at := rng.randrange(max(len(words) - 3, 1))):at + 3]),
        lambda: " ".join(rng.sample(STORY_WORDS, rng.randint(2, 5))),
        lambda: rng.choice(NAMES) + " " + rng.choice(STORY_WORDS),
        lambda: rng.choice(hostile),
    ]
    return [rng.choice(kinds)() for _ in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def time_ms(run, items) -> list[float]:
    latencies = []
    for item in items:
        started = time.perf_counter()
        run(item)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def report(label: str, latencies: list[float]) -> float:
    p95 = percentile(latencies, 0.95)
    p50 = statistics.median(latencies)
    print(f"  {label:<44} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   max {max(latencies):7.2f} ms")
    return p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--pool", type=int, default=4000, help="events embedded for real")
    args = parser.parse_args()

    factory = EventFactory()
    with tempfile.TemporaryDirectory(prefix="cinedex-bench-") as home:
        settings = Settings(home=Path(home))
        index = EmbeddedIndex(settings.index_dir)
        pool = VectorPool(factory, args.pool, settings.embedding_model)
        print(f"embedding rate ({settings.embedding_model}, batches of 64): {pool.embedding_rate:,.0f} events/s "
              f"over {args.pool:,} events")
        print(f"indexing {args.events:,} events over {args.videos:,} videos into {settings.index_dir}")
        started = time.perf_counter()
        video_ids, contents, indexing_s = build(index, factory, args.events, args.videos, pool)
        total_s = time.perf_counter() - started
        size = sum(f.stat().st_size for f in settings.index_dir.iterdir() if f.is_file())
        print(f"indexed {index.count():,} events: {index.count() / indexing_s:,.0f} events/s in replace_video "
              f"({indexing_s:.1f} s, {indexing_s / len(video_ids) * 1000:.0f} ms per video; "
              f"{total_s:.1f} s with generating the events), "
              f"{size / 2**20:,.1f} MiB on disk ({size / max(index.count(), 1):,.0f} B/event), "
              f"{index.searcher().num_segments} segments")

        texts = queries(factory, contents, args.queries)
        filtered = [(text, factory.rng.choice(video_ids)) for text in texts]
        searcher = index.searcher()
        raw_index = tantivy.Index.open(str(settings.index_dir))
        raw_index.register_tokenizer(TEXT_TOKENIZER, TEXT_ANALYZER)
        boosts = EVENT_FIELDS.boosts

        def baseline(text: str) -> None:
            query, _errors = raw_index.parse_query_lenient(text, list(EVENT_FIELDS.text), boosts)
            searcher.search(query, limit=args.limit, count=False)

        def built(text: str) -> None:
            query = index.build_query(text)
            if query is not None:
                searcher.search(query, limit=args.limit, count=False)

        def hybrid(text: str, filters: SearchFilters | None = None) -> None:
            _cached_query_vector.cache_clear()  # every timed query is encoded, as a new question would be
            search(text, settings, filters, limit=args.limit)

        for text in texts:  # warms the page cache and search()'s cached handle outside the timings
            baseline(text)
            search(text, settings, limit=args.limit, mode="bm25")
            hybrid(text)

        print(f"search latency over {len(texts)} queries, top {args.limit}:")
        report("index.reload() (done by every search())", time_ms(lambda _: index.reload(), range(200)))
        baseline_latencies = time_ms(baseline, texts)
        built_latencies = time_ms(built, texts)
        report("tantivy parse_query_lenient (baseline)", baseline_latencies)
        report("our query building, tantivy search only", built_latencies)
        report("search(mode=bm25) incl. hits and highlights",
               time_ms(lambda text: search(text, settings, limit=args.limit, mode="bm25"), texts))
        report("query encoding alone", time_ms(lambda text: encode([text], settings.embedding_model), texts))
        report("search(mode=knn) incl. encoding", time_ms(lambda text: search(text, settings, limit=args.limit,
                                                                             mode="knn"), texts))
        p95 = report("hybrid search() incl. encoding, hits", time_ms(hybrid, texts))
        p95_filtered = report(
            "hybrid search() with a video filter",
            time_ms(lambda pair: hybrid(pair[0], SearchFilters(video_id=pair[1])), filtered),
        )
        print(f"query cost vs baseline (p50): "
              f"{statistics.median(built_latencies) / statistics.median(baseline_latencies):.2f}x")
        worst = max(p95, p95_filtered)
        print(f"goal p95 <= 50 ms: {'met' if worst <= 50 else 'MISSED'} ({worst:.1f} ms)")


if __name__ == "__main__":
    main()
