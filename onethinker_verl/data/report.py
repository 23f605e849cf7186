"""Accounting of a conversion: every input row is either written (counted per task and modality) or
rejected (one line in ``rejected.jsonl`` with its reason), so written + rejected = input, always."""

import json
from collections import Counter
from pathlib import Path


class ConversionReport:
    def __init__(self, rejected_path: str | Path):
        self.rejected_path = Path(rejected_path)
        self._rejected_file = open(self.rejected_path, "w", encoding="utf-8")
        self.input_rows = 0
        self.written = Counter()  # (split, task, modality) -> rows
        self.rejected = Counter()  # reason -> rows

    def add_written(self, split: str, task: str, modality: str) -> None:
        self.input_rows += 1
        self.written[(split, task, modality)] += 1

    def add_rejected(self, position: int, reason: str, detail: str = "", row_id: str | None = None, source=None):
        self.input_rows += 1
        self.rejected[reason] += 1
        entry = {"position": position, "id": row_id, "reason": reason, "detail": detail}
        if source is not None:
            entry["file"] = str(source)
        self._rejected_file.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._rejected_file.close()

    @property
    def written_total(self) -> int:
        return sum(self.written.values())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        lines = [f"input rows: {self.input_rows}  written: {self.written_total}  rejected: {self.rejected_total}"]
        splits = sorted({split for split, _, _ in self.written})
        for split in splits:
            lines.append(f"{split}:")
            for (row_split, task, modality), count in sorted(self.written.items()):
                if row_split == split:
                    lines.append(f"  {task:<28} {modality:<12} {count:>9}")
        if self.rejected:
            lines.append(f"rejected (details in {self.rejected_path}):")
            for reason, count in self.rejected.most_common():
                lines.append(f"  {reason:<40} {count:>9}")
        return "\n".join(lines)
