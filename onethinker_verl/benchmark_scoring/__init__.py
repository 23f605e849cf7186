"""Benchmark scoring shared by training and evaluation: the reference protocol's row scores
(:mod:`.reference`) and the per-row benchmark metrics the ``onethinker`` reward manager adds to verl's
validation (:mod:`.validation`). Imports nothing from :mod:`onethinker_verl.evaluate`, so the training
side never loads the evaluation package."""
