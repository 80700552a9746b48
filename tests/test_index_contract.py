"""One contract every index backend passes, with the same fixture and the same assertions: the embedded index
(tantivy + vectors on disk) and Elasticsearch (the Elasticsearch-API server the tests start). Loading, reloading,
replacing, filters, highlights, paraphrase by kNN, and the two backends agreeing on a fixed set of queries.

Scores differ between backends (and between noida-db and a real Elasticsearch), so only rankings and sets of hits
are asserted."""

from __future__ import annotations

import re
import uuid

import numpy as np
import pytest

from cinedex.core.model import EVENT_FIELDS, Event, SearchFilters
from cinedex.core.settings import Settings
from cinedex.index import open_index
from cinedex.index.embedder import encode
from cinedex.index.protocol import EmbeddingModelMismatch, IndexBackend
from cinedex.index.search import SearchHit, search

CASABLANCA = [
    (12.0, 15.5, "Rick", "Of all the gin joints in all the towns in all the world, she walks into mine."),
    (40.0, 43.0, "Ilsa", "Play it, Sam. Play As Time Goes By."),
    (95.25, 98.0, "Rick", "Here's looking at you, kid."),
    (130.0, 133.0, "Louis", "I'm shocked, shocked to find that gambling is going on in here!"),
    (3725.0, 3731.0, "Rick", "Louis, I think this is the beginning of a beautiful friendship."),
]
INTERSTELLAR = [
    (60.0, 64.0, "Cooper", "We used to look up at the sky and wonder at our place in the stars."),
    (300.0, 305.0, "Brand", "Gravitation is the one force that can cross the dimensions, including time."),
    (910.0, 913.0, "Murph", "I had a dream that the bookshelf was talking to me."),
]
# The seed's own example index, in Chinese: words without spaces between them.
INCEPTION_ZH = [
    (10.0, 14.0, "Cobb", "Cobb 向 Ariadne 展示梦境折叠原理"),
    (50.0, 55.0, "Ariadne", "巴黎街道梦境：街道向上折起"),
    (90.0, 93.0, "Arthur", "梦里的重力是怎样运作的？"),
]
# Queries whose best hit both backends must agree on: words, a quote, stemmed forms, and meaning alone.
AGREED_QUERIES = ["beginning of a beautiful friendship", "Play it, Sam", "gin joints", "gambling",
                  "dreams", "gravitational", "wonder at the stars", "nightmare about furniture speaking",
                  "looking at you kid"]


# Who is on screen while each speaks (the people stage's names: a face no one named is "Person N").
ON_SCREEN = {"Rick": ["Person 1"], "Ilsa": ["Ilsa", "Person 1"], "Louis": ["Person 2"]}


def events(video_id: str, lines: list[tuple[float, float, str, str]]) -> list[Event]:
    return [Event(video_id=video_id, start_s=start, end_s=end, content=content, scene_type="dialogue",
                  speaker=speaker, characters=[speaker], people=ON_SCREEN.get(speaker, []))
            for start, end, speaker, content in lines]


def vectors(film: list[Event]) -> np.ndarray:
    """Real all-MiniLM-L6-v2 embeddings of the passages the embed stage writes."""
    return encode([EVENT_FIELDS.passage(e) for e in film], "all-MiniLM-L6-v2")


def load(index: IndexBackend, video_id: str, lines) -> int:
    film = events(video_id, lines)
    return index.replace_video(video_id, film, vectors(film), model="all-MiniLM-L6-v2").indexed


def emphasised(highlight: str) -> set[str]:
    """The words the highlight marks: each backend marks a matched word alone or a matched phrase whole."""
    return {word.strip(".,!?").lower() for part in re.findall(r"<b>(.*?)</b>", highlight) for word in part.split()}


