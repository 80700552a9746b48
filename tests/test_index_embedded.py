"""What only the embedded backend does, against real tantivy indexes on disk: its analyzer, concurrent readers and
writers, reopening, the binary-code shortlist of its vectors, rebuilding an index an older version wrote. What every
backend does is in test_index_contract.py."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tantivy

from test_index_contract import CASABLANCA, INTERSTELLAR, events, load, vectors

from cinedex.core.model import Event, SearchFilters
from cinedex.core.settings import Settings
from cinedex.index.embedded import TEXT_ANALYZER, EmbeddedIndex, IndexBusyError
from cinedex.index.search import search
from cinedex.index.vectors import VectorStore, hamming_distances, nearest_codes, sign_codes

@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def index(settings) -> EmbeddedIndex:
    index = EmbeddedIndex(settings.index_dir)
    load(index, "casablanca", CASABLANCA)
    load(index, "interstellar", INTERSTELLAR)
    return index


def test_replacement_is_seen_whole_by_a_concurrent_reader(index, settings):
    reader = EmbeddedIndex(settings.index_dir)
    counts: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            reader.reload()
            counts.append(reader.count("casablanca"))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(5):
            index.replace_video("casablanca", events("casablanca", CASABLANCA))
    finally:
        done.set()
        thread.join()
    assert counts and set(counts) == {len(CASABLANCA)}


def test_empty_query_and_no_index_give_no_hits(tmp_path, index, settings):
    assert search("", settings) == []
    assert search("gin", settings, limit=0) == []
    assert search("gin", Settings(home=tmp_path / "nothing-indexed")) == []


def test_query_terms_match_the_indexed_terms(tmp_path):
    """The Python-side analyzer must cut text exactly as tantivy did when indexing."""
    text = "Here's naïve Ærøskøbing, 東京タワー and R2-D2's 1,000 dreams!"
    index = EmbeddedIndex(tmp_path / "index")
    index.replace_video("tricky", [Event(video_id="tricky", start_s=0, end_s=1, content=text)])

    searcher = index.searcher()
    terms = TEXT_ANALYZER.analyze(text)
    assert set(terms) == {term for term, _ in searcher.terms_with_prefix("content", "")}


@pytest.mark.parametrize(("text", "expected"), [
    ("中文分词", ["中文", "文分", "分词"]),
    ("用Python做中文分词", ["用", "做中", "中文", "文分", "分词"]),  # Latin words break runs; a lone character stays
    ("你好，世界！", ["你好", "世界"]),  # full-width punctuation ends a run
    # Full-width Latin folded away; kana pair with Han; traditional (and Japanese) forms written simplified, in
    # the text and the query alike.
    ("ＣＩＮＥＤＥＸ東京タワー", ["东京", "京タ", "タワ", "ワー"]),
    ("夢裡的重力", ["梦里", "里的", "的重", "重力"]),
    ("ｶﾀｶﾅ", ["カタ", "タカ", "カナ"]),  # half-width katakana folded to full width
    ("서울 시내", ["서울", "시내"]),
    ("Here's looking at you, kid.", []),
])
def test_cjk_text_is_cut_into_bigrams_as_elasticsearch_cjk_analyzer_does(text, expected):
    from cinedex.index import cjk

    assert cjk.bigrams(text) == expected


def test_the_cjk_field_holds_exactly_the_bigrams_and_characters(tmp_path):
    from cinedex.index.embedded import cjk_field

    text = "Cobb 向 Ariadne 展示梦境折叠原理"
    index = EmbeddedIndex(tmp_path / "index")
    index.replace_video("zh", [Event(video_id="zh", start_s=0, end_s=1, content=text)])
    held = {term for term, _ in index.searcher().terms_with_prefix(cjk_field("content"), "")}
    assert held == {"向", "展示", "示梦", "梦境", "境折", "折叠", "叠原", "原理", *"展示梦境折叠原理"}


def test_cjk_highlights_mark_the_matched_characters_and_escape_the_rest():
    from cinedex.index import cjk

    text = "<b>字幕</b> 巴黎街道梦境 & more"
    marked = cjk.highlight(text, cjk.bigrams("街道梦境"), 200)
    assert marked == "&lt;b&gt;字幕&lt;/b&gt; 巴黎<b>街道梦境</b> &amp; more"
    assert cjk.highlight(text, cjk.bigrams("重力"), 200) == ""
    long = "无关" * 200 + "梦境" + "无关" * 200
    snippet = cjk.highlight(long, ["梦境"], 40)
    assert len(snippet.replace("<b>", "").replace("</b>", "")) == 40 and "<b>梦境</b>" in snippet


def test_index_persists_across_reopen(index, settings):
    del index
    reopened = EmbeddedIndex(settings.index_dir)

    assert reopened.count() == len(CASABLANCA) + len(INTERSTELLAR)
    assert reopened.count("casablanca") == len(CASABLANCA)
    hits = search("wonder at the stars", settings)
    assert hits[0].video_id == "interstellar" and hits[0].start_s == 60.0


def test_a_busy_writer_is_waited_for_then_reported(index, settings):
    other_writer = tantivy.Index.open(str(settings.index_dir)).writer()
    impatient = EmbeddedIndex(settings.index_dir, lock_timeout_s=0.2)
    with pytest.raises(IndexBusyError):
        impatient.delete_video("casablanca")
    assert index.count("casablanca") == len(CASABLANCA)

    def release_soon() -> None:
        time.sleep(0.3)
        other_writer.wait_merging_threads()

    releaser = threading.Thread(target=release_soon)
    releaser.start()
    try:
        index.delete_video("casablanca")
    finally:
        releaser.join()
    assert index.count("casablanca") == 0


# --- vectors ---------------------------------------------------------------------------------------------------


def test_vectors_are_replaced_and_deleted_with_their_video(index, settings):
    store = index.vectors
    assert len(store) == len(CASABLANCA) + len(INTERSTELLAR)
    load(index, "casablanca", CASABLANCA[:2])
    assert len(store) == 2 + len(INTERSTELLAR)
    index.delete_video("casablanca")
    assert len(store) == len(INTERSTELLAR)
    assert {hit.video_id for hit in search("gin joint", settings)} <= {"interstellar"}


def test_large_collections_shortlist_by_binary_codes_then_rescore(tmp_path):
    """Above EXACT_KNN_ROWS the sign-bit shortlist must still find the true nearest neighbours. Embeddings of
    related text cluster, so the data is 1,000 clusters of 30 noisy points each."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((1000, 384)).astype(np.float32)
    data = np.repeat(centres, 30, axis=0) + 0.6 * rng.standard_normal((30_000, 384)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    many = [Event(video_id="big", start_s=i, end_s=i + 1, content="x", characters=["A"] if i % 2 else [])
            for i in range(len(data))]
    row_of = {event.id: i for i, event in enumerate(many)}
    store = VectorStore(tmp_path / "vectors")
    store.replace_video("big", many, data)
    for probe in (17, 12_345, 29_999):
        exact = np.argsort(-(data @ data[probe]))[:10].tolist()
        found = [row_of[event_id] for event_id, _ in store.search(data[probe], SearchFilters(), 10)]
        assert found[0] == probe and len(set(found) & set(exact)) >= 9
    odd = store.search(data[12_345], SearchFilters(character="A"), 5)
    assert len(odd) == 5 and all(row_of[event_id] % 2 for event_id, _ in odd)


@pytest.mark.parametrize("rows", [1, 50, 70_001])  # 70,001 spans several Hamming blocks and a ragged last one
def test_hamming_shortlist_matches_a_bit_by_bit_count(rows):
    rng = np.random.default_rng(rows)
    vectors = rng.standard_normal((rows, 384)).astype(np.float32)
    query = rng.standard_normal(384).astype(np.float32)
    by_bits = ((vectors > 0) != (query > 0)).sum(axis=1)
    query_code = sign_codes(query[None, :])[:, 0]
    assert np.array_equal(hamming_distances(sign_codes(vectors), query_code), by_bits)
    for wanted in (1, 40, 2000):
        shortlist = nearest_codes(sign_codes(vectors), query_code, wanted)
        assert len(shortlist) == len(set(shortlist.tolist())) == min(wanted, rows)
        # the shortlist is a set of smallest distances: none left out is closer than one kept
        assert by_bits[shortlist].max() <= np.sort(by_bits)[min(wanted, rows) - 1]


def test_an_index_an_older_version_wrote_is_rebuilt_from_its_stored_events(tmp_path, monkeypatch, caplog):
    import tantivy

    import cinedex.index.embedded

    # What versions before the CJK fields wrote: other analysis, no `<field>_cjk` fields.
    older = cinedex.index.embedded.build_schema

    def without_cjk(fields=cinedex.index.embedded.EVENT_FIELDS):
        builder = tantivy.SchemaBuilder()
        for name in fields.roles:
            if name in fields.text:
                builder.add_text_field(name, stored=True, tokenizer_name="en_stem")
            if name in fields.exact:
                builder.add_text_field(cinedex.index.embedded.keyword_field(name, fields), tokenizer_name="raw")
            if name in fields.ranges:
                builder.add_float_field(name, stored=True, indexed=True, fast=True)
        builder.add_bytes_field(cinedex.index.embedded.EVENT_JSON_FIELD, stored=True)
        return builder.build()

    monkeypatch.setattr(cinedex.index.embedded, "build_schema", without_cjk)
    film = events("casablanca", CASABLANCA)
    film[0] = film[0].model_copy(update={"content": "巴黎街道梦境"})
    embedded = vectors(film)
    EmbeddedIndex(tmp_path / "index").replace_video("casablanca", film, embedded)
    monkeypatch.setattr(cinedex.index.embedded, "build_schema", older)

    with caplog.at_level("WARNING"):
        rebuilt = EmbeddedIndex(tmp_path / "index")
    assert "rebuilt from its %d stored events" % len(film) in caplog.text
    assert {e.id for e in rebuilt.video_events("casablanca")} == {e.id for e in film}
    assert rebuilt.bm25("街道", SearchFilters(), 3)[0][0].id == film[0].id  # the new analysis holds
    assert rebuilt.knn(embedded[1], SearchFilters(), 1, 0.9)[0][0].id == film[1].id  # the vectors are kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # nothing left aside
    EmbeddedIndex(tmp_path / "index")  # and it opens as it is from now on


def test_an_index_without_stored_events_is_refused_with_what_to_do(tmp_path):
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("content", stored=True)
    (tmp_path / "index").mkdir()
    tantivy.Index(builder.build(), path=str(tmp_path / "index"))
    with pytest.raises(RuntimeError, match="older version of cinedex.*delete it and index the videos again"):
        EmbeddedIndex(tmp_path / "index")
