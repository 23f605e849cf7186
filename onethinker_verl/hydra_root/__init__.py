"""Hydra config root of the package: ``recipe/`` here is the repository's top-level ``recipes/`` folder.

In a source checkout ``recipe`` is a symbolic link to ``../../recipes``; a built wheel carries real copies
of the files. :mod:`hydra_plugins.onethinker_verl_searchpath` puts this package on Hydra's search path.
"""
