"""The embedded index's event vectors: one `.npz` per video beside the tantivy index, with the columns the search
filters need (the `Event` fields declared filterable), so kNN filters exactly without asking tantivy."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from cinedex.core.model import EVENT_FIELDS, Event, EventFields, SearchFilters

LIST_SEPARATOR = "\x1f"
EXACT_KNN_ROWS = 20_000  # up to here every candidate is scored exactly; above, binary codes shortlist them first
RESCORE_FACTOR = 40  # shortlist size per hit wanted, rescored exactly


class VectorStore:
    """The embedded index's event vectors: one `.npz` per video (written aside, renamed into place), all of them
    held in memory while unchanged. kNN is exact up to EXACT_KNN_ROWS candidates; beyond, each vector's sign bits
    (48 bytes for 384 dimensions) shortlist the candidates by Hamming distance, which are then scored exactly —
    sentence-transformers' binary quantization with rescoring, without a separate ANN library."""

    _cache: dict[Path, tuple[tuple, dict]] = {}
    _cache_lock = threading.Lock()

    def __init__(self, folder: Path, fields: EventFields = EVENT_FIELDS) -> None:
        self.folder = Path(folder)
        self.fields = fields

    def _column(self, events: list[Event], name: str) -> np.ndarray:
        """One filter column: a list field as one string with each item between separators, so `holds` is a
        substring test over the whole column."""
        if name in self.fields.lists:
            return np.array([LIST_SEPARATOR + LIST_SEPARATOR.join(getattr(e, name)) + LIST_SEPARATOR for e in events])
        return np.array([getattr(e, name) for e in events])

    def _file(self, video_id: str) -> Path:
        return self.folder / f"{video_id}.npz"

    def replace_video(self, video_id: str, events: list[Event], vectors: np.ndarray | None, model: str = "") -> None:
        """The video's vectors (row i is events[i]'s), made by the embedding `model` (kept with them)."""
        target = self._file(video_id)
        if vectors is None or not len(events):
            target.unlink(missing_ok=True)
            return
        if len(vectors) != len(events):
            raise ValueError(f"{len(vectors)} vectors for {len(events)} events of video {video_id}")
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.npz")
        # The file's name is the video id: its column is made when the files are read.
        columns = {name: self._column(events, name) for name in self.fields.filterable if name != "video_id"}
        np.savez(scratch, ids=np.array([e.id for e in events]), vectors=np.asarray(vectors, dtype=np.float32),
                 model=np.array(model), **columns)
        scratch.replace(target)

    def _load(self) -> dict:
        # Every replace renames a file into (or out of) the folder, which changes the folder's own mtime: one stat
        # tells whether the cached arrays are current.
        stamp = self.folder.stat().st_mtime_ns if self.folder.is_dir() else 0
        with self._cache_lock:
            cached = self._cache.get(self.folder)
            if cached and cached[0] == stamp:
                return cached[1]
        files = sorted(self.folder.glob("[!.]*.npz")) if stamp else []
        parts, models = [], {}
        for file in files:
            with np.load(file) as part:
                # A file written before models were kept has none: "".
                models[file.stem] = str(part["model"]) if "model" in part.files else ""
                parts.append({**{key: part[key] for key in part.files if key != "model"},
                              "video_id": np.full(len(part["ids"]), file.stem)})
        if parts:
            data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        else:
            data = {"ids": np.array([], dtype=str), "vectors": np.zeros((0, 8), np.float32)}
        data["codes"] = sign_codes(data["vectors"])
        data["models"] = models
        with self._cache_lock:
            self._cache[self.folder] = (stamp, data)
        return data

    def models(self) -> dict[str, str]:
        """video id -> the embedding model of its vectors ("" where a file written before models were kept)."""
        return dict(self._load()["models"])

    def __len__(self) -> int:
        return len(self._load()["ids"])

    def search(self, vector: np.ndarray, filters: SearchFilters, limit: int) -> list[tuple[str, float]]:
        """(event id, cosine similarity) of the nearest events passing the filters, best first."""
        data = self._load()
        if not len(data["ids"]) or limit < 1:
            return []
        rows = self._filtered_rows(data, filters)
        count = len(data["ids"]) if rows is None else len(rows)
        if count == 0:
            return []
        vector = np.asarray(vector, dtype=np.float32)
        if count > EXACT_KNN_ROWS:
            codes = data["codes"] if rows is None else data["codes"][:, rows]
            shortlist = nearest_codes(codes, sign_codes(vector[None, :])[:, 0], RESCORE_FACTOR * limit)
            rows = shortlist if rows is None else rows[shortlist]
        elif rows is None:
            rows = np.arange(count)
        # einsum, not `@`: a few thousand rows are too few for BLAS's threads, which on a small machine then wait
        # for the cores that the query encoder's threads still spin on (hybrid p95 at a million events, 2 cores:
        # 129 ms with BLAS threads here, 39 ms without).
        scores = np.einsum("ij,j->i", data["vectors"][rows], vector)
        best = np.argpartition(-scores, limit - 1)[:limit] if len(scores) > limit else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(str(data["ids"][rows[i]]), float(scores[i])) for i in best]

    def _filtered_rows(self, data: dict, filters: SearchFilters) -> np.ndarray | None:
        """Row numbers passing the filters, or None for all rows."""
        mask = None
        for condition in filters.conditions():
            column = data[condition.field]
            if condition.field in self.fields.lists:
                passes = np.char.find(column, LIST_SEPARATOR + str(condition.value) + LIST_SEPARATOR) >= 0
            elif condition.op == ">":
                passes = column > condition.value
            elif condition.op == "<":
                passes = column < condition.value
            else:
                passes = column == condition.value
            mask = passes if mask is None else mask & passes
        return None if mask is None else np.flatnonzero(mask)


