"""Benchmark evaluation of OneThinker predictions: metrics for all ten tasks, masks included.

Run ``python -m onethinker_verl.evaluate --help``. Modules: :mod:`.records` reads the predictions
file, :mod:`.metrics` scores one item, :mod:`.masks` holds RLE decoding and J / F,
:mod:`.aggregate` turns item scores into benchmark metrics, :mod:`.evaluation` ties them together,
:mod:`.report` writes Markdown and plots, and :mod:`.sam2_bridge` optionally turns predicted
prompts into masks with SAM2.
"""
