"""verl plugin entry point: registers every onethinker-verl component with verl.

verl imports this module (entry-point group ``verl.plugins``) from ``import verl`` in every process that
imports verl: the driver, the TaskRunner and each Ray worker. Registration is therefore an import side
effect. verl itself logs a failed plugin import only at DEBUG level, so each component is imported
separately here and a failure is logged as a WARNING naming the component; the rest still register.
"""

import importlib
import logging

logger = logging.getLogger(__name__)

# (what it provides, module whose import registers it)
COMPONENTS = (
    ("advantage estimator 'ema_grpo'", "onethinker_verl.advantage.ema_grpo"),
    ("reward manager 'onethinker'", "onethinker_verl.reward.manager"),
    ("verl trainer glue (task identity, checkpointed EMA state, metrics)", "onethinker_verl.verl_glue"),
    ("OmegaConf resolver 'onethinker_sample'", "onethinker_verl.resolvers"),
)


def register() -> list[str]:
    """Import every component module; return the descriptions of those that registered."""
    registered = []
    for description, module_name in COMPONENTS:
        try:
            importlib.import_module(module_name)
        except Exception as exc:  # a broken component must not hide the others, but must be loud
            logger.warning("onethinker-verl: failed to register %s (import of %s): %r", description, module_name, exc)
        else:
            registered.append(description)
    logger.info("onethinker-verl registered with verl: %s", ", ".join(registered) if registered else "nothing")
    return registered


REGISTERED = register()
