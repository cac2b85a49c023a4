"""Result table (console/markdown, CSV, JSON) and the forgetting/utility trade-off plot."""

import csv
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from recbole_unlearn.evaluation.metrics import METRICS, table_metrics  # noqa: E402
from recbole_unlearn.evaluation.summary import claims_table, signal_check, signal_sentence  # noqa: E402
from recbole_unlearn.provenance import describe_machine  # noqa: E402

REFERENCE_ROWS = ("original", "retrain")
# Per model family: the (utility, forgetting distance) the plots show.
PLOTTED = {"labeled": ("test_auc", "forget_jsd_yesno"), "ranking": ("test_ndcg", "forget_catalogue_jsd")}
TRADEOFF = {"labeled": ("test_auc", "forget_jsd"), "ranking": ("test_ndcg", "forget_catalogue_jsd")}
FINGERPRINTS = ("split_sha256", "forget_sha256")


def cell(metric, row):
    """A metric's value in ``row``, or for a summary row over seeds its ``mean ± 95% CI`` (and a gap closed's
    ratio of means over seeds, ``pooled``)."""
    if metric.name in row:
        return metric.show(row[metric.name])
    mean, half_width = row[f"{metric.name}_mean"], row[f"{metric.name}_ci95"]
    if float(mean).is_integer() and (math.isnan(half_width) or half_width == 0):
        mean, half_width = int(mean), int(0 if math.isnan(half_width) else half_width)
    pooled = row.get(f"{metric.name}_pooled")
    return f"{metric.show(mean)} ± {metric.show(half_width)}" + (
        f" (pooled {metric.show(pooled)})" if pooled is not None else ""
    )


def has_value(row, name):
    return name in row or f"{name}_mean" in row


def family_of(rows):
    """The model family of result rows: ``ranking`` if they hold ranking metrics, else ``labeled``."""
    return "ranking" if any(has_value(row, "test_ndcg") for row in rows) else "labeled"


def value_and_error(row, key):
    """(value, 95% CI half-width) of ``key`` in a result row (no error) or a summary row over seeds."""
    if key in row:
        return row[key], 0.0
    half_width = row[f"{key}_ci95"]
    return row[f"{key}_mean"], 0.0 if math.isnan(half_width) else half_width


