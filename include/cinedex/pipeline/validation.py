"""Validation: a Great Expectations suite derived from `Event`, run over a film's events before they are indexed.

Events that fail go to a quarantine file with their reasons instead of being dropped, and the rest are indexed. The
run fails only for what is systemic, after everything (valid, quarantine, report, Data Docs) is written: more than
`max_invalid_fraction` of the events failing, and either most of them breaking the schema (a field missing, a value
not allowed: a model or code writing wrong events) or the failures spread over more than half of the film. A noisy
stretch (a reel of another language, a burst of bad times) is quarantined and reported; it never fails the film.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from cinedex.core.artifacts import cached_stage
from cinedex.pipeline.events import EVENTS_FILE, SPEECH_DROPPED_FILE
from cinedex.core.model import read_events
from cinedex.pipeline.ingest import IngestedVideo
from cinedex.core.model import EVENT_FIELDS, Event, EventFields
from cinedex.core.settings import Settings

log = logging.getLogger(__name__)

SUITE_NAME = "cinedex_events"
# Failing events closer than this in time make one stretch of the film.
STRETCH_GAP_S = 30.0
# Failures spread over more than this share of the film are systemic, whatever their reason.
SYSTEMIC_SPREAD = 0.5
VALID_FILE = "valid.jsonl"
_SITE_NAME = "cinedex_local_site"
_TOP_REASONS = 5


class ValidationReport(BaseModel):
    total: int
    valid: int
    quarantined: int
    fraction_invalid: float
    fraction_schema_invalid: float = 0.0  # events breaking the event model (a field missing, a value not allowed)
    failed_spread: float = 0.0  # share of the film covered by the stretches holding failed events
    systemic: bool = False  # whether the failures fail the run
    data_docs: Path
    valid_path: Path
    quarantine_path: Path


class ValidationFailed(Exception):
    """Too many events failed; the files were written, and `report` points at them."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class _Check:
    expectation: Any  # a great_expectations Expectation
    reason: Callable[[Event], str]
    schema: bool = False  # a violation of the event model itself, not of one event's data


def _field_kind(name: str, fields: EventFields) -> str:
    return "float64" if name in fields.ranges else "str"


def _required_text(fields: EventFields) -> list[str]:
    model = fields.model
    return [name for name in model.required_fields() if model.model_fields[name].annotation is str]


def suite_checks(duration_s: float, tolerance_s: float = 0.5, fields: EventFields = EVENT_FIELDS) -> list[_Check]:
    """The suite, read off the event model: required, non-blank, media times within the film, among the allowed
    values, ordered, unique."""
    # Imported here, as is all of GX: it takes seconds to import, and DAG parsing imports this module.
    import great_expectations.expectations as gxe

    model_fields = fields.model.model_fields
    required = fields.model.required_fields()
    upper = duration_s + tolerance_s
    checks = [
        _Check(gxe.ExpectColumnValuesToNotBeNull(column=name), lambda e, n=name: f"{n} missing", schema=True)
        for name in required
    ]
    # Required text must say something: the frame holds these columns stripped, so whitespace counts as empty.
    checks += [
        _Check(
            gxe.ExpectColumnValueLengthsToBeBetween(
                column=name, min_value=1, description=f"{name} is not empty or whitespace only"
            ),
            lambda e, n=name: f"empty {n}",
        )
        for name in _required_text(fields)
    ]
    # Range fields are media times in seconds.
    checks += [
        _Check(
            gxe.ExpectColumnValuesToBeBetween(column=name, min_value=0, max_value=upper),
            lambda e, n=name: f"{n} outside [0, {round(upper, 3)}]",
        )
        for name in fields.ranges
    ]
    checks += [
        _Check(
            gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(get_args(field.annotation))),
            lambda e, n=name: f"{n} {getattr(e, n, None)!r} not allowed",
            schema=True,
        )
        for name, field in model_fields.items()
        if get_origin(field.annotation) is Literal
    ]
    checks += [
        # A missing time is already reported as missing; comparing against it would only add noise.
        _Check(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="end_s", column_B="start_s", ignore_row_if="either_value_is_missing"
            ),
            lambda e: "end_s <= start_s",
        ),
        # GX flags every row sharing an id: which copy is right cannot be told, so none goes in unchecked.
        _Check(gxe.ExpectColumnValuesToBeUnique(column="id"), lambda e: "duplicate id"),
    ]
    return checks


def _columns(checks: list[_Check]) -> list[str]:
    names = dict.fromkeys(
        getattr(c.expectation, key) for c in checks for key in ("column", "column_A", "column_B")
        if hasattr(c.expectation, key)
    )
    return list(names)


