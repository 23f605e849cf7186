"""The bridges between onethinker-verl and verl 0.9.1's trainers, one module per gap verl leaves open.

* :mod:`.task_identity`: each sample's task reaches the ``ema_grpo`` estimator (both trainers).
* :mod:`.ema_checkpoint`: the EMA-GRPO moments are saved with verl's checkpoints and restored on resume.
* :mod:`.step_metrics`: per-task reward and EMA-GRPO metrics in the step metrics.
* :mod:`.online_filter`: OneThinker's accuracy-band group filter in the v1 replay buffer.
* :mod:`.model_score_normalization`: per-group normalisation of model-scored open-ended rewards.
* :mod:`.padding`: which rows of a v1 batch verl added as padding (read by the modules above).
* :mod:`.legacy_fit`: the legacy trainer's module-wide wrappers act only inside the ``fit`` that needs them.
* :mod:`.trajectory_fields`: reading trajectory fields from TransferQueue that the v1 trainer does not fetch.
* :mod:`.install`: the one place that installs them, per trainer, only for what its config asks for.

Nothing is patched when this package is imported. :mod:`onethinker_verl.plugin` calls
:func:`.install.install_v1_trainer_glue` / :func:`.install.install_legacy_trainer_glue` when verl imports its
trainers; those wrap the trainers' ``__init__`` so that each new trainer gets exactly the glue its config
needs, and a trainer that uses none of ``ema_grpo``, the ``onethinker`` reward manager and the online filter
gets none.
"""
