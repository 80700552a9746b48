"""Frame-sampler benchmark: cinedex.pipeline.frames.sample against bare ffmpeg decoding and PySceneDetect.

For each film, in the same run and one after another (never in parallel):

  ours         cinedex.pipeline.frames.sample(ingest(film), Settings(home=..., media_roots=...), fresh_out_dir), default
               settings otherwise (shot_model "auto": no learned model without a GPU). Ingest (probe + sha256) runs
               first in the same child and is timed apart.
  ffmpeg       ffmpeg -hide_banner -nostats -i FILM -vf scale=W:H -f null -   (W:H = cinedex.pipeline.frames.output_size,
               the size the sampler decodes at), i.e. the cost of simply decoding every frame at that size.
  content      PySceneDetect's ContentDetector through its Python API: scenedetect.detect(film, ContentDetector())
               with default settings (OpenCV backend, automatic downscale).
  adaptive     the same with AdaptiveDetector() (default settings).

Every contender runs in its own child process. Peak memory: the child's ru_maxrss from wait4, and the resident size
of the child's whole process tree sampled every 20 ms by the parent (psutil); the table shows the larger of the two.
Wall times of the Python contenders are measured inside the child around the call (interpreter start, imports and,
for ours, ingest excluded; the process wall time is in the JSON too). CPU time ("cpu s" in the table, work_cpu_s in
the JSON) is user+sys of the work and everything it waited for, measured the same way; on a shared machine whose
load changes during the run, the CPU ratios (also reported) are steadier than the wall-time ones.

Goals (issue 14): F1 of ours >= AdaptiveDetector's, and ours' wall time <= 1/3 of ContentDetector's
(content / ours >= 3); also reported: ours / ffmpeg.

Films (default: all; --only NAME for one):
  synthetic     >= 1 hour, 1280x720, 24 fps, H.264, hard cuts at known frames (see below); --minutes N (default 60)
  intra         4 minutes, 1280x720, 24 fps, H.264 with a keyframe on every frame (-g 1), built from the same looks:
                hard cuts, fades through black and dissolves at known frames (see below); --intra-minutes N
  longgop       the synthetic film's first 10 minutes encoded again with keyframes up to 10 s apart
                (-x264-params scenecut=40:keyint=250, ultrafast): the floor rate's cost
  bigbuckbunny  the real clip bigbuckbunny.mp4 (1280x720, 25 fps, 5.3 s, one GOP, no cut)
  bikes         the real clip bikes.mp4 (640x272, 25 fps, 10 s, five cuts at frames 30 76 137 187 242)
  sample        cinedex.sample.build_sample_film (640x360, 25 fps, 34.56 s, known cuts)
Accuracy: every true boundary has a span: a cut its frame, a fade or dissolve from the last frame of the old picture
to the first frame of the new one. A detection within the span, widened by one frame (1/fps + 1 ms) each side,
finds it; each detection matches at most one boundary (nearest first); unmatched detections are false (a
detector that cuts a fade into pieces gets one match and false cuts for the rest). Precision, recall, F1 over all
boundaries; "exact" counts cuts found on their frame.

The films are built once and cached in benchmarks/.films/ (gitignored), with their true boundaries in a JSON next
to them. The synthetic film, in two steps, all with ffmpeg's lavfi sources:

 1. Each distinct shot look is rendered once, 40 s (960 frames), 1280x720 at 24 fps, as an intermediate:
      ffmpeg -filter_complex "<SOURCE GRAPH>,format=yuv420p,setsar=1[v]" -map "[v]" -frames:v 960 \
             -c:v libx264 -preset ultrafast -crf 12 benchmarks/.films/src/<look>.mp4
    where the looks are (see SOURCES): testsrc2, testsrc, mandelbrot zoom, a still of the mandelbrot set,
    game of life, cellular automaton (rule 30, scrolling), sierpinski carpet, smptehdbars, rgbtestsrc,
    yuvtestsrc, a box moving over a flat colour, animated gradients, a slow pan over haldclutsrc, a flat colour
    whose hue drifts slowly (a gradual change that is not a cut). About half are static, half move.
 2. A seeded random edit list of shots 4-40 s long (random.Random(SEED); the same look never twice in a row),
    each shot = the first N frames of a look, joined with the concat demuxer (outpoint = N/24 s rounded down to
    the microsecond, so the join is frame exact) and encoded in one pass:
      ffmpeg -f concat -safe 0 -i shots.txt -fps_mode cfr -r 24 -an -c:v libx264 -preset ultrafast \
             -x264-params scenecut=40 -g 48 -pix_fmt yuv420p benchmarks/.films/synthetic_60m_ultrafast.mp4
    A keyframe at least every 2 s (-g 48) and x264's scene-cut detection on: ultrafast switches scenecut off,
    so it is switched back on at x264's default of 40. The final encode uses -preset ultrafast rather than
    veryfast because a 60-minute 720p veryfast encode takes ~25 min on 2 busy cores (measured 60 fps), while
    the whole ultrafast build took 7.5 min (looks 2.5 min, final encode 4.8 min; 1.0 GB, 165 shots, 164 cuts,
    156 of them on keyframes x264 placed); --preset veryfast builds (and caches) a veryfast film instead. The
    result is checked to hold exactly the planned number of frames.
The all-intra film: a seeded edit list (INTRA_SEED) of shots 4-20 s long from the same looks; of the joins, about
one in five is a fade through black (the old shot fades out over 0.5-1.5 s, 0.25 s of black, the new one fades
in as long) and one in five a dissolve of 0.5-2 s (ffmpeg's xfade), the rest hard cuts. Each shot, or pair of
shots joined by a dissolve, is rendered to an intermediate (crf 12), the pieces joined with the concat demuxer and
encoded with -c:v libx264 -preset ultrafast -crf 23 -g 1 (every frame a keyframe, as intra-only masters and
some camera files are). The frame count is checked as for the synthetic film.

Usage:
  .venv/bin/python benchmarks/bench_frames.py                      # all films
  .venv/bin/python benchmarks/bench_frames.py --only bikes --repeat 5
  .venv/bin/python benchmarks/bench_frames.py --only synthetic --minutes 10 --profile
Results: a table and one JSON line per film on stdout; the run is appended to benchmarks/results/frames.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILMS_DIR = HERE / ".films"
RESULTS_DIR = HERE / "results"
TMP_DIR = RESULTS_DIR / "tmp"
RESULTS_FILE = RESULTS_DIR / "frames.json"

FILM_NAMES = ("synthetic", "intra", "longgop", "bigbuckbunny", "bikes", "sample")
CONTENDERS = ("ffmpeg", "ours", "content", "adaptive")
DETECTORS = {"content": "ContentDetector", "adaptive": "AdaptiveDetector"}
GOAL_CONTENT_OVER_OURS = 3.0  # ours at most a third of ContentDetector's wall time

# --- the synthetic film ----------------------------------------------------------------------------------------

SEED = 20240601
FPS = 24
W, H = 1280, 720
SOURCE_FRAMES = 40 * FPS  # the longest shot
MIN_SHOT, MAX_SHOT = 4 * FPS, 40 * FPS
_S = f"s={W}x{H}:r={FPS}"
# look -> (filter graph producing 1280x720 at 24 fps, moving?)
SOURCES: dict[str, tuple[str, bool]] = {
    "testsrc2": (f"testsrc2={_S}", True),
    "testsrc": (f"testsrc={_S}", True),
    "mandelbrot_zoom": (f"mandelbrot=s=640x360:r={FPS}:maxiter=512,scale={W}:{H}", True),
    "mandelbrot_still": (f"mandelbrot=s={W}x{H}:r={FPS}:maxiter=256:start_x=-0.745:start_y=0.11:start_scale=0.05,"
                         f"trim=end_frame=1,loop=loop=-1:size=1,setpts=N/{FPS}/TB", False),
    "life": (f"life=s=320x180:r={FPS}:seed=7:ratio=0.2:mold=8:life_color=#40ff40:death_color=#201050:"
             f"mold_color=#a03020,scale={W}:{H}:flags=neighbor", True),
    "cellauto": (f"cellauto=s=320x180:r={FPS}:rule=30:pattern=1:scroll=1,scale={W}:{H}:flags=neighbor,"
                 "colorchannelmixer=rr=1:gg=0.6:bb=0.2", True),
    "sierpinski": (f"sierpinski={_S}:seed=5:jump=60:type=carpet", True),
    "smptehdbars": (f"smptehdbars={_S}", False),
    "rgbtestsrc": (f"rgbtestsrc={_S}", False),
    "yuvtestsrc": (f"yuvtestsrc={_S}", False),
    "box_on_color": (f"color=c=0x183060:{_S}[bg];color=c=orange:s=240x240:r={FPS}[fg];"
                     "[bg][fg]overlay=x='mod(t*160\\,W+w)-w':y='H/2-h/2+150*sin(t)':shortest=1", True),
    "gradients": (f"gradients={_S}:speed=0.02:seed=11:nb_colors=3", True),
    "hald_pan": (f"haldclutsrc=level=8:r={FPS},scale=2560:1440:flags=bilinear,"
                 "crop=1280:720:x='mod(t*24\\,1280)':y='mod(t*12\\,720)'", True),
    "hue_drift": (f"color=c=0x2a6a3a:{_S},hue=h=t*6", False),
}



def _check_frame_count(film: Path, planned: int, what: str) -> None:
    """A built film holds exactly the planned frames, or its true cuts would be off."""
    counted = int(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-count_packets", "-show_entries", "stream=nb_read_packets",
         "-of", "csv=p=0", str(film)], check=True, capture_output=True, text=True).stdout.strip())
    if counted != planned:
        raise RuntimeError(f"{what} film has {counted} frames, planned {planned}: the joins are not frame exact")

def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", *args], check=True)


def plan_shots(minutes: float) -> list[tuple[str, int]]:
    """The edit list: (look, frames) until the film reaches `minutes`."""
    rng = random.Random(SEED)
    looks = list(SOURCES)
    target, total, shots, previous = round(minutes * 60 * FPS), 0, [], None
    while total < target:
        moving = rng.random() < 0.5
        pool = [name for name in looks if SOURCES[name][1] == moving and name != previous]
        look = rng.choice(pool)
        frames = rng.randint(MIN_SHOT, MAX_SHOT)
        shots.append((look, frames))
        total += frames
        previous = look
    return shots


def build_synthetic_looks(looks: list[str]) -> None:
    """Renders (once) each look the films use: 40 s at 1280x720, 24 fps."""
    src_dir = FILMS_DIR / "src"
    src_dir.mkdir(parents=True, exist_ok=True)
    for look in looks:
        target = src_dir / f"{look}.mp4"
        if target.exists():
            continue
        t0 = time.perf_counter()
        partial = target.with_suffix(".part.mp4")
        _ffmpeg("-filter_complex", f"{SOURCES[look][0]},format=yuv420p,setsar=1[v]", "-map", "[v]",
                "-frames:v", str(SOURCE_FRAMES), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", str(partial))
        partial.rename(target)
        print(f"  rendered look {look} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def build_synthetic(minutes: float, preset: str) -> dict:
    """Builds (once) the synthetic film; returns its truth record (path, fps, cuts)."""
    tag = f"{minutes:g}m_{preset}"
    film, truth_path = FILMS_DIR / f"synthetic_{tag}.mp4", FILMS_DIR / f"synthetic_{tag}.json"
    if film.exists() and truth_path.exists():
        return json.loads(truth_path.read_text())
    src_dir = FILMS_DIR / "src"
    shots = plan_shots(minutes)
    started = time.perf_counter()
    build_synthetic_looks(sorted({look for look, _ in shots}))
    listing = FILMS_DIR / f"synthetic_{tag}.txt"
    lines = []
    for look, frames in shots:
        # The concat demuxer reads times in whole microseconds: N/24 s rounded down keeps frame N out, and the next
        # shot starts at most 1 us early, which the constant-rate output timing absorbs.
        us = frames * 1_000_000 // FPS
        lines += [f"file '{src_dir / (look + '.mp4')}'", f"outpoint {us // 1_000_000}.{us % 1_000_000:06d}"]
    listing.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    partial = film.with_suffix(".part.mp4")
    x264 = ["-x264-params", "scenecut=40"] if preset == "ultrafast" else []
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-fps_mode", "cfr", "-r", str(FPS), "-an",
            "-c:v", "libx264", "-preset", preset, *x264, "-g", "48", "-pix_fmt", "yuv420p", str(partial))
    encode_s = time.perf_counter() - t0
    total = sum(frames for _, frames in shots)
    _check_frame_count(partial, total, "synthetic")
    partial.rename(film)
    cut_frames, position = [], 0
    for _, frames in shots[:-1]:
        position += frames
        cut_frames.append(position)
    truth = {
        "path": str(film), "fps": FPS, "frames": total, "duration_s": total / FPS, "preset": preset, "seed": SEED,
        "cut_frames": cut_frames, "cuts_s": [f / FPS for f in cut_frames],
        "shots": [{"look": look, "frames": frames, "moving": SOURCES[look][1]} for look, frames in shots],
        "build_s": round(time.perf_counter() - started, 1), "final_encode_s": round(encode_s, 1),
    }
    truth_path.write_text(json.dumps(truth, indent=1))
    print(f"  built {film.name}: {len(shots)} shots, {total} frames in {truth['build_s']} s "
          f"(final encode {encode_s:.0f} s)", file=sys.stderr)
    return truth


INTRA_SEED = 20261202
INTRA_MIN_SHOT, INTRA_MAX_SHOT = 4 * FPS, 20 * FPS
BLACK_FRAMES = 6  # 0.25 s of black inside a fade


def plan_intra(minutes: float) -> list[dict]:
    """The all-intra film's edit list: shots with the join that starts each (after the first)."""
    rng = random.Random(INTRA_SEED)
    looks = list(SOURCES)
    target, total, shots, previous = round(minutes * 60 * FPS), 0, [], None
    while total < target:
        look = rng.choice([name for name in looks if name != previous])
        frames = rng.randint(INTRA_MIN_SHOT, INTRA_MAX_SHOT)
        roll = rng.random()
        join = {"kind": "cut"}
        if shots and roll < 0.2:
            join = {"kind": "fade", "frames": rng.randint(12, 36)}
        elif shots and roll < 0.4 and shots[-1]["join"]["kind"] != "dissolve":
            join = {"kind": "dissolve", "frames": rng.randint(12, 48)}
        shots.append({"look": look, "frames": frames, "join": join})
        total += frames
        previous = look
    return shots