def _frame(events: list[Event], columns: list[str], fields: EventFields) -> Any:
    import pandas as pd

    frame = pd.DataFrame(
        {name: pd.Series([getattr(e, name, None) for e in events], dtype=_field_kind(name, fields)) for name in columns}
    )
    for name in _required_text(fields):
        frame[name] = frame[name].str.strip()
    return frame


def _quiet_gx() -> None:
    # GX logs hundreds of INFO lines on import alone; leave the level alone if someone set it on purpose.
    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:
        gx_log.setLevel(logging.WARNING)


def _gx_error(outcome: Any) -> str | None:
    """Why an expectation could not be evaluated, or None if it was.

    GX reports a crashed expectation as merely unsuccessful, with no rows; taken at face value, every event would pass.
    """
    if outcome.success or "unexpected_index_list" in outcome.result:
        return None
    info = outcome.exception_info or {}
    # Either one exception, or one per metric that could not be computed, keyed by the metric.
    found = [info] if "exception_message" in info else [v for v in info.values() if isinstance(v, dict)]
    return "; ".join(dict.fromkeys(str(i.get("exception_message")) for i in found)) or "no result"


def _run_suite(frame: Any, checks: list[_Check], docs_dir: Path) -> tuple[list[tuple[_Check, Any]], Any]:
    """Runs the suite over the frame in a throwaway context and builds this run's Data Docs into `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # The site index lists the pages found on disk, so pages of an earlier run would show up as this run's.
    shutil.rmtree(docs_dir, ignore_errors=True)
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            progress_bars=ProgressBarsConfig(globally=False),
            data_docs_sites={
                _SITE_NAME: {
                    "class_name": "SiteBuilder",
                    "show_how_to_buttons": False,
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                }
            },
        ),
    )
    batch = (
        context.data_sources.add_pandas("cinedex")
        .add_dataframe_asset("events")
        .add_batch_definition_whole_dataframe("all events")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=[c.expectation for c in checks]))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=SUITE_NAME, data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="COMPLETE")

    errors = [f"{r.expectation_config.type}: {message}" for r in result.results if (message := _gx_error(r))]
    if errors:
        raise RuntimeError("Great Expectations could not evaluate the suite: " + "; ".join(errors))
    context.build_data_docs(site_names=[_SITE_NAME])
    # Results come back grouped by column, not in suite order, and the suite holds copies of the expectations:
    # only the copies carry the ids the results refer to.
    by_id = {r.expectation_config.id: r for r in result.results}
    return [(check, by_id[stored.id]) for stored, check in zip(suite.expectations, checks, strict=True)], result


def _write_jsonl(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def validate_events(
    events: list[Event],
    duration_s: float,
    out_dir: Path,
    max_invalid_fraction: float,
    tolerance_s: float = 0.5,
    fields: EventFields = EVENT_FIELDS,
) -> ValidationReport:
    """Splits `events` into valid and quarantined ones, writes both with a report and Data Docs into `out_dir`.

    Raises ValidationFailed, after writing, when the quarantined fraction is above `max_invalid_fraction`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = out_dir / "data_docs"

    _quiet_gx()
    checks = suite_checks(duration_s, tolerance_s, fields)
    outcomes, suite_result = _run_suite(_frame(events, _columns(checks), fields), checks, docs_dir)

    reasons: dict[int, list[str]] = defaultdict(list)
    schema_broken: set[int] = set()
    expectation_rows = []
    for check, outcome in outcomes:
        failing = outcome.result.get("unexpected_index_list") or []
        for row in failing:
            reasons[int(row)].append(check.reason(events[int(row)]))
            if check.schema:
                schema_broken.add(int(row))
        expectation_rows.append(
            {
                "expectation": outcome.expectation_config.type,
                "kwargs": {k: v for k, v in outcome.expectation_config.kwargs.items() if k != "batch_id"},
                "success": bool(outcome.success),
                "unexpected_count": len(failing),
            }
        )

    valid_path = out_dir / VALID_FILE
    quarantine_path = out_dir / "quarantine.jsonl"
    _write_jsonl(valid_path, [e.model_dump_json() for i, e in enumerate(events) if i not in reasons])
    _write_jsonl(
        quarantine_path,
        # Through model_dump_json: it writes NaN and infinities as null, which json.dumps would not.
        [
            json.dumps({"event": json.loads(events[i].model_dump_json()), "reasons": reasons[i]})
            for i in sorted(reasons)
        ],
    )

    total = len(events)
    fraction = len(reasons) / total if total else 0.0
    schema_fraction = len(schema_broken) / total if total else 0.0
    spread = failed_spread([events[i] for i in reasons], duration_s)
    report = ValidationReport(
        total=total,
        valid=total - len(reasons),
        quarantined=len(reasons),
        fraction_invalid=fraction,
        fraction_schema_invalid=schema_fraction,
        failed_spread=spread,
        systemic=fraction > max_invalid_fraction and (schema_fraction > max_invalid_fraction
                                                      or spread > SYSTEMIC_SPREAD),
        data_docs=docs_dir / "index.html",
        valid_path=valid_path,
        quarantine_path=quarantine_path,
    )
    reason_counts = Counter(r for rs in reasons.values() for r in rs)
    (out_dir / "report.json").write_text(
        json.dumps(
            {
                **report.model_dump(mode="json"),
                # Relative to the folder: the stage writes it aside and renames it into place.
                **{name: str(getattr(report, name).relative_to(out_dir))
                   for name in ("data_docs", "valid_path", "quarantine_path")},
                "suite": SUITE_NAME,
                "duration_s": duration_s,
                "tolerance_s": tolerance_s,
                "max_invalid_fraction": max_invalid_fraction,
                "suite_success": bool(suite_result.success),
                "expectations": expectation_rows,
                "reasons": dict(reason_counts.most_common()),
            },
            indent=2,
            default=str,
        )
    )
    log.info("validation: %d of %d events valid, %d quarantined (%.1f%%; their stretches cover %.0f%% of the "
             "film)", report.valid, total, report.quarantined, 100 * fraction, 100 * spread)
    if report.systemic:
        raise ValidationFailed(_failure(report.model_dump(), max_invalid_fraction, dict(reason_counts.most_common()),
                                        quarantine_path), report)
    if report.quarantined:
        log.warning("validation: %d events quarantined, the other %d indexed: %s", report.quarantined, report.valid,
                    "; ".join(f"{reason} ({count})" for reason, count in reason_counts.most_common(_TOP_REASONS)))
    return report


