"""Visual inference with a real Qwen3-VL processor and generate, on real sampled frames of the sample film.

The model is a tiny random one (tests/tiny_qwen3vl.py): what it says is gibberish, but the prompt, the frames' time
markers, constrained decoding, batching, parsing and the repair of its times are all exercised for real.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from cinedex.core.model import VISUAL_MOMENT_FIELDS, Event, VisualMoment, WindowAnswer, vision_json_schema
from cinedex.pipeline.vision.moments import moments_to_events
from cinedex.pipeline.vision.prompt import fit_frame_times, marker_times
from cinedex.pipeline.vision.schema import VisionOptions, parse_answer, window_schema
from cinedex.pipeline.vision.transformers_backend import TransformersBackend, load_model
from cinedex.pipeline.windows import Window, WindowFrame

# Small caps keep the random model's answers short; the grammar, not the model, makes them end.
OPTIONS = VisionOptions(max_new_tokens=1200, max_text_chars=12, max_list_items=2, max_moments=2, context_tokens=512)
MARKER = re.compile(r"<(\d+\.\d) seconds>")


@pytest.fixture
def backend(tiny_vision_model) -> TransformersBackend:
    return TransformersBackend(str(tiny_vision_model))


# --- schema ------------------------------------------------------------------------------------------------------


def test_visual_moment_is_derived_from_event():
    assert list(VisualMoment.model_fields) == list(VISUAL_MOMENT_FIELDS)
    for name, field in VisualMoment.model_fields.items():
        assert field.annotation == Event.model_fields[name].annotation
        assert field.description == Event.model_fields[name].description
    schema = vision_json_schema(8.0, 13.0)
    moment = schema["$defs"]["VisualMoment"]["properties"]
    assert moment["start_s"]["minimum"] == moment["end_s"]["minimum"] == 8.0
    assert moment["start_s"]["maximum"] == moment["end_s"]["maximum"] == 13.0
    assert schema["properties"]["moments"]["maxItems"] <= 8
    assert moment["scene_type"]["enum"] == list(Event.model_fields["scene_type"].annotation.__args__)


# --- prompt ------------------------------------------------------------------------------------------------------


def test_prompt_carries_film_time_markers(backend, windows):
    window = windows[0]
    assert len(window.frames) >= 4 and window.lines
    inputs, texts = backend.prepare([window], OPTIONS)
    prompt = backend.loaded.processor.tokenizer.decode(inputs["input_ids"][0])
    # The processor writes one marker per pair of frames: the mean of their film times.
    times = [f.time_s for f in window.frames]
    pairs = [times[i:i + 2] if len(times[i:i + 2]) == 2 else [times[i]] * 2 for i in range(0, len(times), 2)]
    expected = [f"{(a + b) / 2:.1f}" for a, b in pairs]
    assert MARKER.findall(prompt) == expected
    assert expected == [f"{t:.1f}" for t in marker_times(times, window.source_fps)]
    assert all(window.start_s <= float(t) <= window.end_s for t in expected)
    assert prompt.count("<|vision_start|>") == len(pairs) == int(inputs["video_grid_thw"][0][0])
    # Dialogue goes in with its film times, and the chat template framed the turns.
    line = window.lines[0]
    assert f"[{line.start_s:.1f}-{line.end_s:.1f} s] {line.speaker}: {line.text}" in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")
    # The visual budget holds: tokens for the video stay within context_tokens.
    assert int((inputs["input_ids"][0] == backend.loaded.processor.video_token_id).sum()) <= OPTIONS.context_tokens


def test_without_alignment_the_frames_carry_no_times(backend, windows):
    window = windows[0]
    aligned, _ = backend.prepare([window], OPTIONS)
    plain, _ = backend.prepare([window], OPTIONS.model_copy(update={"timestamp_alignment": False}))
    prompt = backend.loaded.processor.tokenizer.decode(plain["input_ids"][0])
    assert MARKER.findall(prompt) == []
    video = backend.loaded.processor.video_token_id
    assert int((plain["input_ids"] == video).sum()) == int((aligned["input_ids"] == video).sum())
    assert prompt.count("<|vision_start|>") == int(plain["video_grid_thw"][0][0])
    assert (plain["pixel_values_videos"] == aligned["pixel_values_videos"]).all()


def test_frames_are_thinned_to_the_budget():
    assert fit_frame_times([0.0, 1.0, 2.0], 1000) == [0, 1, 2]
    kept = fit_frame_times([float(i) for i in range(100)], 64)  # 64 tokens: 4 pairs of 16 tokens
    assert len(kept) == 8 and kept[0] == 0 and kept[-1] == 99


# --- generation --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_answer_is_schema_valid_and_events_lie_inside_the_window(backend, windows, sampled_film):
    _, sampling = sampled_film
    window = windows[0]
    [result] = backend.describe([window], OPTIONS)
    assert result.window_index == 0 and not result.error, result.error
    _, schema = window_schema(window, OPTIONS)
    jsonschema.validate(json.loads(result.raw, strict=False), schema)
    assert isinstance(result.answer, WindowAnswer) and result.answer.moments
    events, quarantined = moments_to_events("film", window, result.answer, sampling.shots)
    assert len(events) + len(quarantined) == len(result.answer.moments)
    for event in events:
        assert window.start_s <= event.start_s < event.end_s <= window.end_s
        assert event.source == "vision" and event.content and event.id
        shot = next(s for s in sampling.shots if s.start_s <= (event.start_s + event.end_s) / 2 < s.end_s)
        assert event.shot_id == shot.shot_id and event.thumbnail == shot.thumbnail
    assert all(q.reason for q in quarantined)


@pytest.mark.slow
def test_model_is_loaded_once_for_two_calls(tiny_vision_model, windows):
    load_model.cache_clear()
    first = TransformersBackend(str(tiny_vision_model)).describe(windows[:1], OPTIONS)
    second = TransformersBackend(str(tiny_vision_model)).describe(windows[:1], OPTIONS)
    info = load_model.cache_info()
    assert info.misses == 1 and info.hits >= 1
    # Greedy decoding: the same window gets the same answer.
    assert first[0].raw == second[0].raw


@pytest.mark.slow
def test_two_windows_in_one_batch(backend, windows):
    results = backend.describe(windows, OPTIONS.model_copy(update={"batch_size": 2}))
    assert [r.window_index for r in results] == [0, 1]
    for window, result in zip(windows, results):
        assert result.answer is not None, result.error
        _, schema = window_schema(window, OPTIONS)
        jsonschema.validate(json.loads(result.raw, strict=False), schema)  # each window its own bounds
        for moment in result.answer.moments:
            assert window.start_s <= moment.start_s <= window.end_s
            assert window.start_s <= moment.end_s <= window.end_s


# --- repair and quarantine ---------------------------------------------------------------------------------------


def _moment(start_s, end_s, event="A rabbit jumps.", **fields) -> VisualMoment:
    empty = {name: ([] if Event.model_fields[name].annotation == list[str] else "")
             for name in VISUAL_MOMENT_FIELDS}
    return VisualMoment(**{**empty, "scene_type": "action", **fields, "start_s": start_s, "end_s": end_s,
                           "event": event})


def _hand_window() -> Window:
    return Window(index=3, start_s=10.0, end_s=20.0, shot_ids=[0],
                  frames=[WindowFrame(time_s=t, path="unused.jpg", shot_id=0) for t in (10.0, 12.0, 15.5, 19.0)],
                  source_fps=25)


@pytest.mark.parametrize(("start", "end", "expected"), [
    (12.0, 14.0, (12.0, 14.0)),   # valid: unchanged
    (14.0, 12.0, (12.0, 14.0)),   # inverted: swapped
    (9.7, 11.0, (10.0, 11.0)),    # 0.3 s before the window: clamped to its start
    (18.0, 20.4, (18.0, 20.0)),   # 0.4 s after: clamped to its end
    (12.0, 12.0, (12.0, 15.5)),   # zero length: to the next sampled frame
    (19.0, 19.0, (19.0, 20.0)),   # zero length after the last frame: +1 s, within the window
    (19.5, 19.5, (19.5, 20.0)),   # +1 s would leave the window: its end
    (9.8, 9.9, (10.0, 12.0)),     # both clamped onto the start, then extended to the next frame
])
def test_times_are_repaired(start, end, expected):
    events, quarantined = moments_to_events("film", _hand_window(), WindowAnswer(moments=[_moment(start, end)]))
    assert not quarantined
    [event] = events
    assert (event.start_s, event.end_s) == pytest.approx(expected)
    assert event.source == "vision" and event.content == "A rabbit jumps."


@pytest.mark.parametrize(("start", "end", "reason"), [
    (5.0, 12.0, "before the window"),
    (12.0, 21.0, "after the window"),
    (20.0, 20.0, "zero-length"),
    (20.3, 20.2, "zero-length"),
])
def test_unrepairable_times_are_quarantined(start, end, reason):
    events, quarantined = moments_to_events("film", _hand_window(), WindowAnswer(moments=[_moment(start, end)]))
    assert events == []
    [item] = quarantined
    assert reason in item.reason and item.window_index == 3 and item.moment["start_s"] == start


def test_a_moment_without_description_is_quarantined_and_the_rest_kept():
    answer = WindowAnswer(moments=[_moment(11.0, 12.0, event=""), _moment(12.0, 13.0, action="running", event="")])
    events, quarantined = moments_to_events("film", _hand_window(), answer)
    assert [e.content for e in events] == ["running"]
    assert "no description" in quarantined[0].reason


def test_events_take_the_shot_of_their_midpoint(sampled_film):
    _, sampling = sampled_film
    shot = sampling.shots[2]
    window = Window(index=0, start_s=0.0, end_s=sampling.shots[-1].end_s, shot_ids=[], frames=[], source_fps=25)
    answer = WindowAnswer(moments=[_moment(shot.start_s, shot.end_s)])
    [event], _ = moments_to_events("film", window, answer, sampling.shots)
    assert event.shot_id == shot.shot_id and event.thumbnail == shot.thumbnail


def test_parse_answer_tolerates_control_characters():
    raw = json.dumps({"moments": [_moment(11.0, 12.0).model_dump()]}).replace("A rabbit", "A\x12rabbit")
    with pytest.raises(ValueError):
        WindowAnswer.model_validate_json(raw)
    assert parse_answer(raw).moments[0].event == "A rabbit jumps."


def test_a_window_without_frames_gets_an_error_not_a_call(backend):
    empty = Window(index=7, start_s=0.0, end_s=1.0, shot_ids=[], frames=[], source_fps=25)
    [result] = backend.describe([empty], OPTIONS)
    assert result.window_index == 7 and result.answer is None and "no frames" in result.error


def test_a_single_frame_window_is_sent_as_a_still_pair(backend, windows):
    frame = windows[0].frames[0]
    window = windows[0].model_copy(update={"frames": [frame]})
    inputs, _ = backend.prepare([window], OPTIONS)
    prompt = backend.loaded.processor.tokenizer.decode(inputs["input_ids"][0])
    assert MARKER.findall(prompt) == [f"{round(frame.time_s * 25) / 25:.1f}"]


def test_grammar_caps_are_optional():
    window = Window(index=0, start_s=1.0, end_s=2.0, shot_ids=[], frames=[], source_fps=25)
    _, capped = window_schema(window, OPTIONS)
    _, uncapped = window_schema(window, OPTIONS.model_copy(update={"max_text_chars": 0}))
    assert capped["$defs"]["VisualMoment"]["properties"]["event"]["maxLength"] == 12
    assert "maxLength" not in uncapped["$defs"]["VisualMoment"]["properties"]["event"]
    assert uncapped["properties"]["moments"]["maxItems"] == OPTIONS.max_moments
