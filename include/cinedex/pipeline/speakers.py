"""Who speaks when: the speaker-turns stage, run beside speech recognition on the same audio (neither needs the
other), and the transcript's utterances labelled with its turns where they are read.

Two engines: pyannote's diarization pipeline (`diarization_model`, gated on the hub: it needs CINEDEX_HF_TOKEN,
or a local pipeline folder) and the bundled local engine (`diarization.py`: segmentation-3.0 ONNX and
Resemblyzer voices, nothing to download, opt-in until it meets its accuracy goals). `auto` takes pyannote where
it can load, else no labels.
Labels are SPEAKER_00, SPEAKER_01, ... within a film; each speaker's centroid voice is kept so that later steps
can match or name it. A label becomes a character's name, or "Speaker N", in the events stage
(`characters.name_voices`).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from pydantic import BaseModel, Field

from cinedex.core.artifacts import cached_stage
from cinedex.core.settings import Settings
from cinedex.pipeline.asr import Transcript, load_transcript, resolved_device
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.pipeline.utterances import assign_speakers

log = logging.getLogger(__name__)

TURNS_FILE = "turns.json"
# Each speaker's centroid voice (256-d, L2-normed, Resemblyzer's space for the local engine), to match voices
# across films or name them.
VOICES_FILE = "voices.json"


class SpeakerTurns(BaseModel):
    turns: list[tuple[float, float, str]] = Field(default_factory=list, description="(start_s, end_s, label).")
    note: str = Field("", description="Where the labels come from, or why there are none.")

    @property
    def speakers(self) -> list[str]:
        return sorted({label for _, _, label in self.turns})


def pyannote_available(settings: Settings) -> bool:
    """The pyannote diarization model is gated: it needs a token, unless it is a local folder."""
    model = settings.diarization_model
    return bool(model) and (bool(settings.hf_token) or Path(model).is_dir())


def diarization_engine(settings: Settings) -> str:
    """Who labels the speakers in this run: "pyannote", "local" (the bundled engine) or "" for nobody."""
    if settings.diarization == "off":
        return ""
    if settings.diarization == "local":
        return "local"
    if pyannote_available(settings):
        return "pyannote"
    # `auto` without pyannote stays unlabelled until the local engine meets its accuracy goals (issue 15: on the
    # sample film, the call plus clips with music, it still counts a third voice).
    return ""


@functools.cache
def load_diarization_model(name: str, token: str, device: str):
    from whisperx.diarize import DiarizationPipeline

    return DiarizationPipeline(model_name=name, token=token or None, device=device)


def _unit(voice) -> list[float]:
    # pyannote's centroids are cluster means (norms 0.96-0.98 on the sample call); the voices file holds unit
    # vectors whichever engine wrote it. An all-zero "centroid" is pyannote's label for a cluster it did not find.
    norm = sum(float(x) ** 2 for x in voice) ** 0.5
    return [float(x) / norm for x in voice]


def speaker_turns(audio_path: Path, settings: Settings) -> tuple[SpeakerTurns, dict[str, list[float]]]:
    """The speaker turns of a 16 kHz mono audio file and each speaker's voice (centroid embedding)."""
    engine = diarization_engine(settings)
    most = settings.max_speakers or None
    if engine == "local":
        from cinedex.pipeline.diarization import diarize

        found = diarize(audio_path, max_speakers=most, home=settings.home)
        return (SpeakerTurns(turns=[(t.start_s, t.end_s, t.speaker) for t in found.turns],
                             note=f"speakers from the local diarization ({len(found.speakers)} voices)"),
                {name: [round(float(x), 5) for x in voice] for name, voice in found.centroids.items()})
    if engine == "pyannote":
        frame, voices = load_diarization_model(settings.diarization_model, settings.hf_token, resolved_device(settings))(
            str(audio_path), max_speakers=most, return_embeddings=True)
        turns = [(round(float(a), 3), round(float(b), 3), str(s))
                 for a, b, s in zip(frame["start"], frame["end"], frame["speaker"])]
        return (SpeakerTurns(turns=turns, note=f"speakers from {settings.diarization_model}"),
                {name: _unit(voice) for name, voice in (voices or {}).items() if any(voice)})
    if settings.diarization == "off":
        return SpeakerTurns(note="no speaker labels: diarization is off"), {}
    return SpeakerTurns(note=f"no speaker labels: diarization with {settings.diarization_model or 'no model'} "
                             "needs CINEDEX_HF_TOKEN or a local pipeline folder (or set diarization to `local` or "
                             "`auto` for the bundled engine)"), {}


def _stage_key(settings: Settings) -> str:
    engine = diarization_engine(settings)
    model = {"local": "local", "pyannote": settings.diarization_model}.get(engine, settings.diarization)
    return f"{model}:{settings.max_speakers}"


def diarize_video(video: IngestedVideo, audio_path: Path | None, settings: Settings) -> Path:
    """The cached speakers stage: `turns.json` (the turns and where they come from) and `voices.json`."""
    def write(folder: Path) -> None:
        if audio_path is None:
            turns, voices = SpeakerTurns(note="no audio"), {}
        else:
            turns, voices = speaker_turns(Path(audio_path), settings)
        (folder / TURNS_FILE).write_text(turns.model_dump_json(indent=1), encoding="utf-8")
        (folder / VOICES_FILE).write_text(json.dumps(voices), encoding="utf-8")
        log.info("speakers: %s -> %d turns of %d speakers (%s)", video.name, len(turns.turns),
                 len(turns.speakers), turns.note)

    return cached_stage("speakers", video.video_id, settings.artifacts_dir, write, upstream=[audio_path],
                        engine=_stage_key(settings))


def load_turns(folder: Path) -> SpeakerTurns:
    return SpeakerTurns.model_validate_json((Path(folder) / TURNS_FILE).read_text(encoding="utf-8"))


def labelled_transcript(transcript_dir: Path, speakers_dir: Path | None) -> Transcript:
    """The transcript with each utterance given the speaker who talks most of it (split where the speaker
    changes inside it), and the note on where the labels come from."""
    transcript = load_transcript(transcript_dir)
    if speakers_dir is None:
        return transcript
    turns = load_turns(speakers_dir)
    utterances = assign_speakers(transcript.utterances, turns.turns) if turns.turns else transcript.utterances
    return transcript.model_copy(update={"utterances": utterances, "speaker_note": turns.note})
