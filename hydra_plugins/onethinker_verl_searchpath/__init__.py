"""Hydra search-path plugin that makes ``+recipe=<name>`` resolve to onethinker-verl's recipes.

Hydra discovers every module in the ``hydra_plugins`` namespace package; this one appends the
package's config root (which holds the ``recipe`` group) to the search path of every Hydra app, so
``python -m verl.trainer.main_ppo +recipe=onethinker`` works from any working directory.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class OneThinkerSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="onethinker-verl", path="pkg://onethinker_verl.hydra_root")
