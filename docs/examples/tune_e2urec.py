"""RecBole's HyperTuning of E2URec's alpha (run from the repository root):
python docs/examples/tune_e2urec.py"""

from recbole.quick_start import objective_function
from recbole.trainer import HyperTuning

tuner = HyperTuning(
    objective_function,
    algo="exhaustive",
    params_file="docs/examples/e2urec.hyper",
    fixed_config_file_list=["docs/examples/tune_e2urec.yaml"],
)
tuner.run()
for params, result in tuner.params2result.items():
    test = result["test_result"]
    print(f"{params}: forget JSD (y/n) {test['forget_jsd_yesno']:.4f}, test AUC {test['auc']:.4f}")
print("best:", tuner.best_params)