def backend_settings(kind: str, tmp_path, monkeypatch, es_url_factory) -> Settings:
    if kind == "embedded":
        return Settings(home=tmp_path / "home")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", es_url_factory())
    # An alias of its own: the tests share the server, not documents.
    return Settings(home=tmp_path / "home", index_backend="elasticsearch",
                    elasticsearch_alias=f"contract-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["embedded", "elasticsearch"])
def settings(request, tmp_path, monkeypatch) -> Settings:
    return backend_settings(request.param, tmp_path, monkeypatch, lambda: request.getfixturevalue("es_url"))


@pytest.fixture
def index(settings) -> IndexBackend:
    index = open_index(settings)
    load(index, "casablanca", CASABLANCA)
    load(index, "interstellar", INTERSTELLAR)
    return index


def test_both_backends_implement_the_interface(index, settings):
    assert index.name == settings.index_backend
    assert index.fields is EVENT_FIELDS
    assert isinstance(index, IndexBackend)
    assert open_index(settings) is index  # opened once per process and configuration


def test_load_count_and_read_back_in_time_order(index):
    assert index.count() == len(CASABLANCA) + len(INTERSTELLAR)
    assert index.count("casablanca") == len(CASABLANCA)
    assert index.count("casablanca", pipeline_version="no-such-version") == 0
    film = index.video_events("interstellar")
    assert [e.start_s for e in film] == [60.0, 300.0, 910.0]
    assert film == events("interstellar", INTERSTELLAR)


def test_a_load_advances_its_progress_by_the_events_sent(settings):
    import logging

    from cinedex.core.progress import Progress

    film = events("interstellar", INTERSTELLAR)
    progress = Progress(None, len(film), "events loaded", logging.getLogger("test"))
    open_index(settings).replace_video("interstellar", film, vectors(film), progress)
    assert progress.done == len(film)


def test_phrase_finds_its_event_first_with_its_time_range(index, settings):
    hits = search("beginning of a beautiful friendship", settings)

    assert hits and all(isinstance(hit, SearchHit) for hit in hits)
    best = hits[0]
    assert (best.video_id, best.start_s, best.end_s) == ("casablanca", 3725.0, 3731.0)
    assert (best.start_time, best.end_time) == ("01:02:05", "01:02:11")
    assert best.speaker == "Rick" and best.scene_type == "dialogue" and best.source == "asr"
    assert {"beautiful", "friendship"} <= emphasised(best.highlight)
    assert sorted(best.matched_by) == ["bm25", "knn"] and best.score == pytest.approx(2 / 61)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_reloading_the_same_events_neither_duplicates_nor_touches_other_videos(index, settings):
    in_casablanca = SearchFilters(video_id="casablanca")
    every_line = "gin play looking shocked friendship"
    ids_before = {hit.event_id for hit in search(every_line, settings, in_casablanca, limit=100)}
    assert len(ids_before) == len(CASABLANCA)

    for _ in range(2):
        assert load(index, "casablanca", CASABLANCA) == len(CASABLANCA)

    assert index.count("casablanca") == len(CASABLANCA)
    assert index.count() == len(CASABLANCA) + len(INTERSTELLAR)
    assert {hit.event_id for hit in search(every_line, settings, in_casablanca, limit=100)} == ids_before


def test_replacing_with_fewer_events_and_deleting(index, settings):
    load(index, "casablanca", CASABLANCA[:2])
    assert index.count("casablanca") == 2
    assert not [hit for hit in search("beautiful friendship", settings) if hit.video_id == "casablanca"]

    assert index.delete_video("casablanca") == 2
    assert index.count("casablanca") == 0
    assert index.count("interstellar") == len(INTERSTELLAR)
    assert {hit.video_id for hit in search("gin joint", settings)} <= {"interstellar"}


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "knn"])
@pytest.mark.parametrize(("filters", "expected_starts"), [
    (SearchFilters(start_s=50.0, end_s=200.0), {60.0, 95.25, 130.0}),  # events overlapping 50-200 s
    (SearchFilters(speaker="Rick"), {12.0, 95.25, 3725.0}),
    (SearchFilters(character="Murph"), {910.0}),
    (SearchFilters(person="Person 1"), {12.0, 40.0, 95.25, 3725.0}),
    (SearchFilters(person="Ilsa", video_id="casablanca"), {40.0}),
    (SearchFilters(scene_type="action"), set()),
    (SearchFilters(video_id="interstellar", end_s=301.0), {60.0, 300.0}),
])
def test_filters_narrow_both_rankings(index, settings, filters, expected_starts, mode):
    everything = settings.model_copy(update={"knn_min_similarity": -1.0})  # kNN then ranks every event it may
    hits = search("the look of the stars, time and the world", everything, filters, limit=20, mode=mode)
    if mode == "bm25":
        assert {hit.start_s for hit in hits} <= expected_starts
    else:  # kNN ranks every event that passes the filters
        assert {hit.start_s for hit in hits} == expected_starts


def test_a_name_filter_is_exact(index, settings):
    assert search("gin", settings, SearchFilters(speaker="rick"), mode="bm25") == []
    assert search("gin", settings, SearchFilters(speaker="Ric"), mode="bm25") == []
    assert [h.start_s for h in search("gin", settings, SearchFilters(speaker="Rick"), mode="bm25")] == [12.0]