def build_intra(minutes: float) -> dict:
    """Builds (once) the all-intra film; returns its truth record (path, fps, boundaries with their spans)."""
    tag = f"{minutes:g}m"
    film, truth_path = FILMS_DIR / f"intra_{tag}.mp4", FILMS_DIR / f"intra_{tag}.json"
    if film.exists() and truth_path.exists():
        return json.loads(truth_path.read_text())
    build_synthetic_looks(sorted(SOURCES))
    shots = plan_intra(minutes)
    started = time.perf_counter()
    work = FILMS_DIR / f"intra_{tag}_pieces"
    work.mkdir(parents=True, exist_ok=True)
    src_dir = FILMS_DIR / "src"
    # Pieces: a shot, or two shots joined by a dissolve; fades are applied at the pieces' ends.
    pieces: list[list[int]] = []
    for index, shot in enumerate(shots):
        if shot["join"]["kind"] == "dissolve":
            pieces[-1].append(index)
        else:
            pieces.append([index])
    listing, boundaries, position = [], [], 0
    for number, members in enumerate(pieces):
        inputs, chains = [], []
        for k, index in enumerate(members):
            shot = shots[index]
            inputs += ["-i", str(src_dir / f"{shot['look']}.mp4")]
            chain = f"[{k}:v]trim=end_frame={shot['frames']},setpts=PTS-STARTPTS"
            if index == members[0] and shot["join"]["kind"] == "fade":
                chain += f",fade=t=in:s=0:n={shot['join']['frames']}"
            nxt = shots[members[-1] + 1] if members[-1] + 1 < len(shots) else None
            if index == members[-1] and nxt is not None and nxt["join"]["kind"] == "fade":
                fade = nxt["join"]["frames"]
                chain += f",fade=t=out:s={shot['frames'] - fade}:n={fade},tpad=stop={BLACK_FRAMES}:color=black"
            chains.append(chain + f"[s{k}]")
        if len(members) == 2:
            first, second = shots[members[0]], shots[members[1]]
            overlap = second["join"]["frames"]
            offset = (first["frames"] - overlap) / FPS
            graph = ";".join(chains) + f";[s0][s1]xfade=transition=fade:duration={overlap / FPS}:offset={offset}[v]"
        else:
            graph = chains[0].replace("[s0]", "[v]")
        piece = work / f"{number:04d}.mp4"
        if not piece.exists():
            partial = piece.with_suffix(".part.mp4")
            _ffmpeg(*inputs, "-filter_complex", graph + ";[v]format=yuv420p,setsar=1[out]", "-map", "[out]",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-r", str(FPS), str(partial))
            partial.rename(piece)
        listing.append(f"file '{piece}'")
        # The true boundaries, in frames of the film: where each shot of the piece begins.
        for k, index in enumerate(members):
            shot = shots[index]
            join = shot["join"]
            if index == 0:
                pass
            elif join["kind"] == "cut":
                boundaries.append({"kind": "cut", "start": position, "end": position})
            elif join["kind"] == "fade":
                out = join["frames"]
                # From the old shot's last clean frame, through its fade and the black, to the new one's first.
                boundaries.append({"kind": "fade", "start": position - BLACK_FRAMES - out,
                                   "end": position + join["frames"]})
            else:
                overlap = join["frames"]
                boundaries.append({"kind": "dissolve", "start": position - overlap, "end": position})
            length = shot["frames"] - (join["frames"] if join["kind"] == "dissolve" else 0)
            if k == len(members) - 1 and members[-1] + 1 < len(shots) and shots[members[-1] + 1]["join"]["kind"] == \
                    "fade":
                length += BLACK_FRAMES
            position += length
    total = position
    joined = FILMS_DIR / f"intra_{tag}.txt"
    joined.write_text("\n".join(listing) + "\n")
    partial = film.with_suffix(".part.mp4")
    t0 = time.perf_counter()
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(joined), "-fps_mode", "cfr", "-r", str(FPS), "-an",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-g", "1", "-pix_fmt", "yuv420p", str(partial))
    _check_frame_count(partial, total, "intra")
    partial.rename(film)
    truth = {"path": str(film), "fps": FPS, "frames": total, "duration_s": total / FPS, "seed": INTRA_SEED,
             "boundaries": [{**b, "start_s": b["start"] / FPS, "end_s": b["end"] / FPS} for b in boundaries],
             "cuts_s": [b["start"] / FPS for b in boundaries if b["kind"] == "cut"],
             "shots": shots, "build_s": round(time.perf_counter() - started, 1),
             "final_encode_s": round(time.perf_counter() - t0, 1)}
    truth_path.write_text(json.dumps(truth, indent=1))
    shutil.rmtree(work)
    print(f"  built {film.name}: {len(shots)} shots, {len(boundaries)} boundaries, {total} frames in "
          f"{truth['build_s']} s", file=sys.stderr)
    return truth


def build_long_gop(minutes: float, preset: str) -> dict:
    """Builds (once) the first 10 minutes of the synthetic film again with keyframes up to 10 s apart (x264's
    default keyint of 250): what decides how much of a film the sampler decodes."""
    source = build_synthetic(minutes, preset)
    film, truth_path = FILMS_DIR / "longgop_10m.mp4", FILMS_DIR / "longgop_10m.json"
    if film.exists() and truth_path.exists():
        return json.loads(truth_path.read_text())
    partial = film.with_suffix(".part.mp4")
    _ffmpeg("-i", source["path"], "-t", "600", "-an", "-c:v", "libx264", "-preset", "ultrafast", "-x264-params",
            "scenecut=40:keyint=250", "-pix_fmt", "yuv420p", str(partial))
    partial.rename(film)
    truth = {"path": str(film), "fps": FPS, "duration_s": 600.0, "cuts_s": [c for c in source["cuts_s"] if c < 600]}
    truth_path.write_text(json.dumps(truth, indent=1))
    return truth


def prepare_film(name: str, args) -> dict:
    """{name, path, fps, cuts_s or None}"""
    from cinedex.sample import BIKES_CUT_FRAMES, build_sample_film, clip

    if name == "synthetic":
        truth = build_synthetic(args.minutes, args.preset)
        return {"name": name, "path": truth["path"], "fps": truth["fps"], "cuts_s": truth["cuts_s"]}
    if name == "longgop":
        truth = build_long_gop(args.minutes, args.preset)
        return {"name": name, "path": truth["path"], "fps": truth["fps"], "cuts_s": truth["cuts_s"]}
    if name == "intra":
        truth = build_intra(args.intra_minutes)
        return {"name": name, "path": truth["path"], "fps": truth["fps"], "cuts_s": truth["cuts_s"],
                "spans_s": [(b["start_s"], b["end_s"]) for b in truth["boundaries"]]}
    if name == "bigbuckbunny":
        return {"name": name, "path": str(clip("bigbuckbunny.mp4")), "fps": 25, "cuts_s": []}
    if name == "bikes":
        return {"name": name, "path": str(clip("bikes.mp4")), "fps": 25, "cuts_s": [f / 25 for f in BIKES_CUT_FRAMES]}
    if name == "sample":
        film = build_sample_film(FILMS_DIR / "sample")
        return {"name": name, "path": film.path, "fps": film.fps, "cuts_s": film.cuts_s}
    raise ValueError(name)


# --- measuring ---------------------------------------------------------------------------------------------------


def match_cuts(found: list[float], truth: list[float], fps: float,
               spans: list[tuple[float, float]] | None = None) -> dict:
    """Greedy one-to-one matching, nearest first: a detection within a true boundary's span (a cut's is its frame),
    widened by one frame each side, finds it."""
    tolerance = 1 / fps + 1e-3
    spans = spans if spans is not None else [(t, t) for t in truth]

    def distance(span: tuple[float, float], time_s: float) -> float:
        return max(span[0] - time_s, time_s - span[1], 0.0)

    pairs = sorted((distance(span, f), i, j) for i, span in enumerate(spans) for j, f in enumerate(found)
                   if distance(span, f) <= tolerance)
    used_t, used_f, exact = set(), set(), 0
    for gap, i, j in pairs:
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
        exact += spans[i][0] == spans[i][1] and gap <= 0.5 / fps
    missed = [round(spans[i][0], 4) for i in range(len(spans)) if i not in used_t]
    false = [round(f, 4) for j, f in enumerate(found) if j not in used_f]
    recall = len(used_t) / len(spans) if spans else None
    precision = len(used_f) / len(found) if found else None
    f1 = (2 * recall * precision / (recall + precision) if recall and precision else
          (None if recall is None or precision is None else 0.0))
    return {"true_boundaries": len(spans), "true_cuts": sum(1 for a, b in spans if a == b), "found": len(used_t),
            "frame_exact": exact, "false_cuts": len(false),
            "recall": round(recall, 4) if recall is not None else None,
            "precision": round(precision, 4) if precision is not None else None,
            "f1": round(f1, 4) if f1 is not None else None, "missed_s": missed[:50], "false_s": false[:50]}


def _tree_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)
        stop.wait(0.02)


