"""SFT cold start on verl's own SFT trainer (``verl.trainer.sft_trainer``, config ``sft_trainer_engine``).

- :mod:`onethinker_verl.sft.freeze`: frozen vision tower / projector, driven by ``model.freeze_*`` keys
  (bridges verl's FSDP engine, which builds its optimizer over every parameter);
- :mod:`onethinker_verl.sft.dataset`: ``OneThinkerSFTDataset`` for ``data.custom_cls`` (video with its
  real sampling metadata, media root, media budgets, missing-media handling).

The recipe is ``recipes/onethinker_sft.yaml`` (``+recipe=onethinker_sft``).
"""
