"""On-screen text: captions, signs and a title card drawn with ffmpeg's drawtext on real clips, in English and
Chinese, read back with their spans, places and languages; burned-in subtitles matched to their dialogue."""

from __future__ import annotations

import json
import os
import time
import uuid

import cv2
import jiwer
import numpy as np
import pytest

from cinedex.core.model import EVENT_FIELDS, Event
from cinedex.core.settings import Settings
from cinedex.index import open_index
from cinedex.index.embedder import encode
from cinedex.index.search import search
from cinedex.pipeline import on_screen_text as ost
from cinedex.sample import TEXT_FONT, build_text_film


def _text(video_id: str, start_s: float, end_s: float, text: str, where: str = "caption band, bottom centre"):
    return Event(video_id=video_id, start_s=start_s, end_s=end_s, content=text, on_screen_text=text,
                 spatial_description=where, source="ocr", language=ost.language(text))


def _line(start_s: float, end_s: float, text: str, language: str = "en") -> Event:
    return Event(video_id="v", start_s=start_s, end_s=end_s, content=text, scene_type="dialogue", source="asr",
                 language=language)


def test_languages_and_positions():
    assert ost.language("Where are you going?") == "en"
    assert ost.language("兔子在草地上醒来") == "zh"
    assert ost.language("第三章 Chapter") == "zh"  # a Han character weighs as much as three Latin letters
    assert ost.position((0.3, 0.85, 0.7, 0.93), flat=False) == "caption band"
    assert ost.position((0.05, 0.1, 0.3, 0.2), flat=False) == "sign"
    assert ost.position((0.3, 0.85, 0.7, 0.93), flat=True) == "title card"


def test_lines_become_blocks_by_script_and_place():
    lines = [ost._Line((0.3, 0.80, 0.7, 0.86), "Where are", 0.9), ost._Line((0.3, 0.87, 0.7, 0.93), "you going", 0.95),
             ost._Line((0.35, 0.70, 0.65, 0.77), "你要去哪里", 0.9), ost._Line((0.05, 0.1, 0.2, 0.15), "EXIT", 0.9)]
    blocks = {b.text: b for b in ost._blocks(lines, flat=False)}
    assert set(blocks) == {"Where are you going", "你要去哪里", "EXIT"}  # bilingual subtitles stay two texts
    assert blocks["Where are you going"].box == (0.3, 0.80, 0.7, 0.93)


def test_could_hold_text_is_cheap_and_finds_drawn_text():
    flat = np.full((252, 448), 90, np.uint8)
    assert not ost._could_hold_text(flat)
    drawn = cv2.putText(flat.copy(), "Where are you going", (60, 220), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    assert ost._could_hold_text(drawn)
    started = time.perf_counter()
    for _ in range(20):
        ost._could_hold_text(drawn)
    assert (time.perf_counter() - started) / 20 < 0.02  # far below one detection (60-100 ms)


def test_burned_in_subtitles_go_to_their_dialogue():
    dialogue = [_line(0.9, 3.5, "the rabbit wakes up in the meadow"), _line(6.1, 9.0, "兔子在草地上醒来", "zh"),
                _line(19.2, 21.0, "where are you going"), _line(30.0, 33.0, "nothing on screen here")]
    texts = [_text("v", 0.8, 3.6, "The rabbit wakes up in the meadow"),
             _text("v", 6.0, 9.2, "兔子在草地上醒来"),
             _text("v", 19.0, 20.2, "Where are"),  # a caption holding part of a line
             _text("v", 19.0, 21.4, "你要去哪里"),  # a translation: not a duplicate of the English line
             _text("v", 7.0, 13.5, "CITY LIBRARY", "sign, top left"),
             _text("v", 40.0, 42.0, "the rabbit wakes up in the meadow")]  # same words, long after
    matched = ost.match_subtitles(texts, dialogue)
    assert matched == {texts[0].id: dialogue[0].id, texts[1].id: dialogue[1].id, texts[2].id: dialogue[2].id}
    lines, rest = ost.attach_subtitles(texts, dialogue)
    assert [line.on_screen_text for line in lines] == ["The rabbit wakes up in the meadow", "兔子在草地上醒来",
                                                       "Where are", ""]
    assert [line.id for line in lines] == [line.id for line in dialogue]
    assert [t.content for t in rest] == ["你要去哪里", "CITY LIBRARY", "the rabbit wakes up in the meadow"]
    # Where the transcript's times are Whisper's own, a line its subtitles show whole takes their span (read off
    # the picture); a caption holding part of a line leaves the line's times alone.
    retimed, _ = ost.attach_subtitles(texts, dialogue, retime=True)
    assert [(line.start_s, line.end_s) for line in retimed] == [(0.8, 3.6), (6.0, 9.2), (19.2, 21.0), (30.0, 33.0)]
    assert retimed[0].start_time == "00:00:00" and retimed[0].id != dialogue[0].id and retimed[3] == dialogue[3]


@pytest.fixture(scope="module")
def text_film(tmp_path_factory):
    if not TEXT_FONT.is_file():
        reason = "needs a CJK font: apt-get install fonts-wqy-microhei (scripts/check-system.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the on-screen text tests must run in CI: {reason}")
        pytest.skip(reason)
    return build_text_film(tmp_path_factory.mktemp("text-film"))


