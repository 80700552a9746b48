"""`cinedex`: index videos through the Airflow DAG run in-process, search the index, build the sample film, start
Airflow here for the cinedex page, set up an Airflow deployment."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from cinedex.core.mediatime import MediaTime
from cinedex.core.model import SearchFilters
from cinedex.core.settings import Settings
from cinedex.orchestration.dagspec import INDEX_DAG_ID

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def airflow_environment(settings: Settings) -> None:
    """Points Airflow at this project's DAGs and a private database, unless the environment already says where."""
    home = settings.home.resolve() / "airflow"
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    marker = Path(os.environ["AIRFLOW_HOME"]) / ".migrated"
    # Two `cinedex index` started at once on a fresh home would migrate one database together: the second waits.
    with open(marker.with_name(".migrate.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            print("Preparing the Airflow database (first run only) ...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                           stdout=subprocess.DEVNULL, env=os.environ.copy())
            marker.touch()
        from cinedex.orchestration.airflow_setup import ensure_pools

        ensure_pools(settings)  # dag.test() ignores pools, but the database should match a deployment's


def run_index_dag(video: Path, conf: dict) -> str:
    """Runs `cinedex_index_video` on one video with `dag.test()`; returns the run's final state."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(INDEX_DAG_ID)
    run = dag.test(run_conf={"video": str(video), **conf})
    return str(run.state)


def cmd_index(args: argparse.Namespace, results: TextIO) -> int:
    settings = Settings()
    airflow_environment(settings)
    conf = {k: v for k, v in {"language": args.language, "asr_model": args.asr_model,
                              "vision_model": args.vision_model}.items() if v}
    failed = []
    for number, path in enumerate(args.paths, 1):
        print(f"[{number}/{len(args.paths)}] indexing {path}", file=sys.stderr)
        state = run_index_dag(Path(path), conf)
        print(f"[{number}/{len(args.paths)}] {path}: {state}", file=sys.stderr)
        if state != "success":
            failed.append(path)
    if failed:
        print(f"{len(failed)} of {len(args.paths)} failed: {', '.join(failed)} (the log above says why)", file=sys.stderr)
    return 1 if failed else 0


def cmd_airflow_setup(args: argparse.Namespace, results: TextIO) -> int:
    from cinedex.orchestration.airflow_setup import set_up_airflow

    # The password comes from the environment, never the command line, which other users can read.
    given = {"elasticsearch_url": args.elasticsearch_url} if args.elasticsearch_url else {}
    for line in set_up_airflow(Settings(), admin_password=os.environ.get("CINEDEX_ADMIN_PASSWORD", ""), **given):
        print(line, file=results)
    return 0


def cmd_search(args: argparse.Namespace, results: TextIO) -> int:
    from cinedex.index import open_index
    from cinedex.index.search import search

    settings = Settings()
    filters = SearchFilters(video_id=args.video, start_s=args.start, end_s=args.end, scene_type=args.scene_type,
                            speaker=args.speaker, character=args.character, person=args.person)
    backend = args.backend or settings.index_backend
    # Before searching: opening the embedded index creates it.
    missing = backend == "embedded" and not settings.index_dir.is_dir()
    hits = search(args.query, settings, filters, limit=args.limit, backend=backend, mode=args.mode)
    if not hits and (missing or open_index(settings, backend).count() == 0):
        where = settings.index_dir if backend == "embedded" else f"Elasticsearch alias {settings.elasticsearch_alias}"
        print(f"cinedex: the {backend} index ({where}) is {'missing' if missing else 'empty'}: nothing has been "
              "indexed there yet; index a video first (cinedex index FILE, or a run of the index DAG)",
              file=sys.stderr)
    if args.json:
        print(json.dumps([hit.model_dump() for hit in hits], indent=2, ensure_ascii=False), file=results)
        return 0
    if not hits:
        print(f"no hits for {args.query!r}", file=results)
    for rank, hit in enumerate(hits, 1):
        who = hit.speaker or hit.scene_type
        span = f"{MediaTime(hit.start_s).timecode()}-{MediaTime(hit.end_s).timecode()}"
        print(f"{rank:2d}. {span}  [{who}]  {hit.content}"
              f"   (video {hit.video_id[:12]}, {'+'.join(hit.matched_by)} {hit.score:.3f})", file=results)
    return 0


def cmd_sample_film(args: argparse.Namespace, results: TextIO) -> int:
    from cinedex.sample import build_sample_film

    film = build_sample_film(Path(args.out) if args.out else Settings().home / "sample")
    print(film.path, file=results)
    return 0


def cmd_ui(args: argparse.Namespace, results: TextIO) -> int:
    from cinedex.orchestration.local_airflow import serve

    airflow_environment(Settings())  # the database `cinedex index` uses, migrated, with the gpu pool
    return serve(Path(os.environ["AIRFLOW_HOME"]), args.port, not args.no_browser, results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cinedex", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="index video files (runs the cinedex_index_video DAG in-process)")
    index.add_argument("paths", nargs="+", help="video files")
    index.add_argument("--language", default="", help="spoken language code; default: detect")
    index.add_argument("--asr-model", default="", help="speech model name or directory")
    index.add_argument("--vision-model", default="", help="Qwen3-VL model id or directory; `none` = speech and shots only")
    index.set_defaults(run=cmd_index)

    find = commands.add_parser("search", help="search the index; hits are time ranges")
    find.add_argument("query")
    find.add_argument("--video", help="only this video id")
    find.add_argument("--from", dest="start", type=float, help="only events ending after this second")
    find.add_argument("--to", dest="end", type=float, help="only events starting before this second")
    find.add_argument("--scene-type", help="only this scene type (dialogue, action, ...)")
    find.add_argument("--speaker", help="only lines of this speaker")
    find.add_argument("--character", help="only events with this character")
    find.add_argument("--person", help="only events where this person is on screen (a name, or Person N)")
    find.add_argument("--backend", choices=["embedded", "elasticsearch"],
                      help="where to search (default: CINEDEX_INDEX_BACKEND, else embedded)")
    find.add_argument("--mode", choices=["hybrid", "bm25", "knn"], default="hybrid",
                      help="words and meaning fused (default), words only, or meaning only")
    find.add_argument("--limit", type=int, default=10)
    find.add_argument("--json", action="store_true", help="print hits as JSON")
    find.set_defaults(run=cmd_search)

    about = ("create the gpu pool (CINEDEX_GPU_SLOTS), the Elasticsearch connection unless one is given, and the "
             "admin password (CINEDEX_ADMIN_PASSWORD) in the configured Airflow database; safe to rerun")
    setup = commands.add_parser("airflow-setup", help=about, description=about)
    setup.add_argument("--elasticsearch-url", help="URI of the connection elasticsearch_default when nothing "
                       "gives it yet (default: elasticsearch://localhost:9200)")
    setup.set_defaults(run=cmd_airflow_setup)

    sample = commands.add_parser("sample-film", help="build the sample film from real media in installed packages")
    sample.add_argument("--out", help="folder (default: $CINEDEX_HOME/sample)")
    sample.set_defaults(run=cmd_sample_film)

    ui = commands.add_parser("ui", help="start Airflow here (LocalExecutor, the database under CINEDEX_HOME) and "
                             "open the cinedex page; Ctrl-C stops it")
    ui.add_argument("--port", type=int, default=8080, help="the API server's port on 127.0.0.1 (default 8080)")
    ui.add_argument("--no-browser", action="store_true", help="print the page's address without opening it")
    ui.set_defaults(run=cmd_ui)

    args = parser.parse_args(argv)
    # A command's results, and only they, go to standard output, so a script can read them (`search --json`).
    # Everything else that is printed or logged, by cinedex or by a library (Airflow, the Elasticsearch client,
    # the models), goes to standard error; libraries that configure their logging on import then pick that up.
    results, sys.stdout = sys.stdout, sys.stderr
    try:
        # Indexing reports its progress; a search prints its hits and nothing else unless something is wrong.
        level = logging.INFO if args.command == "index" else logging.WARNING
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        return args.run(args, results)
    finally:
        results.flush()
        sys.stdout = results


if __name__ == "__main__":
    sys.exit(main())