def run_child(cmd: list[str]) -> dict:
    """Runs `cmd`, returning wall time, rusage (the child and what it waited for) and the sampled tree peak."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=HERE.parent)
        stop, peak = threading.Event(), [0]
        poller = threading.Thread(target=_tree_rss, args=(proc.pid, stop, peak), daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        poller.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]}... exited {proc.returncode}: {stderr[-2000:]}")
    return {"process_wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mb": usage.ru_maxrss / 1024,
            "tree_peak_mb": peak[0] / 2**20, "stdout": stdout, "stderr": stderr}


def _worker_cmd(kind: str, film: str, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--film", film, *(extra or [])]


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result from the worker: {text[-500:]}")


def measure(kind: str, film: dict, size: tuple[int, int], args, run_index: int) -> dict:
    if kind == "ffmpeg":
        cmd = ["ffmpeg", "-hide_banner", "-nostats", "-i", film["path"], "-vf", f"scale={size[0]}:{size[1]}",
               "-f", "null", "-"]
        child = run_child(cmd)
        result = {"wall_s": child["process_wall_s"], "work_cpu_s": child["cpu_s"]}
    else:
        extra = []
        if kind == "ours" and args.profile and run_index == 0:
            extra = ["--profile-out", str(TMP_DIR / f"profile_{film['name']}.pstats")]
        child = run_child(_worker_cmd(kind, film["path"], extra))
        result = _last_json(child["stdout"])
    result.update({k: child[k] for k in ("process_wall_s", "cpu_s", "maxrss_mb", "tree_peak_mb")})
    result["peak_rss_mb"] = max(child["maxrss_mb"], child["tree_peak_mb"])
    return result


def _aggregate(runs: list[dict]) -> dict:
    """Median of the times over repeats, max of the memory, the rest from the first run."""
    merged = dict(runs[0])
    for key in ("wall_s", "work_cpu_s", "process_wall_s", "cpu_s", "ingest_s", "pass1_s", "pass2_s"):
        if key in merged:
            merged[key] = statistics.median(r[key] for r in runs)
    for key in ("peak_rss_mb", "maxrss_mb", "tree_peak_mb"):
        merged[key] = max(r[key] for r in runs)
    if len(runs) > 1:
        merged["walls_s"] = [round(r["wall_s"], 3) for r in runs]
    return merged


def bench_film(film: dict, args) -> dict:
    from cinedex.pipeline.frames import output_size
    from cinedex.pipeline.ingest import probe
    from cinedex.core.settings import Settings

    info = probe(Path(film["path"]))
    size = output_size(info.width, info.height, info.rotation, Settings().frame_width)
    with open(film["path"], "rb") as f:  # warm the page cache so no contender pays for the first read
        while f.read(1 << 24):
            pass
    repeat = args.repeat or (1 if info.duration_s > 300 else 3)
    record = {"film": film["name"], "path": film["path"], "duration_s": info.duration_s,
              "source_size": [info.width, info.height], "fps": info.fps, "out_size": list(size), "repeat": repeat,
              "load_before": [round(x, 2) for x in os.getloadavg()]}
    for kind in args.contenders:
        runs = []
        for i in range(repeat):
            print(f"  {film['name']}: {kind} run {i + 1}/{repeat} (load {os.getloadavg()[0]:.2f})", file=sys.stderr)
            runs.append(measure(kind, film, size, args, i))
        result = _aggregate(runs)
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        cuts = result.pop("cuts_s", None)
        if cuts is not None and film["cuts_s"] is not None:
            result["accuracy"] = match_cuts(cuts, film["cuts_s"], film["fps"], film.get("spans_s"))
        record[kind] = result
    record["load_after"] = [round(x, 2) for x in os.getloadavg()]
    ratios = {}
    if "ours" in record and "ffmpeg" in record:
        ratios["ours_over_ffmpeg"] = round(record["ours"]["wall_s"] / record["ffmpeg"]["wall_s"], 3)
        ratios["ours_over_ffmpeg_cpu"] = round(record["ours"]["work_cpu_s"] / record["ffmpeg"]["work_cpu_s"], 3)
    if "ours" in record and "content" in record:
        ratios["content_over_ours"] = round(record["content"]["wall_s"] / record["ours"]["wall_s"], 3)
        ratios["content_over_ours_goal_met"] = ratios["content_over_ours"] >= GOAL_CONTENT_OVER_OURS
        ratios["content_over_ours_cpu"] = round(record["content"]["work_cpu_s"] / record["ours"]["work_cpu_s"], 3)
    ours_f1 = (record.get("ours", {}).get("accuracy") or {}).get("f1")
    adaptive_f1 = (record.get("adaptive", {}).get("accuracy") or {}).get("f1")
    if ours_f1 is not None and adaptive_f1 is not None:
        ratios["f1_goal_met"] = ours_f1 >= adaptive_f1
    record["ratios"] = ratios
    return record


# --- workers (run in the child) ---------------------------------------------------------------------------------


def _cpu_now() -> float:
    """CPU seconds of this process and of the children it has waited for (its ffmpeg runs)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _rusage_mb() -> dict:
    import resource

    return {"self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def worker_ours(film: str, profile_out: str | None) -> dict:
    import cinedex.pipeline.frames as frames
    from cinedex.pipeline.ingest import ingest
    from cinedex.core.settings import Settings

    TMP_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ours_", dir=TMP_DIR))
    film_path = Path(film)
    settings = Settings(home=work / "home", media_roots=os.pathsep.join([str(film_path.resolve().parent), str(work)]))

    # The sampler's own log says how long each pass ran and what pass 1 planned.
    import logging
    import re

    messages: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("cinedex.pipeline.frames")
    logger.setLevel(logging.INFO)
    logger.addHandler(Capture())

    def stats() -> dict:
        text = " ".join(messages)
        found = {}
        for key, pattern in {"anchors": r"pass 1 decoded (\d+) anchors", "pass1_s": r"\) in ([\d.]+) s; stretches",
                             "boundary_stretches": r"to decode: (\d+) for boundaries",
                             "floor_stretches": r"(\d+) for the floor rate, ", "skipped_stretches": r"(\d+) not",
                             "pass2_s": r"pass 2 in ([\d.]+) s", "decoded_for_boundaries": r"\(([\d.]+)% for shot",
                             "decoded_for_floor": r"([\d.]+)% for the floor rate\)"}.items():
            match = re.search(pattern, text)
            if match:
                found[key] = float(match.group(1))
        return found

    try:
        t0 = time.perf_counter()
        video = ingest(film_path, settings)
        ingest_s = time.perf_counter() - t0
        out = work / "out"
        profiler = None
        if profile_out:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        t0, c0 = time.perf_counter(), _cpu_now()
        sampling = frames.sample(video, settings, out)
        wall, work_cpu = time.perf_counter() - t0, _cpu_now() - c0
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile_out)
        reasons: dict[str, int] = {}
        for frame in sampling.frames:
            reasons[frame.reason] = reasons.get(frame.reason, 0) + 1
        return {"wall_s": wall, "work_cpu_s": work_cpu, "ingest_s": ingest_s, "shots": len(sampling.shots),
                "frames_kept": len(sampling.frames), "reasons": reasons,
                "decoded_fraction": round(sampling.decoded_fraction, 4),
                "transitions": {kind: sum(1 for shot in sampling.shots[1:] if shot.transition == kind)
                                for kind in ("cut", "fade", "dissolve")},
                "cuts_s": [shot.start_s for shot in sampling.shots[1:]], **stats(), **_rusage_mb()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def worker_scenedetect(film: str, kind: str) -> dict:
    import scenedetect

    detector = getattr(scenedetect, DETECTORS[kind])()
    t0, c0 = time.perf_counter(), _cpu_now()
    scenes = scenedetect.detect(film, detector)
    wall, work_cpu = time.perf_counter() - t0, _cpu_now() - c0
    return {"wall_s": wall, "work_cpu_s": work_cpu, "scenes": max(1, len(scenes)),
            "cuts_s": [start.seconds for start, _ in scenes[1:]], **_rusage_mb()}


# --- output ------------------------------------------------------------------------------------------------------


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(records: list[dict]) -> None:
    header = (f"{'film':<13}{'dur s':>8} {'contender':<10}{'wall s':>9}{'cpu s':>9}{'peak MB':>9}  "
              f"{'shots':>6}{'kept':>6}{'decoded':>8}  {'prec':>6}{'recall':>7}{'F1':>6}{'exact':>6}{'false':>6}")
    print(header)
    print("-" * len(header))
    for rec in records:
        for kind in CONTENDERS:
            if kind not in rec:
                continue
            r = rec[kind]
            acc = r.get("accuracy") or {}
            count = r.get("shots", r.get("scenes"))
            print(f"{rec['film']:<13}{rec['duration_s']:>8.1f} {kind:<10}{r['wall_s']:>9.2f}{r['work_cpu_s']:>9.2f}"
                  f"{r['peak_rss_mb']:>9.0f}  {_fmt(count, 'd'):>6}{_fmt(r.get('frames_kept'), 'd'):>6}"
                  f"{_fmt(r.get('decoded_fraction'), '.1%'):>8}  {_fmt(acc.get('precision'), '.3f'):>6}"
                  f"{_fmt(acc.get('recall'), '.3f'):>7}{_fmt(acc.get('f1'), '.3f'):>6}"
                  f"{_fmt(acc.get('frame_exact'), 'd'):>6}{_fmt(acc.get('false_cuts'), 'd'):>6}")
        ratios = rec["ratios"]
        parts = []
        if "content_over_ours" in ratios:
            met = "met" if ratios["content_over_ours_goal_met"] else "MISSED"
            parts.append(f"content/ours = {ratios['content_over_ours']:.2f} (goal >= {GOAL_CONTENT_OVER_OURS:g}: "
                         f"{met}; cpu {ratios['content_over_ours_cpu']:.2f})")
        if "f1_goal_met" in ratios:
            parts.append(f"F1 ours >= adaptive: {'met' if ratios['f1_goal_met'] else 'MISSED'}")
        if "ours_over_ffmpeg" in ratios:
            parts.append(f"ours/ffmpeg = {ratios['ours_over_ffmpeg']:.2f} (cpu {ratios['ours_over_ffmpeg_cpu']:.2f})")
        print(f"{'':<13}{'':>8} {'ratios':<10}" + "; ".join(parts))
        print(f"{'':<13}{'':>8} {'load':<10}{rec['load_before']} -> {rec['load_after']}")
    print()


def save(run: dict) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data = {"runs": []}
    if RESULTS_FILE.exists():
        try:
            data = json.loads(RESULTS_FILE.read_text())
        except json.JSONDecodeError:
            pass
    data.setdefault("runs", []).append(run)
    RESULTS_FILE.write_text(json.dumps(data, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=FILM_NAMES, help="benchmark one film")
    parser.add_argument("--minutes", type=float, default=60, help="length of the synthetic film (default 60)")
    parser.add_argument("--preset", default="ultrafast", help="x264 preset of the synthetic film (default ultrafast)")
    parser.add_argument("--repeat", type=int, help="runs per contender (median wall); default 1 for films over "
                                                   "5 minutes, else 3")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset of "
                                                                            + ",".join(CONTENDERS))
    parser.add_argument("--profile", action="store_true",
                        help="cProfile our sampler's first run; writes benchmarks/results/tmp/profile_<film>.pstats")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results/frames.json")
    parser.add_argument("--intra-minutes", type=float, default=4, help="length of the all-intra film (default 4)")
    parser.add_argument("--worker", choices=("ours", *DETECTORS), help=argparse.SUPPRESS)
    parser.add_argument("--film", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = (worker_ours(args.film, args.profile_out) if args.worker == "ours"
                  else worker_scenedetect(args.film, args.worker))
        print(json.dumps(result))
        return

    args.contenders = [c for c in args.contenders.split(",") if c]
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    names = [args.only] if args.only else list(FILM_NAMES)
    run = {"started": dt.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
           "cpus": os.cpu_count(), "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True)
           .stdout.split("\n")[0], "python": platform.python_version(), "uptime_before": _uptime(), "films": []}
    for name in names:
        print(f"preparing {name} ...", file=sys.stderr)
        film = prepare_film(name, args)
        record = bench_film(film, args)
        run["films"].append(record)
        print(json.dumps(record), flush=True)
    run["uptime_after"] = _uptime()
    print()
    print_table(run["films"])
    print(f"uptime before: {run['uptime_before']}\nuptime after:  {run['uptime_after']}")
    if not args.no_save:
        save(run)
        print(f"appended to {RESULTS_FILE.relative_to(HERE.parent)}")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