HAMMING_BLOCK = 1 << 16  # rows per pass: the block's temporaries stay in the CPU cache


def hamming_distances(codes: np.ndarray, query_code: np.ndarray) -> np.ndarray:
    """Hamming distance from `query_code` to every column of the word-major `codes`, a block of rows at a time
    into reused buffers: at a million rows, whole-array temporaries cost more in page faults than the XORs."""
    words, count = codes.shape
    distance = np.empty(count, np.uint16)
    xor = np.empty((words, min(count, HAMMING_BLOCK)), np.uint64)
    bits = np.empty(xor.shape, np.uint8)
    for start in range(0, count, HAMMING_BLOCK):
        stop = min(count, start + HAMMING_BLOCK)
        n = stop - start
        np.bitwise_xor(codes[:, start:stop], query_code[:, None], out=xor[:, :n])
        np.bitwise_count(xor[:, :n], out=bits[:, :n])
        np.add.reduce(bits[:, :n], axis=0, dtype=np.uint16, out=distance[start:stop])
    return distance


def nearest_codes(codes: np.ndarray, query_code: np.ndarray, count: int) -> np.ndarray:
    """Columns of `codes` at the `count` smallest Hamming distances from `query_code` (ties in column order).
    Distances are small integers, so a histogram finds the cut-off distance in one pass: several times faster
    than argpartition over a million rows."""
    distance = hamming_distances(codes, query_code)
    if count >= len(distance):
        return np.arange(len(distance))
    cutoff = int(np.searchsorted(np.cumsum(np.bincount(distance)), count))
    closer = np.flatnonzero(distance < cutoff)
    return np.concatenate([closer, np.flatnonzero(distance == cutoff)[:count - len(closer)]])


def sign_codes(vectors: np.ndarray) -> np.ndarray:
    """Each vector's sign bits as 64-bit words, word-major (words x rows): Hamming distances are then a few
    contiguous XOR and popcount passes, several times faster than row by row."""
    bits = np.packbits(vectors > 0, axis=1)
    padded = np.zeros((len(vectors), -(-bits.shape[1] // 8) * 8), np.uint8)
    padded[:, :bits.shape[1]] = bits
    return np.ascontiguousarray(padded.view(np.uint64).T)
