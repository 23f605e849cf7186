"""Benchmark evaluation of OneThinker checkpoints, by the reference protocol by default.

Run ``python -m onethinker_verl.evaluate --help`` (subcommands ``generate``, ``score``, ``sam2``, ``run``).

Two scoring protocols, one sub-package each (neither imports the other):

- :mod:`.reference` -- the reference's protocol (OneThinker's ``Evaluation/Eval``), the default:
  :mod:`.reference.outputs` reads, scores and writes the reference's output format and
  :mod:`.reference.masks` scores segmentation masks; the row scores themselves live in
  :mod:`onethinker_verl.benchmark_scoring.reference`, which verl's validation uses too.
- :mod:`.strict` -- the project's stricter protocol (``score --protocol strict``): :mod:`.strict.records`,
  :mod:`.strict.metrics`, :mod:`.strict.aggregate` and :mod:`.strict.evaluation`.

Shared by both: :mod:`.generation` runs a model over benchmark files (vLLM or transformers); :mod:`.masks`
holds the mask operations; :mod:`.sam2_bridge` turns predicted prompts into masks with SAM2; :mod:`.suite`
runs the paper's benchmark files end to end; :mod:`.report` writes Markdown and plots (with
:data:`published.yaml`); :mod:`.vlmevalkit` runs VLMEvalKit with OneThinker's prompt.
"""
