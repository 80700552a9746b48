"""A day's inbox of bad and odd files, built with real ffmpeg in seconds: what a film archive's drop folder sees.

`make_bad_inbox(inbox, outside)` writes every file and returns one `BadInput` per file, saying what it is and what
cinedex must do with it: refuse it at ingest with a specific error, or index it with a specific handling. The
expected outcomes here are the contract; `tests/test_bad_inputs.py` checks them and keeps `docs/bad-inputs.md`
(the outcomes table, written by `outcomes_table`) in step with what really happens.

Run `python tests/bad_media.py --write-table` (with `include/` on PYTHONPATH) to rewrite the table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cinedex.pipeline import audio, frames, ingest
from cinedex.pipeline.frames import FrameSampling
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.sample import clip
from cinedex.core.settings import Settings

TABLE = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"
TEN_HOURS_S = 36_000
THIRTEEN_HOURS_S = 46_800  # over the default CINEDEX_MAX_DURATION_S of 12 hours
# Lists of other files in the inbox (an HLS playlist and a concat list, named like films), and the real media file
# outside the media roots that each names: ffmpeg must never read it, and nothing of it may reach an artifact.
LIST_TARGETS = {"holiday.mp4": "holiday segment.ts", "reel list.mp4": "private reel.mp4"}


@dataclass(frozen=True)
class BadInput:
    """One file in the inbox and the outcome cinedex owes it."""

    name: str  # file name inside the inbox
    what: str  # what the file is, in a phrase
    error: type[ingest.IngestError] | None  # the error ingest raises; None: the file is indexed
    expect: str  # a fragment of the error message, or of the handling note ingest logs ("" = plain good file)
    handling: str = ""  # for an indexed file: what the pipeline does with it
    inbox: Path = Path()

    @property
    def path(self) -> Path:
        return self.inbox / self.name

    @property
    def indexed(self) -> bool:
        return self.error is None


def _ffmpeg(*args: str | Path) -> None:
    # An argument list, never a shell: names with quotes or `$(...)` go to ffmpeg as they are.
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _clip(target: Path, *, seconds: float = 2.0, size: str = "320x180", tone: int = 440, audio: bool = True,
          extra: tuple[str, ...] = ()) -> Path:
    """A small test-pattern clip (H.264, and AAC at `tone` Hz); different tones make different files."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=f={tone}:d={seconds}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"] + (["-c:a", "aac"] if audio else [])
    _ffmpeg(*inputs, *codecs, *extra, target)
    return target


def _box_offset(data: bytes, box: bytes) -> int:
    """Offset of the top-level MP4 box `box` (walks box sizes; a plain search could hit sample data)."""
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == box:
            return offset
        if size < 8:
            break
        offset += size
    raise ValueError(f"no top-level {box!r} box")


def _garbled(data: bytes, start: int, length: int, seed: int) -> bytes:
    noise = random.Random(seed).randbytes(length)
    return data[:start] + noise + data[start + length:]


# Each builder writes one file (or folder, pipe or link) at `path`; `scratch` is for intermediates.
Builder = Callable[[Path, Path, Path], None]


def _good_film(path: Path, scratch: Path, outside: Path) -> None:
    shutil.copyfile(clip("bigbuckbunny.mp4"), path)  # real footage, H.264 + 6-channel AAC


def _good_silent_clip(path: Path, scratch: Path, outside: Path) -> None:
    shutil.copyfile(clip("bikes.mp4"), path)  # real footage, no audio track


def _duplicate(path: Path, scratch: Path, outside: Path) -> None:
    shutil.copyfile(clip("bigbuckbunny.mp4"), path)


def _zero_bytes(path: Path, scratch: Path, outside: Path) -> None:
    path.write_bytes(b"")


def _text_file(path: Path, scratch: Path, outside: Path) -> None:
    path.write_text("Shot list, reel 3\n1. EXT. HARBOUR - DAWN\n2. INT. CABIN - NIGHT\n")