def test_english_stop_words_are_not_searched_and_phrases_around_them_still_match(index, settings):
    assert search("the", settings, mode="bm25") == []
    hits = search("Play it, Sam", settings, mode="bm25")
    assert (hits[0].video_id, hits[0].start_s) == ("casablanca", 40.0)
    assert {"play", "sam"} <= emphasised(hits[0].highlight)


@pytest.mark.parametrize(("query", "expected_start_s"),
                         [("dreams", 910.0), ("dreaming", 910.0), ("JOINTS", 12.0), ("shocking", 130.0)])
def test_stemming_matches_other_forms_of_a_word(index, settings, query, expected_start_s):
    hits = search(query, settings, mode="bm25")
    assert hits and hits[0].start_s == expected_start_s


def test_a_paraphrase_with_no_shared_word_is_found_by_meaning(index, settings):
    hits = search("nightmare about furniture speaking", settings)
    assert hits[0].video_id == "interstellar" and hits[0].start_s == 910.0
    assert hits[0].matched_by == ["knn"] and hits[0].highlight == ""
    assert search("nightmare about furniture speaking", settings, mode="bm25") == []


def test_the_index_knows_its_embedding_model_and_refuses_vectors_of_another(index, settings):
    """Vectors of two models do not compare: a video embedded by another model is refused with what to do, the
    index left as it was; and a search embeds its question by the index's model, whatever is configured."""
    assert index.embedding_model() == "all-MiniLM-L6-v2"
    film = events("other", [(1.0, 2.0, "Rick", "Round up the usual suspects.")])
    with pytest.raises(EmbeddingModelMismatch, match="all-MiniLM-L6-v2.*multilingual-e5-small.*CINEDEX_EMBEDDING_MODEL"):
        index.replace_video("other", film, encode([EVENT_FIELDS.passage(e) for e in film], "multilingual-e5-small"),
                            model="multilingual-e5-small")
    assert index.count("other") == 0 and index.embedding_model() == "all-MiniLM-L6-v2"
    configured_otherwise = settings.model_copy(update={"embedding_model": "multilingual-e5-small",
                                                       "knn_min_similarity": 0.8})
    [hit] = search("nightmare about furniture speaking", configured_otherwise, mode="knn", limit=1)
    assert (hit.video_id, hit.start_s) == ("interstellar", 910.0)


def test_an_empty_index_takes_any_model_and_a_lone_video_may_change_its_own(settings):
    index = open_index(settings)
    assert index.embedding_model() == ""
    film = events("only", INTERSTELLAR)
    passages = [EVENT_FIELDS.passage(e) for e in film]
    index.replace_video("only", film, encode(passages, "multilingual-e5-small"), model="multilingual-e5-small")
    assert index.embedding_model() == "multilingual-e5-small"
    # The same video again with another model: no other video's vectors to disagree with.
    index.replace_video("only", film, encode(passages, "all-MiniLM-L6-v2"), model="all-MiniLM-L6-v2")
    assert index.embedding_model() == "all-MiniLM-L6-v2"


@pytest.mark.parametrize("query", ["", "   ", '"', "title:", "speaker:Rick AND", "(((", "[1 TO", "-gin", "gin*",
                                   "\\", "'; DROP TABLE events; --", "\x00", "東京", "🙂🎬", "\ud800", "x" * 5000,
                                   " ".join(["gin"] * 1000)])
def test_any_text_is_a_valid_query(index, settings, query):
    assert isinstance(search(query, settings), list)
    assert isinstance(search(query, settings, SearchFilters(video_id="casablanca")), list)


def test_an_empty_index_gives_no_hits(settings):
    assert search("gin", settings) == []
    assert open_index(settings).count() == 0
    assert open_index(settings).video_events("casablanca") == []


def test_both_backends_agree_on_the_best_hit_of_a_fixed_query_set(tmp_path, monkeypatch, request):
    best = {}
    for kind in ("embedded", "elasticsearch"):
        settings = backend_settings(kind, tmp_path / kind, monkeypatch, lambda: request.getfixturevalue("es_url"))
        index = open_index(settings)
        load(index, "casablanca", CASABLANCA)
        load(index, "interstellar", INTERSTELLAR)
        best[kind] = [(hit.video_id, hit.start_s) for query in AGREED_QUERIES
                      for hit in search(query, settings, limit=1)]
    assert len(best["embedded"]) == len(AGREED_QUERIES)
    assert best["embedded"] == best["elasticsearch"]


@pytest.mark.parametrize(("query", "expected_start_s", "marked"),
                         [("梦境折叠", 10.0, "梦境折叠"), ("巴黎街道", 50.0, "巴黎街道"), ("重力", 90.0, "重力"),
                          ("梦里的重力怎样运作", 90.0, "重力"), ("展示", 10.0, "展示")])
