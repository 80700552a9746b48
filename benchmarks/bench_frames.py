"""Frame-sampler benchmark: cinedex.pipeline.frames.sample against bare ffmpeg decoding and PySceneDetect.

For each film, in the same run and one after another (never in parallel):

  ours         cinedex.pipeline.frames.sample(ingest(film), Settings(home=..., media_roots=...), fresh_out_dir), default
               settings otherwise. Ingest (probe + sha256) runs first in the same child and is timed apart.
  ffmpeg       ffmpeg -hide_banner -nostats -i FILM -vf scale=W:H -f null -   (W:H = cinedex.pipeline.frames.output_size,
               the size the sampler decodes at), i.e. the cost of simply decoding every frame at that size.
  scenedetect  PySceneDetect's ContentDetector through its Python API: scenedetect.detect(film, ContentDetector())
               with default settings (OpenCV backend, automatic downscale).

Every contender runs in its own child process. Peak memory: the child's ru_maxrss from wait4 (exact, but for our
sampler it is the largest single process, Python or one of its ffmpeg children), and the resident size of the
child's whole process tree sampled every 20 ms by the parent (psutil), which adds up Python and its concurrent
ffmpeg. The table shows the larger of the two. Wall times of the Python contenders are measured inside the
child around the call (interpreter start, imports and, for ours, ingest excluded; the process wall time is in
the JSON too). CPU time ("cpu s" in the table, work_cpu_s in the JSON) is user+sys of the work and everything it
waited for (our ffmpeg children included), measured the same way; on a shared machine whose load changes during
the run, the CPU ratios (also reported) are steadier than the wall-time ones, which the goals are stated in.

Goals: ours / ffmpeg wall <= 1.25, scenedetect / ours wall >= 3.

Films (default: all; --only NAME for one):
  synthetic     >= 1 hour, 1280x720, 24 fps, H.264, hard cuts at known frames (see below); --minutes N (default 60)
  bigbuckbunny  the real clip bigbuckbunny.mp4 (1280x720, 25 fps, 5.3 s, one GOP, no cut)
  bikes         the real clip bikes.mp4 (640x272, 25 fps, 10 s, five cuts at frames 30 76 137 187 242)
  sample        cinedex.sample.build_sample_film (640x360, 25 fps, 34.56 s, known cuts)
Accuracy: a true cut counts as found when a detected cut lies within one frame (1/fps + 1 ms) of it, each
detection matched at most once; unmatched detections are false cuts.

The synthetic film is built once and cached in benchmarks/.films/ (gitignored), with its true cuts in a JSON next
to it. Build (two steps, all with ffmpeg's lavfi sources):

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

FILM_NAMES = ("synthetic", "bigbuckbunny", "bikes", "sample")
CONTENDERS = ("ffmpeg", "ours", "scenedetect")
GOAL_OURS_OVER_FFMPEG = 1.25
GOAL_SCENEDETECT_OVER_OURS = 3.0

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


def build_synthetic(minutes: float, preset: str) -> dict:
    """Builds (once) the synthetic film; returns its truth record (path, fps, cuts)."""
    tag = f"{minutes:g}m_{preset}"
    film, truth_path = FILMS_DIR / f"synthetic_{tag}.mp4", FILMS_DIR / f"synthetic_{tag}.json"
    if film.exists() and truth_path.exists():
        return json.loads(truth_path.read_text())
    src_dir = FILMS_DIR / "src"
    src_dir.mkdir(parents=True, exist_ok=True)
    shots = plan_shots(minutes)
    started = time.perf_counter()
    for look in sorted({look for look, _ in shots}):
        target = src_dir / f"{look}.mp4"
        if target.exists():
            continue
        t0 = time.perf_counter()
        partial = target.with_suffix(".part.mp4")
        _ffmpeg("-filter_complex", f"{SOURCES[look][0]},format=yuv420p,setsar=1[v]", "-map", "[v]",
                "-frames:v", str(SOURCE_FRAMES), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", str(partial))
        partial.rename(target)
        print(f"  rendered look {look} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
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
    counted = int(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-count_packets", "-show_entries", "stream=nb_read_packets",
         "-of", "csv=p=0", str(partial)], check=True, capture_output=True, text=True).stdout.strip())
    if counted != total:
        raise RuntimeError(f"synthetic film has {counted} frames, planned {total}: the joins are not frame exact")
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


def prepare_film(name: str, args) -> dict:
    """{name, path, fps, cuts_s or None}"""
    from cinedex.sample import BIKES_CUT_FRAMES, build_sample_film, clip

    if name == "synthetic":
        truth = build_synthetic(args.minutes, args.preset)
        return {"name": name, "path": truth["path"], "fps": truth["fps"], "cuts_s": truth["cuts_s"]}
    if name == "bigbuckbunny":
        return {"name": name, "path": str(clip("bigbuckbunny.mp4")), "fps": 25, "cuts_s": []}
    if name == "bikes":
        return {"name": name, "path": str(clip("bikes.mp4")), "fps": 25, "cuts_s": [f / 25 for f in BIKES_CUT_FRAMES]}
    if name == "sample":
        film = build_sample_film(FILMS_DIR / "sample")
        return {"name": name, "path": film.path, "fps": film.fps, "cuts_s": film.cuts_s}
    raise ValueError(name)


# --- measuring ---------------------------------------------------------------------------------------------------


def match_cuts(found: list[float], truth: list[float], fps: float) -> dict:
    """Greedy one-to-one matching, nearest first, within one frame."""
    tolerance = 1 / fps + 1e-3
    pairs = sorted((abs(f - t), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)
                   if abs(f - t) <= tolerance)
    used_t, used_f, exact = set(), set(), 0
    for distance, i, j in pairs:
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
        exact += distance <= 0.5 / fps
    missed = [round(t, 4) for i, t in enumerate(truth) if i not in used_t]
    false = [round(f, 4) for j, f in enumerate(found) if j not in used_f]
    return {"true_cuts": len(truth), "found": len(used_t), "frame_exact": exact, "false_cuts": len(false),
            "recall": round(len(used_t) / len(truth), 4) if truth else None,
            "precision": round(len(used_t) / len(found), 4) if found else None,
            "missed_s": missed[:50], "false_s": false[:50]}


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
    for key in ("wall_s", "work_cpu_s", "process_wall_s", "cpu_s", "ingest_s", "pass1_wait_s", "pass2_wait_s"):
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
            result["accuracy"] = match_cuts(cuts, film["cuts_s"], film["fps"])
        record[kind] = result
    record["load_after"] = [round(x, 2) for x in os.getloadavg()]
    ratios = {}
    if "ours" in record and "ffmpeg" in record:
        ratios["ours_over_ffmpeg"] = round(record["ours"]["wall_s"] / record["ffmpeg"]["wall_s"], 3)
        ratios["ours_over_ffmpeg_goal_met"] = ratios["ours_over_ffmpeg"] <= GOAL_OURS_OVER_FFMPEG
        ratios["ours_over_ffmpeg_cpu"] = round(record["ours"]["work_cpu_s"] / record["ffmpeg"]["work_cpu_s"], 3)
    if "ours" in record and "scenedetect" in record:
        ratios["scenedetect_over_ours"] = round(record["scenedetect"]["wall_s"] / record["ours"]["wall_s"], 3)
        ratios["scenedetect_over_ours_goal_met"] = ratios["scenedetect_over_ours"] >= GOAL_SCENEDETECT_OVER_OURS
        ratios["scenedetect_over_ours_cpu"] = round(
            record["scenedetect"]["work_cpu_s"] / record["ours"]["work_cpu_s"], 3)
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

    # Instrument the decoder: time spent waiting on ffmpeg per pass and the number of ffmpeg runs.
    stats = {"pass1_wait_s": 0.0, "pass2_wait_s": 0.0, "pass2_runs": 0, "pass2_frames": 0, "pass1_frames": 0}
    original = frames._decode

    def counted(*a, **kw):
        key = "pass1" if kw.get("keyframes_only") else "pass2"
        if key == "pass2":
            stats["pass2_runs"] += 1
        gen = original(*a, **kw)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(gen)
            except StopIteration:
                stats[f"{key}_wait_s"] += time.perf_counter() - t0
                return
            stats[f"{key}_wait_s"] += time.perf_counter() - t0
            stats[f"{key}_frames"] += 1
            yield item

    frames._decode = counted
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
                "cuts_s": [shot.start_s for shot in sampling.shots[1:]], **stats, **_rusage_mb()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def worker_scenedetect(film: str) -> dict:
    from scenedetect import ContentDetector, detect

    t0, c0 = time.perf_counter(), _cpu_now()
    scenes = detect(film, ContentDetector())
    wall, work_cpu = time.perf_counter() - t0, _cpu_now() - c0
    return {"wall_s": wall, "work_cpu_s": work_cpu, "scenes": max(1, len(scenes)),
            "cuts_s": [start.seconds for start, _ in scenes[1:]], **_rusage_mb()}


# --- output ------------------------------------------------------------------------------------------------------


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(records: list[dict]) -> None:
    header = (f"{'film':<13}{'dur s':>8} {'contender':<12}{'wall s':>9}{'cpu s':>9}{'peak MB':>9}  "
              f"{'shots/scenes':>12}{'kept':>7}{'decoded':>8}  {'recall':>7}{'exact':>6}{'false':>6}")
    print(header)
    print("-" * len(header))
    for rec in records:
        for kind in CONTENDERS:
            if kind not in rec:
                continue
            r = rec[kind]
            acc = r.get("accuracy") or {}
            count = r.get("shots", r.get("scenes"))
            recall = acc.get("recall")
            print(f"{rec['film']:<13}{rec['duration_s']:>8.1f} {kind:<12}{r['wall_s']:>9.2f}{r['work_cpu_s']:>9.2f}"
                  f"{r['peak_rss_mb']:>9.0f}  {_fmt(count, 'd'):>12}{_fmt(r.get('frames_kept'), 'd'):>7}"
                  f"{_fmt(r.get('decoded_fraction'), '.1%'):>8}  {_fmt(recall, '.1%'):>7}"
                  f"{_fmt(acc.get('frame_exact'), 'd'):>6}{_fmt(acc.get('false_cuts'), 'd'):>6}")
        ratios = rec["ratios"]
        parts = []
        if "ours_over_ffmpeg" in ratios:
            met = "met" if ratios["ours_over_ffmpeg_goal_met"] else "MISSED"
            parts.append(f"ours/ffmpeg = {ratios['ours_over_ffmpeg']:.2f} (goal <= {GOAL_OURS_OVER_FFMPEG}: {met}; "
                         f"cpu {ratios['ours_over_ffmpeg_cpu']:.2f})")
        if "scenedetect_over_ours" in ratios:
            met = "met" if ratios["scenedetect_over_ours_goal_met"] else "MISSED"
            parts.append(f"scenedetect/ours = {ratios['scenedetect_over_ours']:.2f} (goal >= "
                         f"{GOAL_SCENEDETECT_OVER_OURS:g}: {met}; cpu {ratios['scenedetect_over_ours_cpu']:.2f})")
        print(f"{'':<13}{'':>8} {'ratios':<12}" + "; ".join(parts))
        print(f"{'':<13}{'':>8} {'load':<12}{rec['load_before']} -> {rec['load_after']}")
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
    parser.add_argument("--worker", choices=("ours", "scenedetect"), help=argparse.SUPPRESS)
    parser.add_argument("--film", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = worker_ours(args.film, args.profile_out) if args.worker == "ours" else worker_scenedetect(args.film)
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
