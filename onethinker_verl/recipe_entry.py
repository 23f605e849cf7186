"""Which verl entry point a recipe belongs to: a recipe given to the other trainer is refused in one line.

The search-path plugin (``hydra_plugins/onethinker_verl_searchpath``) offers the ``recipe`` group to every Hydra
app, and both verl configs accept either recipe: ``main_ppo +recipe=onethinker_sft`` composes and then fails
inside verl on an unrelated actor assertion, ``sft_trainer +recipe=onethinker`` trains with none of the RL
settings. Each recipe's start-up callback (:class:`onethinker_verl.startup_check.StartupCheck`,
:class:`onethinker_verl.sft.startup_check.SFTStartupCheck`) calls :func:`entry_point_problem` first. The entry
point is Hydra's job name, the module of the task function (``main_ppo``, ``sft_trainer``); other entry points
are not judged.
"""

import re

RL, SFT = "RL", "SFT"
# Hydra job name (module of verl's task function) -> the kind of recipe it runs
ENTRY_POINTS = {"main_ppo": RL, "sft_trainer": SFT}
HOW_TO_RUN = {
    RL: "python -m verl.trainer.main_ppo +recipe=onethinker (or onethinker_smoke, onethinker_qwen25vl_7b)",
    SFT: "torchrun -m verl.trainer.sft_trainer +recipe=onethinker_sft",
}
_RECIPE_OVERRIDE = re.compile(r"^\+{0,2}recipe=(?P<name>.+)$")


def _job_and_recipe() -> tuple[str | None, str | None]:
    """Hydra's job name and the ``+recipe=`` override of the running app (None outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    hydra = HydraConfig.get()
    recipes = [found["name"] for found in map(_RECIPE_OVERRIDE.match, hydra.overrides.task) if found]
    return hydra.job.name, (recipes[-1] if recipes else None)


def entry_point_problem(recipe_kind: str) -> str | None:
    """``recipe=<name>: <why>; <what would work>`` when the running Hydra app is a verl trainer of the other
    kind than ``recipe_kind`` (:data:`RL` or :data:`SFT`), else None."""
    job, recipe = _job_and_recipe()
    runs = ENTRY_POINTS.get(job)
    if runs is None or runs == recipe_kind:
        return None
    return (
        f"recipe={recipe or '?'}: is the OneThinker {recipe_kind} recipe, but verl.trainer.{job} runs {runs}; "
        f"run it as {HOW_TO_RUN[recipe_kind]}, or run {HOW_TO_RUN[runs]}"
    )