def test_chinese_words_are_found_by_their_bigrams(index, settings, query, expected_start_s, marked):
    load(index, "inception", INCEPTION_ZH)
    hits = search(query, settings, mode="bm25")
    assert hits and (hits[0].video_id, hits[0].start_s) == ("inception", expected_start_s), hits
    assert marked in "".join(re.findall(r"<b>(.*?)</b>", hits[0].highlight)), hits[0].highlight


@pytest.mark.parametrize(("query", "expected_start_s"), [("夢境折疊", 10.0), ("巴黎街道", 50.0),
                                                       ("夢裡的重力怎樣運作", 90.0), ("展示", 10.0)])
def test_traditional_characters_find_the_simplified_line(index, settings, query, expected_start_s):
    load(index, "inception", INCEPTION_ZH)
    hits = search(query, settings, mode="bm25")
    assert hits and (hits[0].video_id, hits[0].start_s) == ("inception", expected_start_s), hits
    assert "<b>" in hits[0].highlight
    # One traditional character finds every simplified line holding it.
    assert sorted(h.start_s for h in search("夢", settings, mode="bm25")) == [10.0, 50.0, 90.0]


def test_simplified_characters_find_the_traditional_line(index, settings):
    taiwan = [(5.0, 8.0, "Cobb", "夢裡的重力是怎樣運作的？"), (20.0, 24.0, "Ariadne", "巴黎街道向上折起")]
    load(index, "inception-tw", taiwan)
    hits = search("梦里的重力", settings, SearchFilters(video_id="inception-tw"), mode="bm25")
    assert [h.start_s for h in hits][:1] == [5.0] and "<b>" in hits[0].highlight
    assert [h.start_s for h in search("运作", settings, SearchFilters(video_id="inception-tw"), mode="bm25")] == [5.0]


def test_a_chinese_query_with_full_width_punctuation_and_english_words(index, settings):
    load(index, "inception", INCEPTION_ZH)
    hits = search("Ariadne，梦境折叠？", settings, mode="bm25")
    assert (hits[0].video_id, hits[0].start_s) == ("inception", 10.0)
    # One character alone finds every line that holds it (Elasticsearch's standard tokenizer in the main field).
    assert sorted(h.start_s for h in search("梦", settings, mode="bm25")) == [10.0, 50.0, 90.0]
    assert search("鲸", settings, mode="bm25") == []
    assert [h.start_s for h in search("gin joints", settings, mode="bm25")][:1] == [12.0]  # English unaffected


# Questions in one language about lines in the other, each with the line it is about.
ACROSS_LANGUAGES = [
    ("引力能够穿越维度，包括时间", "interstellar", 300.0),
    ("我梦见书架在跟我说话", "interstellar", 910.0),
    ("我们曾经仰望天空，思考我们在星辰中的位置", "interstellar", 60.0),
    ("在全世界所有的酒馆里，她偏偏走进了我的", "casablanca", 12.0),
    ("Cobb shows Ariadne how the dream folds", "inception", 10.0),
    ("a dream of Paris streets", "inception", 50.0),
    ("how does gravity work in the dream", "inception", 90.0),
]


def test_a_question_in_one_language_finds_the_line_in_another_with_the_multilingual_embedder(settings):
    """multilingual-e5-small (bundled, 4-bit): a Chinese question finds an English line and the reverse, among the
    lines of the other language (every line of the films indexed; the best hit among the other language's lines, since
    the model ranks lines of the question's own language a little closer). Measured: 6 of 7 top-1
    (the miss, "引力能够穿越维度", ties "As Time Goes By" with the gravitation line, 0.8332 against 0.8331)."""
    model = "multilingual-e5-small"
    settings = settings.model_copy(update={"embedding_model": model})
    index = open_index(settings)
    for video_id, lines in (("casablanca", CASABLANCA), ("interstellar", INTERSTELLAR), ("inception", INCEPTION_ZH)):
        film = events(video_id, lines)
        index.replace_video(video_id, film, encode([EVENT_FIELDS.passage(e) for e in film], model))
    found = 0
    for question, video_id, start_s in ACROSS_LANGUAGES:
        other = ["inception"] if video_id == "inception" else ["casablanca", "interstellar"]
        best = next(hit for hit in search(question, settings, mode="knn", limit=20) if hit.video_id in other)
        found += (best.video_id, best.start_s) == (video_id, start_s)
    assert found >= 6, found
