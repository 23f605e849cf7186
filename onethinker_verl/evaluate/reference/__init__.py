"""The reference evaluation protocol (OneThinker's ``Evaluation/Eval/eval_bench.py`` and
``seg_post_sam2.py``): :mod:`.outputs` (output files: read, score, write) and :mod:`.masks` (segmentation
masks). Row scores: :mod:`onethinker_verl.benchmark_scoring.reference`."""
