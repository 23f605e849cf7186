"""EMA-GRPO: group-relative advantages scaled by a per-task moving-average standard deviation."""
