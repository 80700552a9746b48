"""Shot boundaries on clips cut, faded and dissolved here from real footage (Big Buck Bunny, bikes, carphone), each
with its answer known: colour-only cuts, fades through black and white, dissolves of several lengths, flashes.

Every clip is 480x270 at 25 fps. The sampler runs on it end to end (ingest, both passes, sampling.json), as the
index DAG runs it; the clips with `intra` in their name have a keyframe on every frame (as the all-intra films of
the benchmark), where the sampler decodes a few keyframes a second first and goes back for the rest.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cinedex.core.settings import Settings
from cinedex.pipeline import frames, ingest, shots
from cinedex.sample import clip

FPS = 25
FRAME = 1 / FPS
SIZE = "480:270"
_ENCODE = {"default": ["-c:v", "libx264", "-preset", "veryfast"],
           "intra": ["-c:v", "libx264", "-preset", "veryfast", "-g", "1"]}


def _piece(source: str, start: float, end: float, label: str, *filters: str) -> str:
    """A filter-graph chain: `source`'s picture from `start` to `end` s at the clips' size and rate, as [label]."""
    chain = ",".join([f"trim={start}:{end}", "setpts=PTS-STARTPTS", f"scale={SIZE}", "setsar=1", f"fps={FPS}",
                      "format=yuv420p", *filters])
    return f"[{source}]{chain}[{label}]"


def _build(path: Path, graph: str, gop: str = "default") -> Path:
    inputs = []
    for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"):
        inputs += ["-i", str(clip(name))]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
                    "-an", *_ENCODE[gop], "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


# bunny: 0:v (no cut in its 5.28 s), bikes: 1:v (cuts at 1.2, 3.04, 5.48, 7.48 and 9.68 s: 3.1-5.4 is one shot),
# carphone: 2:v (4 s, one shot).


def _colour_cuts(path: Path, gop: str) -> Path:
    # The same moving picture, its hue turned at each cut: brightness (luma) is the same across every cut.
    # Then a still frame and the same frame in other colours.
    graph = ";".join([
        "[0:v]split=4[b0][b1][b2][b3]",
        _piece("b0", 0, 1.6, "p0"), _piece("b1", 1.6, 3.2, "p1", "hue=h=120"),
        _piece("b2", 3.2, 4.8, "p2", "hue=h=240"),
        _piece("b3", 4.8, 4.84, "still", "loop=loop=29:size=1", f"setpts=N/{FPS}/TB"),
        "[still]split=2[s0][s1]", "[s1]hue=h=90[s2]",
        "[p0][p1][p2][s0][s2]concat=n=5[out]"])
    return _build(path, graph, gop)


COLOUR_CUTS_S = [1.6, 3.2, 4.8, 6.0]


def _through_black(path: Path, length: float, gop: str) -> Path:
    # Bunny fades out to black, 0.4 s of black, the carphone fades in: one boundary, its span from the last clean
    # frame of the bunny to the first clean frame of the carphone.
    graph = ";".join([
        _piece("0:v", 0, 4.0, "a", f"fade=t=out:st={4.0 - length}:d={length}"),
        f"color=black:s=480x270:r={FPS}:d=0.4,format=yuv420p,setsar=1[black]",
        _piece("2:v", 0, 4.0, "b", f"fade=t=in:st=0:d={length}"),
        "[a][black][b]concat=n=3[out]"])
    return _build(path, graph, gop)


def _dissolve(path: Path, length: float, gop: str) -> Path:
    graph = ";".join([_piece("0:v", 0, 4.0, "a"), _piece("2:v", 0, 4.0, "b"),
                      f"[a][b]xfade=transition=fade:duration={length}:offset={4.0 - length}[out]"])
    return _build(path, graph, gop)


def _white_then_cut(path: Path) -> Path:
    # The film opens with a fade in from black; bikes fade to white, then a hard cut to the carphone out of it.
    graph = ";".join([_piece("1:v", 3.1, 5.4, "a", "fade=t=in:st=0:d=0.6", "fade=t=out:st=1.5:d=0.8:c=white"),
                      _piece("2:v", 0, 3.0, "b"), "[a][b]concat=n=2[out]"])
    return _build(path, graph)


def _flashes(path: Path) -> Path:
    # One shot of bikes with two flashes (2 and 3 frames of a much brighter picture): no cut.
    graph = _piece("1:v", 3.1, 5.4, "out", "eq=brightness=0.6:enable='between(n,20,21)+between(n,40,42)'")
    return _build(path, graph)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shot-clips")
    built = {f"colour cuts {gop}": _colour_cuts(folder / f"colour-{gop}.mp4", gop) for gop in _ENCODE}
    for length in (0.4, 1.0, 2.0):
        built[f"through black {length}"] = _through_black(folder / f"black-{length}.mp4", length, "default")
        built[f"dissolve {length}"] = _dissolve(folder / f"dissolve-{length}.mp4", length, "default")
    built["through black 1.0 intra"] = _through_black(folder / "black-intra.mp4", 1.0, "intra")
    built["dissolve 1.0 intra"] = _dissolve(folder / "dissolve-intra.mp4", 1.0, "intra")
    built["white then cut"] = _white_then_cut(folder / "white.mp4")
    built["flashes"] = _flashes(folder / "flashes.mp4")
    return built


@pytest.fixture
def sampled(tmp_path, clips):
    def run(name: str) -> frames.FrameSampling:
        settings = Settings(home=tmp_path / "home", media_roots=os.pathsep.join([str(clips[name].parent)]))
        video = ingest.ingest(clips[name], settings)
        return frames.load_sampling(frames.sample_frames(video, settings))

    return run


def _boundaries(sampling: frames.FrameSampling) -> list[frames.Shot]:
    return sampling.shots[1:]


def _assert_tiles(sampling: frames.FrameSampling) -> None:
    assert sampling.shots[0].start_s == 0.0
    assert all(a.end_s == b.start_s for a, b in zip(sampling.shots, sampling.shots[1:]))
    for shot in sampling.shots:
        in_shot = [f for f in sampling.frames if f.shot_id == shot.shot_id]
        assert in_shot and all(shot.start_s <= f.time_s < shot.end_s for f in in_shot)
        assert shot.transition_start_s <= shot.start_s <= shot.transition_end_s


def _luma_means(path: Path, times: list[float]) -> list[float]:
    means = []
    for time_s in times:
        gray = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{time_s:.3f}", "-i", str(path), "-frames:v", "1",
                               "-f", "rawvideo", "-pix_fmt", "gray", "-"], check=True, capture_output=True).stdout
        means.append(float(np.frombuffer(gray, np.uint8).mean()))
    return means


@pytest.mark.parametrize("gop", list(_ENCODE))
def test_cuts_between_pictures_of_equal_brightness_and_other_colours_are_frame_exact(sampled, clips, gop):
    path = clips[f"colour cuts {gop}"]
    # The premise: across each cut the brightness stays (the hue filter turns U and V only).
    for cut in COLOUR_CUTS_S:
        before, after = _luma_means(path, [cut - FRAME, cut])
        assert abs(before - after) < 2.0, (cut, before, after)
    sampling = sampled(f"colour cuts {gop}")
    cuts = [s.start_s for s in _boundaries(sampling)]
    assert len(cuts) == len(COLOUR_CUTS_S), cuts
    assert all(abs(found - true) <= FRAME + 1e-6 for found, true in zip(cuts, COLOUR_CUTS_S)), cuts
    assert all(s.transition == "cut" and s.transition_start_s == s.start_s for s in _boundaries(sampling))
    _assert_tiles(sampling)


def test_the_score_sees_colour():
    # Two pictures that differ in colour only: the old luma-only score gave 0.010 for such a cut.
    frame = np.full((270 * 3 // 2, 480), 128, np.uint8)
    frame[:270] = np.tile(np.linspace(40, 200, 480, dtype=np.uint8), (270, 1))
    other = frame.copy()
    other[270:270 + 270 // 4] = 60  # U
    other[270 + 270 // 4:] = 190  # V
    a, b = shots.analyse(frame, 270), shots.analyse(other, 270)
    assert shots.picture_change(a, b) > 2 * 0.12
    assert shots.picture_change(a, a) == 0.0


@pytest.mark.parametrize(("length", "gop"), [(0.4, "default"), (1.0, "default"), (2.0, "default"), (1.0, "intra")])
def test_a_fade_through_black_is_one_boundary_with_its_span(sampled, length, gop):
    sampling = sampled(f"through black {length}" + (" intra" if gop == "intra" else ""))
    boundaries = _boundaries(sampling)
    assert [s.transition for s in boundaries] == ["fade"], [(s.transition, s.start_s) for s in boundaries]
    fade = boundaries[0]
    # From the bunny's last clean frame to the carphone's first: 4.0 - length to 4.4 + length.
    tolerance = 2 * FRAME + 0.1 * length
    assert fade.transition_start_s == pytest.approx(4.0 - length, abs=tolerance)
    assert fade.transition_end_s == pytest.approx(4.4 + length, abs=tolerance)
    assert 4.0 - FRAME <= fade.start_s <= 4.4  # the middle of the span lies in the black
    _assert_tiles(sampling)
    # No cut inside the fade, and no frame kept as one.
    assert not any(f.reason == "cut" for f in sampling.frames)


@pytest.mark.parametrize(("length", "gop"), [(0.4, "default"), (1.0, "default"), (2.0, "default"), (1.0, "intra")])
def test_a_dissolve_is_one_boundary_with_its_span(sampled, length, gop):
    sampling = sampled(f"dissolve {length}" + (" intra" if gop == "intra" else ""))
    boundaries = _boundaries(sampling)
    assert [s.transition for s in boundaries] == ["dissolve"], [(s.transition, s.start_s) for s in boundaries]
    dissolve = boundaries[0]
    tolerance = 2 * FRAME + 0.1 * length
    assert dissolve.transition_start_s == pytest.approx(4.0 - length, abs=tolerance)
    assert dissolve.transition_end_s == pytest.approx(4.0, abs=tolerance)
    assert dissolve.start_s == pytest.approx(4.0 - length / 2, abs=tolerance)
    _assert_tiles(sampling)


def test_a_fade_in_opens_the_film_and_a_fade_to_white_ends_in_a_cut(sampled):
    sampling = sampled("white then cut")
    opening = sampling.shots[0]
    assert opening.transition == "fade" and opening.start_s == 0.0
    assert opening.transition_end_s == pytest.approx(0.6, abs=2 * FRAME + 0.06)
    boundaries = _boundaries(sampling)
    assert [s.transition for s in boundaries] == ["fade"], [(s.transition, s.start_s) for s in boundaries]
    # Bikes fade to white from 1.5 s; the carphone cuts in at 2.3 s: one boundary for both.
    assert boundaries[0].transition_start_s == pytest.approx(1.5, abs=2 * FRAME + 0.08)
    assert boundaries[0].transition_end_s == pytest.approx(2.3, abs=FRAME + 1e-6)
    _assert_tiles(sampling)


def test_flashes_are_not_cuts(sampled):
    sampling = sampled("flashes")
    assert len(sampling.shots) == 1, [s.start_s for s in sampling.shots]


def test_sampling_starts_no_process_however_many_stretches_it_decodes(tmp_path, clips, monkeypatch):
    # Every frame a keyframe: the old sampler started one ffmpeg per decoded stretch (48 for 10 s of such video).
    settings = Settings(home=tmp_path / "home", media_roots=str(clips["colour cuts intra"].parent))
    video = ingest.ingest(clips["colour cuts intra"], settings)
    started: list = []
    real_popen = subprocess.Popen

    class Recording(real_popen):
        def __init__(self, args, *rest, **options):
            started.append(args)
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    sampling = frames.sample(video, settings, tmp_path / "out")
    assert started == [] and len(sampling.shots) == len(COLOUR_CUTS_S) + 1
    assert 0 < sampling.decoded_fraction < 0.5


def test_old_samplings_without_transitions_still_load(tmp_path):
    (tmp_path / "sampling.json").write_text(
        '{"width": 448, "height": 252, "decoded_fraction": 0.5, "frames": [], "shots": [{"shot_id": 0, '
        '"start_s": 0.0, "end_s": 2.0, "start_frame_time": "00:00:00.000", "thumbnail": "thumbnails/a.jpg"}]}')
    shot = frames.load_sampling(tmp_path).shots[0]
    assert shot.transition == "cut" and shot.transition_start_s is None and shot.confirmed_by == ""


@pytest.mark.slow
def test_transnetv2_finds_the_cuts_an_insensitive_threshold_misses(tmp_path, sample_film, media_dirs):
    # At a threshold of 0.3 the cheap rules miss the sample film's weaker cuts; those that still stand far out
    # from the motion around them are asked of TransNetV2, which says which are cuts.
    found = {}
    for model in ("none", "transnetv2"):
        chosen = Settings(home=tmp_path / model, media_roots=os.pathsep.join(map(str, media_dirs)),
                          shot_threshold=0.3, shot_model=model)
        video = ingest.ingest(sample_film.path, chosen)
        found[model] = frames.load_sampling(frames.sample_frames(video, chosen)).shots[1:]

    def true(shot: frames.Shot) -> bool:
        return any(abs(shot.start_s - cut) <= FRAME + 1e-6 for cut in sample_film.cuts_s)

    assert all(true(shot) for shots_found in found.values() for shot in shots_found)  # no false cut either way
    alone = {s.start_s for s in found["none"]}
    confirmed = [s for s in found["transnetv2"] if s.confirmed_by == "transnetv2"]
    assert confirmed and {s.start_s for s in confirmed}.isdisjoint(alone)
    assert alone < {s.start_s for s in found["transnetv2"]}

    # Its own view of a real cut: bikes' first cut (frame 30), in 48x27 RGB as the detector hands it frames.
    import av

    with av.open(str(clip("bikes.mp4"))) as container:
        thumbnails = [f.to_ndarray(format="rgb24", width=48, height=27)
                      for _, f in zip(range(60), container.decode(video=0))]
    probabilities = shots.LearnedShots("cpu").probabilities(np.stack(thumbnails))
    assert probabilities[29:32].max() > 0.5 and probabilities[:25].max() < 0.5
