"""Raw OneThinker JSON / JSON Lines given directly to the dataset class.

The file is converted once, streaming, into the same parquet layout ``data_prep/prepare_rl.py`` writes and
kept in verl's dataset cache folder; verl's own loading then reads that parquet. Any invalid row is an error
naming the file, the row and the reason: a training run does not drop rows silently (filtering a messy
corpus is ``prepare_rl.py``'s job, which reports every rejected row).

Rows of a benchmark file (``eval_<name>.json``, or rows with a ``benchmark`` field) get ``data_source =
<name>`` and ``extra_info.benchmark = <name>``: as ``data.val_files`` they make verl report the benchmark's
reference metrics per benchmark (:mod:`onethinker_verl.benchmark_scoring.validation`).
"""

import hashlib
import logging
import os
from pathlib import Path

from .corpus import FieldNames, RowRejected, parse_row, verl_rl_record
from .parquet import RL_SCHEMA, BatchedParquetWriter
from .prompts import PromptTemplates
from .records import iter_records

logger = logging.getLogger(__name__)

RAW_SUFFIXES = (".json", ".jsonl")
# bump when the layout written below changes, so stale cached conversions are not reused
_LAYOUT_VERSION = "3"
# The reference names its benchmark files eval_<name>.json; their rows validate as benchmark <name>.
BENCHMARK_FILE_PREFIX = "eval_"


def benchmark_name_of_file(path) -> str:
    """A benchmark file's name as the reports use it: its stem without the reference's ``eval_`` prefix."""
    return Path(path).stem.removeprefix(BENCHMARK_FILE_PREFIX)


def benchmark_of(source: Path, raw: dict) -> str | None:
    """The benchmark a raw row belongs to: its own ``benchmark`` field, else ``<name>`` of an
    ``eval_<name>.json`` file, else None (a training corpus)."""
    if isinstance(raw.get("benchmark"), str) and raw["benchmark"].strip():
        return raw["benchmark"].strip()
    if source.stem.startswith(BENCHMARK_FILE_PREFIX):
        return benchmark_name_of_file(source)
    return None


def is_raw_corpus(path: str) -> bool:
    return str(path).endswith(RAW_SUFFIXES)


def mark_benchmark(record: dict, benchmark: str) -> dict:
    """A verl RL record of a benchmark row: ``data_source`` (verl groups validation metrics by it) and
    ``extra_info.benchmark`` (the reward manager then adds the benchmark's reference metrics, see
    :mod:`onethinker_verl.benchmark_scoring.validation`) both become the benchmark's name."""
    record["data_source"] = benchmark
    record["extra_info"]["benchmark"] = benchmark
    return record


def _cache_path(source: Path, cache_dir: Path) -> Path:
    stat = source.stat()
    key = f"{_LAYOUT_VERSION}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"{source.stem}-{digest}.parquet"


def convert_raw_corpus(path: str, cache_dir: str, templates: PromptTemplates, names: FieldNames = FieldNames()) -> str:
    """Path of the parquet equivalent of the raw file ``path``, converting it on first use."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    target_dir = Path(cache_dir).expanduser() / "onethinker_raw"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = _cache_path(source, target_dir)
    if target.is_file():
        return str(target)
    # several ranks may convert at once: each writes its own file and the rename is atomic
    partial = target.with_suffix(f".{os.getpid()}.partial")
    logger.info("converting raw OneThinker corpus %s -> %s", source, target)
    try:
        with BatchedParquetWriter(partial, RL_SCHEMA) as writer:
            for record in iter_records(source):
                if record.error is not None:
                    raise ValueError(f"{source}, row {record.position}: malformed JSON: {record.error}")
                try:
                    row = parse_row(record.value, names, fallback_id=f"row-{record.position}")
                except RowRejected as rejection:
                    raise ValueError(
                        f"{source}, row {record.position}: {rejection}. "
                        "Clean the file with data_prep/prepare_rl.py, which reports and drops such rows."
                    ) from None
                converted = verl_rl_record(row, record.position, templates)
                benchmark = benchmark_of(source, record.value)
                writer.write(mark_benchmark(converted, benchmark) if benchmark is not None else converted)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return str(target)
