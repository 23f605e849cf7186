"""Packaging for onethinker-verl: the OneThinker RL recipe as a verl 0.9.1 plugin."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# torch is deliberately absent: GPU users bring their own CUDA build, and verl itself does not pin it.
INSTALL_REQUIRES = [
    "verl==0.9.1",
    "hydra-core>=1.3,<1.4",
    "omegaconf>=2.3,<2.4",
    "transformers>=5.5.3,<5.11,!=5.6.0",  # verl 0.9.1's own range
    "transferqueue>=0.1.10",  # the storage of verl's default (v1) trainer
    "numpy>=2.0",
    "pandas",
    "pyarrow>=19.0.0",
    "pillow",
    "tqdm",
    "tokenizers",  # onethinker_verl.tiny_model trains the tiny models' tokenizer
    "decord",
    "pycocotools",
    "scikit-image",
    "qwen-vl-utils",
    "math-verify",
    "mathruler==0.1.0",  # the multiple-choice fast path relies on its grading internals
    "rouge-score",
    "matplotlib",
    "aiohttp",  # model-based scoring talks to verl's reward-model router
    "psutil",  # CPU mode sizes TransferQueue's threads to the physical cores
    "imageio-ffmpeg",  # the ffmpeg binary the SAM2 step extracts video frames with, as the reference does
    # verl's reward loop and v1 trainer import these (verl lists them only in its `verl-core` extra)
    "cachetools",
    "fastapi",
    "uvicorn",
    "pyzmq",
    "msgspec",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=8",
        "hypothesis>=6",
        "av",  # the tests write tiny videos
        "tokenizers",
        # the SAM2 step runs for real in the tests (CPU, random weights). An sdist that imports torch to
        # build: install it first with SAM2_BUILD_CUDA=0 and --no-build-isolation (README's first command).
        "sam2==1.1.0",
    ],
    # GPU nodes only; the versions verl 0.9.1's own `vllm` / `fsdp` extras pin.
    "gpu": [
        "vllm==0.24.0",
        "flash-attn==2.8.3",
    ],
}

setup(
    name="onethinker-verl",
    version="0.1.0",
    description="OneThinker multi-task image/video RL (EMA-GRPO, multi-task reward, data adapters) as a verl plugin",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["onethinker_verl", "onethinker_verl.*"])
    + ["hydra_plugins.onethinker_verl_searchpath"],
    # The recipes live in the top-level recipes/ folder; onethinker_verl/hydra_root/recipe links to it, and
    # the wheel gets real copies, so Hydra's `recipe` config group resolves installed editable or not.
    # An explicit root keeps `pip install -e .` on a plain .pth entry: setuptools' import-hook editable
    # mode hides namespace packages from pkgutil, and Hydra finds its plugins that way.
    package_dir={"": "."},
    package_data={
        "onethinker_verl.hydra_root": ["recipe/*.yaml", "recipe/*.sh"],
        "onethinker_verl": ["data/templates/*.yaml", "data/sample/**/*", "evaluate/*.yaml", "evaluate/sample/**/*"],
    },
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "verl.plugins": ["onethinker = onethinker_verl.plugin"],
    },
)
