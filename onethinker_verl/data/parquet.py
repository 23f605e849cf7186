"""The parquet layouts the converters write, and a writer that flushes them in batches."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PROMPT_LENGTH_COLUMN = "prompt_length"  # written by data_prep/prepare_rl.py --prompt-length-model
# parquet schema metadata key under which prepare_rl.py records how the lengths were measured (model, settings)
PROMPT_LENGTH_METADATA = b"onethinker.prompt_length"

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

# verl's RLHFDataset row: chat prompt with <image>/<video> placeholders, media paths (relative to
# data.media_root, or absolute), per-task data_source, rule reward ground truth, task identity in extra_info.
RL_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(_MESSAGE)),
        ("images", pa.list_(pa.string())),
        ("videos", pa.list_(pa.string())),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("index", pa.int64()),
                    ("id", pa.string()),
                    ("problem_type", pa.string()),
                    ("data_type", pa.string()),
                    ("question", pa.string()),
                    ("options", pa.list_(pa.string())),
                    ("source", pa.string()),
                    # benchmark name for rows of a benchmark file (benchmark_scoring.validation), else null
                    ("benchmark", pa.string()),
                ]
            ),
        ),
    ]
)

# verl's MultiTurnSFTDataset row. Its image/video entries go straight to qwen_vl_utils, which needs dicts
# with absolute paths and concrete sampling values (a null would reach its arithmetic).
SFT_SCHEMA = pa.schema(
    [
        ("messages", pa.list_(_MESSAGE)),
        (
            "images",
            pa.list_(pa.struct([("image", pa.string()), ("min_pixels", pa.int64()), ("max_pixels", pa.int64())])),
        ),
        (
            "videos",
            pa.list_(
                pa.struct(
                    [
                        ("video", pa.string()),
                        ("fps", pa.float64()),
                        ("max_frames", pa.int64()),
                        ("min_pixels", pa.int64()),
                        ("max_pixels", pa.int64()),
                    ]
                )
            ),
        ),
        ("data_source", pa.string()),
        ("extra_info", pa.struct([("index", pa.int64()), ("id", pa.string()), ("source_file", pa.string())])),
    ]
)


class BatchedParquetWriter:
    """Appends rows to a parquet file, one row group per ``batch_rows`` rows, so memory stays flat."""

    def __init__(self, path: str | Path, schema: pa.Schema, batch_rows: int = 5000):
        self.path = Path(path)
        self.schema = schema
        self.batch_rows = batch_rows
        self.rows_written = 0
        self._pending: list[dict] = []
        self._writer = pq.ParquetWriter(str(self.path), schema, compression="zstd")

    def write(self, row: dict) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_pylist(self._pending, schema=self.schema))
            self.rows_written += len(self._pending)
            self._pending = []

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
