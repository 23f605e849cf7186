"""OmegaConf resolvers the recipes use.

``${onethinker_sample:rl.jsonl}`` is the absolute path of a file of the sample corpus bundled in the
installed package (``${onethinker_sample:}`` is its folder), so the recipe's default data works from any
working directory and any install location.

``${onethinker_required:data.train_files}`` marks a value the user must give. A recipe cannot simply write
``???``: Hydra merges the recipe onto verl's config, and OmegaConf keeps verl's value when the merged-in value
is missing. Resolving the marker raises ``MissingMandatoryValue`` naming the key.
"""

from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

SAMPLE_RESOLVER = "onethinker_sample"
REQUIRED_RESOLVER = "onethinker_required"


def bundled_sample_path(relative: str = "") -> str:
    """Absolute path of ``relative`` inside the bundled sample corpus; an unknown file is an error."""
    sample_dir = Path(__file__).resolve().parent / "data" / "sample"
    path = sample_dir / relative if relative else sample_dir
    if not path.exists():
        raise FileNotFoundError(
            f"${{{SAMPLE_RESOLVER}:{relative}}}: no such file in the bundled sample corpus ({path})"
        )
    return str(path)


if not OmegaConf.has_resolver(SAMPLE_RESOLVER):
    OmegaConf.register_new_resolver(SAMPLE_RESOLVER, bundled_sample_path)


def required_value(key: str) -> str:
    """Stands for a value the recipe cannot default: resolving it is an error naming ``key``."""
    raise MissingMandatoryValue(f"Missing mandatory value: {key}; pass {key}=... on the command line")


if not OmegaConf.has_resolver(REQUIRED_RESOLVER):
    OmegaConf.register_new_resolver(REQUIRED_RESOLVER, required_value)
