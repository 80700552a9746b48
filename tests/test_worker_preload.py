"""The Celery workers' preload: heavy imports once in the worker, before it forks, and task processes forked after
it that still work (models load and run in the child: no thread pool was started before the fork)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _python(code: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout_s)


def test_the_celery_config_is_light_for_the_scheduler():
    # The scheduler imports the config to publish tasks: it must not pay for the workers' preload.
    done = _python("""
        import sys
        from cinedex.orchestration.celery_config import CELERY_CONFIG
        assert CELERY_CONFIG["task_default_queue"], CELERY_CONFIG
        heavy = {"torch", "whisperx", "great_expectations", "cinedex.orchestration.worker_preload"} & set(sys.modules)
        assert not heavy, heavy
    """)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_a_task_process_forked_after_the_preload_inherits_it_and_runs_models():
    done = _python("""
        import os, sys, time
        from cinedex.orchestration.worker_preload import PRELOAD_MODULES, preload

        seconds = preload()
        assert set(seconds) == {*PRELOAD_MODULES, "airflow plugins"}, set(PRELOAD_MODULES) - set(seconds)
        pid = os.fork()
        if pid == 0:  # the task process: what it needs is there, and models made here run
            began = time.perf_counter()
            import torch, whisperx, great_expectations
            assert time.perf_counter() - began < 0.1
            assert float(torch.ones(64, 64).matmul(torch.ones(64, 64)).sum()) == 64 ** 3
            from cinedex.index.embedder import encode
            [vector] = encode(["a dream inside a dream"], "all-MiniLM-L6-v2")
            assert len(vector) == 384
            from cinedex.pipeline.voice_encoder import load_voice_encoder
            load_voice_encoder()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """, timeout_s=300)
    assert done.returncode == 0, done.stderr[-3000:]