def markdown_table(rows, compare=False):
    """The rows as a markdown table of the registered metrics that have a label (``compare``: the
    comparison's columns, with the model first); summary rows over seeds show ``mean ± 95% CI``."""
    # A model family's columns only: rows hold the metrics of their family.
    metrics = [metric for metric in table_metrics(compare) if all(has_value(row, metric.name) for row in rows)]
    keys = ["model", "method"] if compare else ["method"]
    lines = [
        "| " + " | ".join(keys + [metric.label for metric in metrics]) + " |",
        "|" + "---|" * (len(keys) + len(metrics)),
    ]
    lines += [
        "| " + " | ".join([str(row[key]) for key in keys] + [cell(metric, row) for metric in metrics]) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def comparison_rows(results):
    """Every model's rows, each naming its model and the data it ran on (``FINGERPRINTS``)."""
    return [
        {"model": result["context"]["model"], **row, **{key: result["context"][key] for key in FINGERPRINTS}}
        for result in results
        for row in result["rows"]
    ]


def data_groups(results):
    """``unlearn_one`` results grouped by the data they ran on (split and forget set), in run order:
    general and sequential ranking models split ML-100K differently (RecBole's own settings)."""
    groups = {}
    for result in results:
        groups.setdefault(tuple(result["context"][key] for key in FINGERPRINTS), []).append(result)
    return list(groups.values())


def comparison_table(results):
    """The comparison's markdown: one table, or one per group of models that ran on the same data."""
    groups = data_groups(results)
    if len(groups) == 1:
        return markdown_table(comparison_rows(results), compare=True)
    return "\n\n".join(
        f"{', '.join(result['context']['model'] for result in group)} "
        f"(split {group[0]['context']['split_sha256'][:12]}, forget set {group[0]['context']['forget_sha256'][:12]}; "
        "other tables ran on other data):\n\n" + markdown_table(comparison_rows(group), compare=True)
        for group in groups
    )


def _write_tables(rows, directory, name, document, appendix="", table=None):
    """``name``.csv (the rows), ``name``.json (``document``) and ``name``.md (``table``, by default the
    rows' table, then ``appendix``)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{name}.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(directory, f"{name}.json"), "w") as f:
        json.dump(document, f, indent=2)
    table = table or markdown_table(rows)
    with open(os.path.join(directory, f"{name}.md"), "w") as f:
        f.write(table + "\n" + appendix)
    return table


def measured_on(context):
    """The line under a results table that says which machine its seconds come from."""
    return f"Seconds measured on {describe_machine(context['machine'])}."


def signal_lines(check):
    """A ``signal_check``'s sentence and a blank line, or nothing for rows without one."""
    return f"\n{signal_sentence(check)}\n" if check else ""


def write_results(rows, directory, context):
    """results.csv, results.json (with the ``signal`` check) and results.md of one model's run."""
    signal = signal_check([rows])
    document = {"context": context, "results": rows, "signal": signal}
    appendix = f"{signal_lines(signal)}\n{measured_on(context)}\n"
    return _write_tables(rows, directory, "results", document, appendix=appendix)


def write_seed_results(summary, runs, claims, directory, context):
    """results.csv (the summary rows), results.json (``context``, every seed's ``runs``, the ``summary``, the
    ``signal`` check and the ``claims``) and results.md (the summary table, the signal check and the
    claims) of one model's runs over seeds."""
    signal = signal_check([run["rows"] for run in runs])
    document = {"context": context, "runs": runs, "summary": summary, "signal": signal, "claims": claims}
    appendix = f"{signal_lines(signal)}\n{claims_table(claims)}\n\n{measured_on(context)}\n"
    return _write_tables(summary, directory, "results", document, appendix=appendix)


def write_comparison(results, directory):
    """comparison.csv/.json/.md and comparison.png over several models' runs (``unlearn_one`` results).
    Only models that ran on the same split and forget set are compared: with several such groups the
    markdown has one table per group, and each row of the CSV names its data."""
    contexts = [result["context"] for result in results]
    groups = data_groups(results)
    rows = comparison_rows(results)
    shared = {key: contexts[0][key] for key in ("dataset", "forget_request", "seed")}
    context = {
        **shared,
        "data": [
            {
                "models": [r["context"]["model"] for r in group],
                **{key: group[0]["context"][key] for key in FINGERPRINTS},
            }
            for group in groups
        ],
        "runs": {c["model"]: result["run_dir"] for c, result in zip(contexts, results)},
    }
    table = comparison_table(results)
    _write_tables(rows, directory, "comparison", {"context": context, "results": rows}, table=table)
    comparison_plot(rows, os.path.join(directory, "comparison.png"), f"{shared['dataset']}: {shared['forget_request']}")
    return table


def comparison_plot(rows, path, title):
    """Test utility (AUC, or NDCG@K) and the forget-set distance to Retrain of every method, by model."""
    models = list(dict.fromkeys(row["model"] for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in rows))
    value = {(row["model"], row["method"]): row for row in rows}
    width = 0.8 / len(methods)
    figure, panels = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(models) * 2), 4.5))
    utility = PLOTTED[family_of(rows)][0]
    for panel, key in zip(panels, PLOTTED[family_of(rows)]):
        label = METRICS[key].label
        for offset, method in enumerate(methods):
            bars = [value_and_error(value[(m, method)], key) if (m, method) in value else (math.nan, 0) for m in models]
            heights, errors = zip(*bars)
            positions = [i + (offset - (len(methods) - 1) / 2) * width for i in range(len(models))]
            panel.bar(positions, heights, width, yerr=errors, capsize=2, label=method)
        panel.set_xticks(range(len(models)), models, rotation=30)
        panel.set_ylabel(label)
        panel.grid(axis="y", alpha=0.3)
    lows = [value_and_error(row, utility)[0] for row in rows]
    panels[0].set_ylim(max(0.0, min(lows) - 0.05), min(1.0, max(lows) + 0.02))
    panels[1].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def tradeoff_plot(rows, path, title):
    """Forget-set JSD to Retrain (lower = closer to retraining) against test utility, one point per method
    (summary rows over seeds: their means, with 95% CI error bars)."""
    utility, distance = TRADEOFF[family_of(rows)]
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for row in rows:
        reference = row["method"] in REFERENCE_ROWS
        (x, x_error), (y, y_error) = value_and_error(row, distance), value_and_error(row, utility)
        axes.errorbar(
            x,
            y,
            xerr=x_error or None,
            yerr=y_error or None,
            fmt="*" if reference else "o",
            markersize=12 if reference else 7,
            color="black" if reference else None,
            capsize=3,
            zorder=3,
        )
        axes.annotate(row["method"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    axes.set_xlabel(f"{METRICS[distance].label} to Retrain (full answer distribution)")
    axes.set_ylabel(METRICS[utility].label)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