def failed_spread(failed: list[Event], duration_s: float) -> float:
    """The share of the film covered by the stretches of failed events, events closer than STRETCH_GAP_S joined."""
    if not failed or duration_s <= 0:
        return 0.0
    spans = sorted((max(e.start_s, 0.0), max(e.end_s, e.start_s, 0.0)) for e in failed)
    covered, (start, end) = 0.0, spans[0]
    for next_start, next_end in spans[1:]:
        if next_start - end > STRETCH_GAP_S:
            covered += end - start
            start, end = next_start, next_end
        else:
            end = max(end, next_end)
    covered += end - start
    return min(covered / duration_s, 1.0)


def _failure(report: dict, max_invalid_fraction: float, reasons: dict[str, int], quarantine: Path) -> str:
    top = "; ".join(f"{reason} ({count})" for reason, count in list(reasons.items())[:_TOP_REASONS])
    why = ("most break the event model" if report["fraction_schema_invalid"] > max_invalid_fraction
           else f"their stretches cover {report['failed_spread']:.0%} of the film")
    return (f"{report['quarantined']} of {report['total']} events ({report['fraction_invalid']:.1%}) failed "
            f"validation, more than the allowed {max_invalid_fraction:.1%}, and {why}. Top reasons: {top}. "
            f"Quarantine: {quarantine}")


def validate_video_events(video: IngestedVideo, events_dir: Path, settings: Settings) -> Path:
    """The cached validation stage: valid and quarantined events, report and Data Docs in its artifact folder.

    A run over the threshold still keeps its folder (the quarantine is the evidence) and fails, also when rerun.
    """
    def write(folder: Path) -> None:
        try:
            validate_events(read_events(Path(events_dir) / EVENTS_FILE), video.info.duration_s, folder,
                            settings.max_invalid_fraction)
        except ValidationFailed:
            pass  # raised below from the committed report, so a rerun fails the same way
        # What the speech stage did not make into events, for the run report beside what validation quarantined.
        dropped = Path(events_dir) / SPEECH_DROPPED_FILE
        if dropped.is_file():
            report_path = folder / "report.json"
            report = json.loads(report_path.read_text())
            report["speech_dropped"] = json.loads(dropped.read_text())
            report_path.write_text(json.dumps(report, indent=2, default=str))

    path = cached_stage("validation", video.video_id, settings.artifacts_dir, write, upstream=[events_dir],
                        max_invalid_fraction=settings.max_invalid_fraction)
    report = json.loads((path / "report.json").read_text())
    if report["systemic"]:
        raise ValidationFailed(_failure(report, settings.max_invalid_fraction, report["reasons"],
                                        path / "quarantine.jsonl"), ValidationReport.model_validate(report))
    return path
