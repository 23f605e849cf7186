"""Benchmark evaluation of OneThinker checkpoints, by the reference protocol by default.

Run ``python -m onethinker_verl.evaluate --help`` (subcommands ``generate``, ``score``, ``sam2``, ``run``).
Modules: :mod:`.generation` runs a model over benchmark files (vLLM or transformers); :mod:`.outputs`
reads, scores and writes the reference's output format; :mod:`.reference` and :mod:`.reference_masks`
are the reference's row scores, aggregation and mask scores; :mod:`.sam2_bridge` turns predicted prompts
into masks with SAM2; :mod:`.suite` runs the paper's benchmark files end to end; :mod:`.report` writes
Markdown and plots (with :data:`published.yaml`); :mod:`.validation` puts benchmark metrics into verl's
validation; :mod:`.vlmevalkit` runs VLMEvalKit with OneThinker's prompt. The project's strict protocol
(``score --protocol strict``) lives in :mod:`.records`, :mod:`.metrics`, :mod:`.masks`, :mod:`.aggregate`
and :mod:`.evaluation`.
"""