@pytest.fixture(scope="module")
def read_film(tmp_path_factory, text_film):
    """The text film ingested, frame-sampled and read by the cached stage: (settings, video, folder, texts, s)."""
    from cinedex.pipeline import frames, ingest

    home = tmp_path_factory.mktemp("ocr")
    settings = Settings(home=home / "home", media_roots=os.pathsep.join([str(home), os.path.dirname(text_film.path)]))
    video = ingest.ingest(text_film.path, settings)
    frames_dir = frames.sample_frames(video, settings)
    started = time.perf_counter()
    folder = ost.read_on_screen_text(video, frames_dir, settings)
    return settings, video, frames_dir, folder, ost.load_texts(folder), time.perf_counter() - started


@pytest.mark.slow
def test_every_text_found_with_its_span_place_and_language(text_film, read_film):
    settings, video, frames_dir, folder, texts, _ = read_film
    for want in text_film.texts:
        found = [t for t in texts if ost.similarity(t.content, want.text) >= 0.6]
        assert len(found) == 1, (want.text, [t.content for t in texts])
        got = found[0]
        # Character error rate on the text as drawn (for Chinese every character is a token anyway).
        assert jiwer.cer(want.text, got.content) <= 0.05, (want.text, got.content)
        assert abs(got.start_s - want.start_s) <= 0.5 and abs(got.end_s - want.end_s) <= 0.5, (want, got)
        assert got.spatial_description.startswith(want.position), (want.text, got.spatial_description)
        assert got.language == want.language and got.source == "ocr"
        assert got.on_screen_text == got.content and got.shot_id is not None
        assert (got.scene_type == "title") == (want.position == "title card")
    assert len(texts) == len(text_film.texts), [t.content for t in texts]  # nothing read that was not drawn


@pytest.mark.slow
def test_stage_is_cached_and_counts_its_frames(read_film):
    settings, video, frames_dir, folder, texts, _ = read_film
    started = time.perf_counter()
    assert ost.read_on_screen_text(video, frames_dir, settings) == folder
    assert time.perf_counter() - started < 1.0
    counts = ost.TextCounts(**json.loads((folder / ost.COUNTS_FILE).read_text()))
    assert counts.frames == counts.inherited + counts.passed_over + counts.over_budget + counts.detected
    # The budget: a burst, then the average rate over the film.
    budget = ost._DETECTION_BURST + video.info.duration_s * ost._DETECTIONS_PER_MINUTE / 60
    assert counts.texts == len(texts) and counts.detected <= budget and counts.over_budget > 0


@pytest.mark.slow
def test_burned_in_captions_attach_to_the_dialogue_of_the_film(text_film, read_film):
    settings, video, frames_dir, folder, texts, _ = read_film
    # The dialogue as ASR writes it: lower case, no punctuation, timed a little apart from the captions.
    dialogue = [Event(video_id=video.video_id, start_s=want.start_s + 0.3, end_s=want.end_s - 0.2,
                      content=want.text.lower(), scene_type="dialogue", language=want.language)
                for want in text_film.texts if want.position == "caption band"]
    lines, rest = ost.attach_subtitles(texts, dialogue)
    assert [ost.similarity(line.on_screen_text, line.content) for line in lines] == pytest.approx([1.0] * 3)
    assert {t.spatial_description.split(",")[0] for t in rest} == {"sign", "title card"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["embedded", "elasticsearch"])
def test_texts_are_found_by_search(read_film, backend, request, monkeypatch):
    settings, video, frames_dir, folder, texts, _ = read_film
    if backend == "elasticsearch":
        monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", request.getfixturevalue("es_url"))
        settings = settings.model_copy(update={"index_backend": "elasticsearch",
                                               "elasticsearch_alias": f"ocr-{uuid.uuid4().hex[:8]}"})
    open_index(settings).replace_video(video.video_id, texts, encode([EVENT_FIELDS.passage(e) for e in texts],
                                                                     settings.embedding_model))
    caption = search("rabbit meadow", settings, limit=3)
    assert caption and caption[0].on_screen_text == "The rabbit wakes up in the meadow"
    sign = search("city library", settings, limit=3)
    assert sign and sign[0].content == "CITY LIBRARY" and sign[0].start_s == pytest.approx(7.0, abs=0.5)
    station = search("北京火车站", settings, limit=3, mode="bm25")
    assert station and station[0].content == "北京火车站"


def test_the_reader_runs_on_a_cuda_gpu_where_onnx_runtime_has_one():
    """On a GPU worker (onnxruntime-gpu), detection and recognition run on CUDA; elsewhere on the CPU."""
    engine = ost._engine()
    expected = ["CUDAExecutionProvider", "CPUExecutionProvider"] if ost.on_gpu() else \
        ["CPUExecutionProvider"]
    assert engine.text_det.infer.session.get_providers() == expected
    assert engine.text_rec.session.session.get_providers() == expected