def _still_image(path: Path, scratch: Path, outside: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180", "-frames:v", "1", "-f", "image2", "-c:v", "png", path)


def _folder(path: Path, scratch: Path, outside: Path) -> None:
    path.mkdir()
    _clip(path / "inside.mp4", seconds=1)


def _named_pipe(path: Path, scratch: Path, outside: Path) -> None:
    os.mkfifo(path)  # opening it for reading would block until someone writes: ingest must never open it


def _symlink_out(path: Path, scratch: Path, outside: Path) -> None:
    target = outside / "private-film.mp4"
    _clip(target, tone=1000)
    path.symlink_to(target)


def _dangling_symlink(path: Path, scratch: Path, outside: Path) -> None:
    path.symlink_to(path.parent / "deleted-original.mp4")


def _symlink_inside(path: Path, scratch: Path, outside: Path) -> None:
    path.symlink_to("good film.mp4")  # relative, to another file of the same inbox


def _truncated(path: Path, scratch: Path, outside: Path) -> None:
    # Index (moov) first, then cut in half: the container promises samples that are not there.
    whole = scratch / "faststart.mp4"
    _ffmpeg("-i", clip("bigbuckbunny.mp4"), "-c", "copy", "-movflags", "+faststart", whole)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _unfinished(path: Path, scratch: Path, outside: Path) -> None:
    # What is on disk while a camera or ffmpeg is still writing an MP4: header and samples, no index yet.
    whole = _clip(scratch / "being-written.mp4", tone=523)
    data = whole.read_bytes()
    path.write_bytes(data[:_box_offset(data, b"moov")])


def _corrupt_moov(path: Path, scratch: Path, outside: Path) -> None:
    whole = _clip(scratch / "moov.mp4", tone=587)
    data = whole.read_bytes()
    path.write_bytes(_garbled(data, _box_offset(data, b"moov") + 100, 1000, seed=1))


def _bit_rot(path: Path, scratch: Path, outside: Path) -> None:
    # 2 KB of noise in the middle of the picture samples: decoders conceal it; the film is still worth indexing.
    whole = _clip(scratch / "rot.mp4", tone=659)
    data = whole.read_bytes()
    mdat = _box_offset(data, b"mdat")
    path.write_bytes(_garbled(data, mdat + (_box_offset(data, b"moov") - mdat) // 2, 2048, seed=2))


def _unknown_codec_mkv(path: Path, scratch: Path, outside: Path) -> None:
    # Matroska names codecs by string: renamed, the stream probes but no decoder exists for it.
    good = scratch / "mjpeg.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=2", "-c:v", "mjpeg", good)
    path.write_bytes(good.read_bytes().replace(b"V_MJPEG", b"V_QQQQQ"))


def _unknown_fourcc_mp4(path: Path, scratch: Path, outside: Path) -> None:
    # The MP4 sample entry `avc1` renamed to a four-character code no decoder knows (an exotic camera codec).
    good = _clip(scratch / "fourcc.mp4", audio=False)
    data = good.read_bytes()
    moov = _box_offset(data, b"moov")
    path.write_bytes(data[:moov] + data[moov:].replace(b"avc1", b"zzzz").replace(b"avcC", b"zzzC"))


def _undecodable_audio(path: Path, scratch: Path, outside: Path) -> None:
    good = scratch / "audio-codec.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=2", "-f", "lavfi", "-i", "sine=f=700:d=2",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "flac", good)
    path.write_bytes(good.read_bytes().replace(b"A_FLAC", b"A_QQQQ"))


def _subtitles_only(path: Path, scratch: Path, outside: Path) -> None:
    subs = scratch / "subs.srt"
    subs.write_text("1\n00:00:01,000 --> 00:00:03,000\nWhere were you last night?\n\n"
                    "2\n00:00:04,000 --> 00:00:06,000\nAt the harbour.\n")
    _ffmpeg("-i", subs, "-c:s", "srt", path)


def _audio_only(path: Path, scratch: Path, outside: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", "sine=f=330:d=3", "-c:a", "aac", path)


def _audio_with_cover(path: Path, scratch: Path, outside: Path) -> None:
    cover = scratch / "cover.png"
    _ffmpeg("-f", "lavfi", "-i", "color=red:s=300x300", "-frames:v", "1", cover)
    _ffmpeg("-f", "lavfi", "-i", "sine=f=350:d=3", "-i", cover, "-map", "0:a", "-map", "1:v", "-c:a", "aac",
            "-c:v", "png", "-disposition:v:0", "attached_pic", path)


def _video_only(path: Path, scratch: Path, outside: Path) -> None:
    _clip(path, audio=False, extra=("-metadata", "title=no sound"))


def _wrong_extension(path: Path, scratch: Path, outside: Path) -> None:
    _clip(path, tone=370, extra=("-f", "matroska"))  # a Matroska file named .mp4


def _variable_frame_rate(path: Path, scratch: Path, outside: Path) -> None:
    # Frames at 25 fps, then every other one dropped for a second: gaps of 40 ms and 80 ms, as phones record.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=3", "-vf", r"select=lt(t\,1)+gte(t\,2)+not(mod(n\,2))",
            "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path)


def _rotated(path: Path, scratch: Path, outside: Path) -> None:
    # A phone's portrait shot: the picture (white top half, black bottom) is stored turned on its side, with a
    # display matrix that turns it back upright.
    stored = scratch / "stored-sideways.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=white:s=180x320:r=25:d=2,drawbox=x=0:y=160:w=180:h=160:color=black:t=fill",
            "-vf", "transpose=1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", stored)
    _ffmpeg("-i", stored, "-c", "copy", "-metadata:s:v", "rotate=90", path)


def _eight_k(path: Path, scratch: Path, outside: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=7680x4320:r=25:d=0.08", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", path)


def _ten_hours_silent(path: Path, scratch: Path, outside: Path) -> None:
    # Ten hours for 10 KB: a tiny grey picture at one frame a minute, no sound track.
    _ffmpeg("-f", "lavfi", "-i", f"color=gray:s=64x36:r=1/60:d={TEN_HOURS_S}", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv420p", path)


def _thirteen_hours_silent(path: Path, scratch: Path, outside: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", f"color=gray:s=64x36:r=1/60:d={THIRTEEN_HOURS_S}", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv420p", path)


def _hls_playlist(path: Path, scratch: Path, outside: Path) -> None:
    # 100-odd bytes of text naming a real MPEG-TS outside the media roots: ffmpeg picks its demuxer by the bytes,
    # whatever the name, and its HLS demuxer would read the segment from wherever it lies.
    segment = _clip(outside / LIST_TARGETS[path.name], tone=1870, extra=("-f", "mpegts"))
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n")


def _concat_list(path: Path, scratch: Path, outside: Path) -> None:
    target = _clip(outside / LIST_TARGETS[path.name], tone=1930)
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\n")


# The HDR test picture: the test pattern's SDR colours converted to BT.2020 / PQ (SDR white at 100 nits), so a
# frame tone-mapped back to SDR can be compared with the pattern itself.
SDR_PATTERN = "testsrc2=s=320x180:r=25:d=1"


def _hdr_ten_bit(path: Path, scratch: Path, outside: Path) -> None:
    to_pq = "zscale=tin=bt709:t=smpte2084:pin=bt709:p=bt2020:min=bt709:m=bt2020nc:rin=tv:r=tv:npl=100"
    _ffmpeg("-f", "lavfi", "-i", f"{SDR_PATTERN},{to_pq},format=yuv420p10le", "-c:v", "libx265", "-preset",
            "ultrafast", "-x265-params", "log-level=error", "-color_primaries", "bt2020", "-color_trc", "smpte2084",
            "-colorspace", "bt2020nc", "-tag:v", "hvc1", path)


def _interlaced(path: Path, scratch: Path, outside: Path) -> None:
    # Stripes moving 8 pixels a field, woven into frames two fields at a time: undeinterlaced, every stripe edge
    # is a comb.
    stripes = "color=black:s=320x180:r=50:d=2,format=gray,geq=lum='255*mod(floor((X+T*400)/20)\\,2)'"
    _ffmpeg("-f", "lavfi", "-i", f"{stripes},format=yuv420p,interlace=scan=tff", "-c:v", "libx264", "-preset",
            "ultrafast", "-flags", "+ildct+ilme", "-x264-params", "tff=1", "-pix_fmt", "yuv420p", path)


def _odd_dimensions(path: Path, scratch: Path, outside: Path) -> None:
    # testsrc2 rounds its size to even numbers; the scale filter does not.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1,scale=321:241", "-c:v", "ffv1", "-pix_fmt", "yuv444p",
            path)


def _many_audio_tracks(path: Path, scratch: Path, outside: Path) -> None:
    tracks = 16
    inputs = ["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=2"]
    maps = ["-map", "0:v"]
    for track in range(tracks):
        inputs += ["-f", "lavfi", "-i", f"sine=f={200 + 50 * track}:d=2"]
        maps += ["-map", f"{track + 1}:a"]
    _ffmpeg(*inputs, *maps, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", path)


def _named(tone: int) -> Builder:
    def build(path: Path, scratch: Path, outside: Path) -> None:
        _clip(path, seconds=1, tone=tone)
    return build


# (name, what, builder, error, expected message fragment or handling note, handling)
_CASES: list[tuple[str, str, Builder, type[ingest.IngestError] | None, str, str]] = [
    ("good film.mp4", "a good film (real footage, H.264 + AAC)", _good_film, None, "",
     "indexed: frames and speech"),
    ("good silent clip.mp4", "a good clip without a sound track (real footage)", _good_silent_clip, None,
     "no audio stream", "indexed: frames only"),
    ("good film (copy).mp4", "the good film again under another name", _duplicate, None, "",
     "same video id as `good film.mp4`: the same video, its cached stages reused"),
    ("zero bytes.mp4", "an empty file", _zero_bytes, ingest.EmptyFile, "the file is empty", ""),
    ("shot list.mp4", "a text file named .mp4", _text_file, ingest.NotMediaFile, "not a media file", ""),
    ("poster.mp4", "a PNG picture named .mp4", _still_image, ingest.NotMediaFile, "a still image", ""),
    ("folder.mp4", "a folder named .mp4", _folder, ingest.NotMediaFile, "a folder", ""),
    ("named pipe.mp4", "a named pipe (FIFO): reading it would block", _named_pipe, ingest.NotMediaFile,
     "a named pipe", ""),
    ("link out of inbox.mp4", "a symlink to a film outside the media roots", _symlink_out, ingest.PathNotAllowed,
     "outside the allowed media roots", ""),
    ("dangling link.mp4", "a symlink whose target was deleted", _dangling_symlink, ingest.MissingFile,
     "which does not exist", ""),
    ("link to good film.mp4", "a symlink to a good film in the same inbox", _symlink_inside, None, "",
     "indexed as the film it points to (same video id)"),
    ("truncated.mp4", "a real film cut in half (index first, samples missing)", _truncated, ingest.CorruptMedia,
     "truncated or corrupt", ""),
    ("still being written.mp4", "an MP4 whose writer has not finished: no index (moov) yet", _unfinished,
     ingest.CorruptMedia, "unfinished", ""),
    ("corrupt moov.mp4", "1000 bytes of the MP4 index (moov box) overwritten", _corrupt_moov, ingest.CorruptMedia,
     "index is damaged", ""),
    ("bit rot.mp4", "2 KB of noise in the middle of the picture samples", _bit_rot, None, "",
     "indexed: decoders conceal the damaged frames"),
    ("unknown codec.mkv", "Matroska with a codec id no decoder knows", _unknown_codec_mkv, ingest.NoDecodableStream,
     "no decoder", ""),
    ("exotic fourcc.mp4", "MP4 whose video sample entry is an unknown four-character code", _unknown_fourcc_mp4,
     ingest.NoDecodableStream, "no decoder", ""),
    ("undecodable audio.mkv", "good picture, a sound track in a codec no decoder knows", _undecodable_audio, None,
     "cannot be decoded", "indexed: frames only; the sound track is skipped"),
    ("subtitles only.mkv", "Matroska holding only a subtitle track", _subtitles_only, ingest.NotMediaFile,
     "only subtitle", ""),
    ("audio only.m4a", "sound only (AAC)", _audio_only, None, "audio only",
     "indexed as speech only (no frames, no vision)"),
    ("audio with cover art.m4a", "sound with a cover picture (attached picture, not video)", _audio_with_cover,
     None, "audio only", "indexed as speech only: the cover is not treated as video"),
    ("video only.mp4", "picture without a sound track", _video_only, None, "no audio stream",
     "indexed: frames only, no transcript"),
    ("matroska named.mp4", "a Matroska file with an .mp4 name", _wrong_extension, None, "",
     "indexed: the container is recognised by its content, not its name"),
    ("variable frame rate.mp4", "frames 40 ms and 80 ms apart (as phones record)", _variable_frame_rate, None,
     "variable frame rate", "indexed: frame times are each frame's own timestamp"),
    ("rotated portrait.mp4", "a portrait shot stored sideways with a 90° display matrix", _rotated, None,
     "rotated 90", "indexed: frames sampled upright (portrait)"),
    ("8k.mp4", "two 7680x4320 frames", _eight_k, None, "", "indexed: frames downscaled to the frame width"),
    ("ten hours silent.mp4", "a ten-hour film: tiny grey picture, one frame a minute, no sound", _ten_hours_silent,
     None, "no audio stream", "indexed: probed in well under a second; frames bounded by the floor rate, no ASR"),
    ("hdr 10-bit.mp4", "HEVC Main 10, BT.2020 / PQ (HDR10)", _hdr_ten_bit, None, "HDR",
     "indexed: frames tone-mapped to 8-bit SDR"),
    ("interlaced.mp4", "interlaced H.264, top field first, moving stripes", _interlaced, None, "interlaced",
     "indexed: frames deinterlaced before sampling"),
    ("odd dimensions.mkv", "321x241 FFV1 (odd width and height)", _odd_dimensions, None, "",
     "indexed: frames scaled to even dimensions"),
    ("sixteen audio tracks.mkv", "video with 16 audio tracks", _many_audio_tracks, None, "16 audio tracks",
     "indexed: the first audio track is transcribed"),
    ("with space.mp4", "a name with spaces", _named(800), None, "", "indexed"),
    ("quote's \"double\".mp4", "a name with single and double quotes", _named(810), None, "", "indexed"),
    ("$(touch pwned).mp4", "a name with shell command substitution", _named(820), None, "",
     "indexed; no shell ever sees the name"),
    ("电影 été.mp4", "a non-ASCII name (CJK, accents)", _named(830), None, "", "indexed"),
    ("-y.mp4", "a name that looks like a command-line option", _named(840), None, "", "indexed"),
    ("concat:100%d.mp4", "a name that looks like an ffmpeg protocol and pattern", _named(850), None, "",
     "indexed; read as a plain file"),
    ("line\nbreak.mp4", "a name with a newline in it", _named(860), None, "", "indexed"),
    ("holiday.mp4", "an HLS playlist named .mp4, its segment a real MPEG-TS outside the media roots", _hls_playlist,
     ingest.PlaylistNotAllowed, "an HLS playlist", ""),
    ("reel list.mp4", "an ffmpeg concat list named .mp4, naming a real film outside the media roots", _concat_list,
     ingest.PlaylistNotAllowed, "an ffmpeg concat list", ""),
    ("thirteen hours silent.mp4", "a 13-hour film (tiny grey picture, one frame a minute): over the 12-hour limit",
     _thirteen_hours_silent, ingest.TooLong, "CINEDEX_MAX_DURATION_S", ""),
]


def make_bad_inbox(inbox: Path, outside: Path) -> list[BadInput]:
    """Writes one day's inbox of bad and odd files into `inbox` (links out of it point into `outside`)."""
    inbox.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    scratch = outside / ".scratch"
    scratch.mkdir(exist_ok=True)
    made = []
    for name, what, build, error, expect, handling in _CASES:
        build(inbox / name, scratch, outside)
        made.append(BadInput(name=name, what=what, error=error, expect=expect, handling=handling, inbox=inbox))
    shutil.rmtree(scratch)
    return made

INBOX_NAMES = [case[0] for case in _CASES]


@dataclass
class Outcome:
    """What the pipeline's first stages made of one file of the day."""

    name: str
    error: str = ""  # the exception's class name, when a stage refused the file
    stage: str = ""  # the stage that refused it
    message: str = ""  # the error's message; for an indexed file, ingest's handling notes
    video: IngestedVideo | None = None
    sampling: FrameSampling | None = None
    audio: Path | None = None
    ingest_s: float = 0.0


def day_settings(root: Path) -> Settings:
    """Settings that allow the inbox only, so links out of it are refused."""
    return Settings(home=root / "home", media_roots=str(root / "inbox"))


def run_day(inputs: list[BadInput], settings: Settings) -> dict[str, Outcome]:
    """Ingest, frame sampling and audio extraction for each file of the day, as the index DAG runs them; one file
    failing never stops the others."""
    outcomes = {}
    for case in inputs:
        outcome = outcomes[case.name] = Outcome(case.name)
        stage = "ingest"
        try:
            started = time.monotonic()
            try:
                outcome.video = ingest.ingest(case.path, settings)
            finally:
                outcome.ingest_s = time.monotonic() - started
            outcome.message = "; ".join(outcome.video.info.notes)
            stage = "frames"
            outcome.sampling = frames.load_sampling(frames.sample_frames(outcome.video, settings))
            stage = "audio"
            outcome.audio = audio.extract_audio(outcome.video, settings)
        except Exception as exc:  # noqa: BLE001 - recorded, and the day goes on with the next file
            outcome.error, outcome.stage, outcome.message = type(exc).__name__, stage, str(exc)
    return outcomes


def _cell(text: str) -> str:
    return text.replace("\n", "\\n").replace("|", "\\|") or "—"


def outcomes_table(inputs: list[BadInput], outcomes: dict[str, Outcome], root: Path) -> str:
    """The outcomes as a Markdown table, with the day's temporary folders written as <inbox>, <outside>, <home>."""
    def portable(text: str) -> str:
        for folder, label in ((root / "inbox", "<inbox>"), (root / "outside", "<outside>"), (root / "home", "<home>")):
            text = text.replace(str(folder.resolve()), label).replace(str(folder), label)
        return text

    rows = []
    for number, case in enumerate(inputs, 1):
        outcome = outcomes[case.name]
        if outcome.error:
            result = f"refused at {outcome.stage}: `{outcome.error}`"
        else:
            info, sampling = outcome.video.info, outcome.sampling
            picture = (f"frames {sampling.width}x{sampling.height}" if info.has_video else "no frames")
            sound = "audio 16 kHz WAV" if outcome.audio else "no audio"
            result = f"{case.handling} ({picture}, {sound})"
        rows.append(f"| {number} | `{_cell(case.name)}` | {_cell(case.what)} | {_cell(result)} | "
                    f"{_cell(portable(outcome.message))} |")
    return "\n".join([
        "# Bad and odd input: what cinedex does with each file",
        "",
        "One day's inbox of bad and odd files, built with ffmpeg by `tests/bad_media.py` and run through ingest,",
        "frame sampling and audio extraction. Refused files fail their run at ingest, without retries, with the",
        "message below; the other files of the day index as usual. Generated by `python tests/bad_media.py",
        "--write-table`; `tests/test_bad_inputs.py` fails when this table and the real outcomes disagree.",
        "",
        "A ten-hour film costs what its length asks and no more: ingest probes it in well under a second, the sampler",
        "keeps at least one frame per shot and at most the floor rate in static pictures (`CINEDEX_SAMPLE_FLOOR_FPS`,",
        "one frame every 2 s by default: at most 18,000 frames for ten static hours), and speech recognition runs",
        "only where voice activity detection finds speech; a silent film has no transcript to make. A film longer",
        "than `CINEDEX_MAX_DURATION_S` (12 hours by default) is refused before anything of it is decoded.",
        "",
        "ffmpeg opens a file only with the demuxers of the containers cinedex reads (`CONTAINERS` in",
        "`pipeline/ingest.py`, passed as `-format_whitelist` to every ffprobe and ffmpeg call, with the file",
        "protocol only): a playlist or concat list is refused for what it is, whatever its name, before ffmpeg reads",
        "anything it names, and its message never says what that is.",
        "",
        "| # | input | what it is | outcome | message shown to the user |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-table", action="store_true", help=f"rewrite {TABLE.relative_to(TABLE.parents[1])}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        inputs = make_bad_inbox(root / "inbox", root / "outside")
        table = outcomes_table(inputs, run_day(inputs, day_settings(root)), root)
    if args.write_table:
        TABLE.write_text(table)
        print(f"wrote {TABLE}")
    else:
        print(table)


if __name__ == "__main__":
    main()
