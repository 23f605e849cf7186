"""The OneThinker pipeline in miniature, for real, on a machine without GPUs: ``python -m onethinker_verl.miniature``.

Every stage runs through the entry point a real run uses, as a child process whose log goes to
``<output>/logs/<stage>.log``, on the bundled sample corpus and a tiny random Qwen-VL model built on the spot:

1. ``model``: a tiny random model (:mod:`onethinker_verl.tiny_model`);
2. ``sft``: cold start with verl's SFT trainer (``verl.trainer.sft_trainer``, ``+recipe=onethinker_sft``, frozen
   vision, on the CPU through :mod:`onethinker_verl.sft.cpu_run`) on the RL sample's prompts answered in the
   recipe's format (:mod:`onethinker_verl.miniature.sft_data`);
3. ``rl``: ``python -m verl.trainer.main_ppo +recipe=onethinker_cpu`` from the SFT checkpoint: the
   ``onethinker`` reward, EMA-GRPO and the online filter, a checkpoint after each step;
4. ``resume``: the same command asked for one more step: it resumes from the last checkpoint (EMA moments
   included) and runs the next step;
5. ``eval``: the RL checkpoint on the bundled benchmark sample (``python -m onethinker_verl.evaluate generate``
   with the transformers backend, then ``score``);
6. ``summary``: ``summary.md`` and ``summary.json`` (:mod:`onethinker_verl.miniature.summary`).
"""
