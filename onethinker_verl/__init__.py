"""OneThinker multi-task RL recipe as a verl plugin.

Importing this package is cheap; the components are registered with verl by
:func:`onethinker_verl.plugin.register`, which verl calls through the ``verl.plugins`` entry point.
"""

__version__ = "0.1.0"
