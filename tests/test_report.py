"""Report tables from a hand-made results table."""

import pandas as pd
import pytest

from kdtune.errors import KdtuneError
from kdtune.results.tables import Look, render
from tests.cells import aggregate


@pytest.fixture
def results():
    rows = []
    for student, teacher, eval_set, accs, tau in [
        ("MLP", "data", "test", [0.9, 1.0], None),
        ("MLP", "CNN", "test", [0.8, 0.9, 1.0], 5.0),
        ("MLP", "CNN", "translated", [0.5, 0.7], 5.0),
        ("CNN", "data", "test", [0.95], None),
        ("MLP", "data", "val", [0.1, 0.1], None),
    ]:
        for seed, acc in enumerate(accs):
            rows.append(
                {
                    "student": student,
                    "teacher": teacher,
                    "eval_set": eval_set,
                    "seed": seed,
                    "accuracy": acc,
                    "ece": 1 - acc,
                    "temperature": tau,
                    "status": "ok",
                    "schedule": "exp" if teacher == "data" else "cos",
                }
            )
    rows.append({"student": "MLP", "teacher": "MLP", "eval_set": "test", "seed": 0, "accuracy": None, "status": "failed"})
    return pd.DataFrame(rows)


def test_aggregate_mean_sample_std_and_count(results):
    agg = aggregate(results, "accuracy")
    cell = agg[(agg.student == "MLP") & (agg.teacher == "CNN") & (agg.eval_set == "test")].iloc[0]
    assert cell["mean"] == pytest.approx(0.9) and cell["std"] == pytest.approx(0.1) and cell["n"] == 3
    assert "val" not in set(agg.eval_set)  # validation is for selection, not reported by default
    assert "temperature" not in agg.columns  # one value per cell: not added to the rows


def test_markdown_layout_students_by_eval_set_and_teacher(results):
    text = render(results, ["accuracy"], "markdown")
    lines = text.splitlines()
    assert lines[2] == "| student | test / data | test / CNN | test / MLP | translated / CNN | translated / MLP |"
    assert "| MLP | 0.950 ± 0.071 (2) | 0.900 ± 0.100 (3) | failed (0/1) | 0.600 ± 0.141 (2) | failed (0/1) |" in lines
    assert "| CNN | 0.950 (1) | – | – | – | – |" in lines


def test_settings_that_vary_inside_a_cell_become_rows(results):
    extra = results[results.teacher == "CNN"].assign(temperature=1.0, accuracy=0.2)
    agg = aggregate(pd.concat([results, extra]), "accuracy")
    assert "temperature" in agg.columns
    assert set(agg[agg.teacher == "CNN"].temperature) == {1.0, 5.0}


def test_latex_is_a_captioned_labelled_booktabs_table_with_spanning_headers(results):
    text = render(results, ["accuracy"], "latex", look=Look(textwidth=1000), label="run")  # wide: the layout asked for
    assert r"\toprule" in text and r"\bottomrule" in text and r"\midrule" in text
    assert r"{} & \multicolumn{3}{c}{test} & \multicolumn{2}{c}{translated} \\" in text and r"\cmidrule(lr){2-4}" in text
    assert "\n{student} & {data} & {CNN} & {MLP} & {CNN} & {MLP} \\\\\n" in text  # the index name on the last header row
    assert r"0.900{${}\pm{}$0.100 (3)}" in text  # the number in a siunitx S column, the rest after it
    assert r"CNN & 0.950{ (1)} & \multicolumn{1}{c}{–} & –" in text  # text in a column of numbers: centred, not parsed
    assert r"MLP & 0.950{${}\pm{}$0.071 (2)} & 0.900{${}\pm{}$0.100 (3)} & failed (0/1) &" in text  # a column of text: l
    assert text.count(r"\begin{table}") == 1 and r"\label{tab:run-accuracy}" in text
    assert r"\caption{accuracy: mean $\pm$ std (n) over seeds. accuracy: fraction of examples classified" in text
    assert "S[table-format=1.3, table-space-text-post={${}\\pm{}$0.100 (3)}]" in text


def test_csv_is_tidy_numbers(results):
    lines = render(results, ["accuracy", "ece"], "csv").splitlines()
    assert lines[0] == "student,eval_set,teacher,mean,std,n,n_expected,metric"
    assert any(line.startswith("MLP,test,CNN,0.9") and line.endswith(",3,3,accuracy") for line in lines)
    assert "MLP,test,MLP,,,0,1,accuracy" in lines  # the failed trial's cell is kept, with n = 0


def test_unknown_metric_or_eval_set_is_a_clear_error(results):
    with pytest.raises(KdtuneError, match="no column 'f1'"):
        render(results, ["f1"])
    with pytest.raises(KdtuneError, match="unknown eval set"):
        render(results, ["accuracy"], eval_sets=["rotated"])


def test_none_and_a_value_of_a_setting_are_not_pooled(results):
    extra = results[results.teacher == "CNN"].assign(grad_clip=1.0)
    agg = aggregate(pd.concat([results.assign(grad_clip=None), extra]), "accuracy")
    assert "grad_clip" in agg.columns


def test_default_metrics_missing_from_the_results_are_left_out_with_a_note(results, capsys):
    from kdtune.app import pick_metrics as _metrics

    assert _metrics(results, None, ["accuracy", "d_accuracy", "ece"]) == ["accuracy", "ece"]
    assert "note: no d_accuracy in these results" in capsys.readouterr().err
    assert _metrics(results, ["d_accuracy"], ["accuracy"]) == ["d_accuracy"]  # asked for: the report says it is missing
    with pytest.raises(KdtuneError, match="none of the report's metrics"):
        _metrics(results, None, ["d_accuracy"])


@pytest.mark.parametrize(
    "rows, cols, named",
    [
        (["student"], ["student"], "'student' is given more than once (in both rows and cols)"),
        (["student", "student"], ["teacher"], "'student' is given more than once (in rows)"),
        (["student"], ["eval_set", "eval_set"], "'eval_set' is given more than once (in cols)"),
        (["student"], ["temp"], "unknown report key 'temp'"),
        ("student", "studnet", "unknown report key 'studnet'"),
    ],
)
def test_bad_keys_are_one_line_listing_the_valid_ones(results, rows, cols, named):
    with pytest.raises(KdtuneError) as e:
        render(results, ["accuracy"], rows=rows, cols=cols)
    assert named in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).endswith("valid keys: student, teacher, eval_set, seed, fold, arch, temperature, w_hard, w_soft, "
                                 "kd_loss, start, stop, lr, weight_decay, dropout, label_smoothing, grad_clip, epochs, "
                                 "batch_size, optimizer, schedule, augment, teacher_config, config")  # fmt: skip


def test_keys_are_checked_before_any_work():
    from kdtune.labels import REPORT_KEYS as KEYS
    from kdtune.results.tables import parse_report

    assert parse_report({"rows": list(KEYS)}, "s.yaml").rows == KEYS and "eval_set" in KEYS  # a sweep's report takes them
    with pytest.raises(KdtuneError, match="unknown report key 'bogus'"):
        render(pd.DataFrame(), ["no_such_metric"], rows=["bogus"])
