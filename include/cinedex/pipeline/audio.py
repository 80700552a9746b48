"""Audio: the video's first sound track as the 16 kHz mono 16-bit WAV that speech models read."""

from __future__ import annotations

import logging
from pathlib import Path

import ffmpeg

from cinedex.core.artifacts import cached_stage
from cinedex.pipeline.ingest import MEDIA_INPUT, IngestedVideo
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
AUDIO_FILE = "audio.wav"


class AudioExtractionError(Exception):
    """ffmpeg could not turn the video's sound into WAV; the message carries ffmpeg's own reason."""


def extract_audio(video: IngestedVideo, settings: Settings) -> Path | None:
    """The cached `audio.wav` of `video`, or None when it has no decodable sound."""
    if not video.info.has_audio:
        log.info("audio: %s has no audio stream; nothing to transcribe", video.name)
        return None

    def write(folder: Path) -> None:
        # An argument list, never a shell: any file name is passed through verbatim. Only the containers ingest
        # accepts are read, and never more sound than the probed length (a container may understate it).
        stream = ffmpeg.input(video.path, **MEDIA_INPUT)["a:0"].output(
            str(folder / AUDIO_FILE), ac=1, ar=SAMPLE_RATE, acodec="pcm_s16le", format="wav",
            t=f"{video.info.duration_s + 1:.3f}")
        try:
            stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error").overwrite_output().run(
                capture_stdout=True, capture_stderr=True)
        except ffmpeg.Error as exc:
            lines = exc.stderr.decode(errors="replace").strip().splitlines()
            reason = lines[-1].replace(video.path, video.name) if lines else "no message from ffmpeg"
            raise AudioExtractionError(f"{video.name}: ffmpeg could not extract the audio ({reason})") from None
        log.info("audio: %s -> %.1f s of 16 kHz mono WAV", video.name, video.info.duration_s)

    folder = cached_stage("audio", video.video_id, settings.artifacts_dir, write, sample_rate=SAMPLE_RATE, channels=1)
    return folder / AUDIO_FILE
