"""Tables that carry evidence: intervals, comparisons with a reference cell, the best cells in bold.

A made-up results table with a known significant and a known null difference, and the pairing of the units
written into it (``init_seed``, ``data_seed``) as kdtune's results have it: students of two teachers at seed s
share their streams, a student and a model trained from data do not.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from kdtune.errors import KdtuneError
from kdtune.results import stats
from kdtune.results.tables import ReportSpec, render
from tests.latex import compile_latex, needs_pdflatex

BASE = [0.80, 0.70, 0.90, 0.75, 0.85]  # from data; seeds differ a lot
VALUES = {
    "data": BASE,
    "big": [v + 0.20 for v in [0.82, 0.69, 0.91, 0.73, 0.86]],  # far above the baseline: significant
    "same": [0.78, 0.72, 0.88, 0.77, 0.84],  # the baseline's level: a null difference
}


def _table(values: dict[str, list[float]] = VALUES, seeds_of: dict[str, int] | None = None) -> pd.DataFrame:
    rows = []
    for teacher, accs in values.items():
        for seed, acc in enumerate(accs[: (seeds_of or {}).get(teacher, len(accs))]):
            stream = seed if teacher == "data" else 1000 + seed  # students draw their streams apart from data's
            rows.append(
                {
                    "student": "MLP",
                    "teacher": teacher,
                    "eval_set": "test",
                    "seed": seed,
                    "fold": None,
                    "init_seed": stream,
                    "data_seed": stream,
                    "accuracy": acc,
                    "ece": 1 - acc,
                    "status": "ok",
                }
            )
    return pd.DataFrame(rows)


def _csv(df: pd.DataFrame, **kw: object) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(render(df, ["accuracy"], "csv", stat=ReportSpec(**kw))))  # type: ignore[arg-type]


def test_a_known_significant_and_a_known_null_difference():
    out = _csv(_table(), compare="teacher=data", interval="ci95").set_index("teacher")
    big, same = (
        scipy.stats.ttest_ind(VALUES["big"], BASE, equal_var=False),
        scipy.stats.ttest_ind(VALUES["same"], BASE, equal_var=False),
    )
    assert out.loc["big", "p"] == pytest.approx(big.pvalue) and out.loc["same", "p"] == pytest.approx(same.pvalue)
    holm = stats.adjust([big.pvalue, same.pvalue], "holm")  # the table's family: its two comparisons
    assert out.loc[["big", "same"], "p_adjusted"].tolist() == pytest.approx(list(holm))
    assert out.loc["big", "p_adjusted"] < 0.05 < out.loc["same", "p_adjusted"]
    assert out.loc["big", "diff"] == pytest.approx(np.mean(VALUES["big"]) - np.mean(BASE))
    assert (out.loc["big", "test"], out.loc["big", "n_pairs"], out.loc["big", "n"], out.loc["big", "n_ref"]) == (
        "welch",
        0,
        5,
        5,
    )
    assert pd.isna(out.loc["data", "p"])  # the reference itself
    half = {k: scipy.stats.t.ppf(0.975, 4) * scipy.stats.sem(v) for k, v in VALUES.items()}  # t(0.975, n - 1) · s.e.
    assert (out.loc["data", "ci95_lo"], out.loc["data", "ci95_hi"]) == pytest.approx((0.8 - half["data"], 0.8 + half["data"]))

    text = render(_table(), ["accuracy"], stat=ReportSpec(compare="teacher=data", interval="ci95"))
    lines = text.splitlines()
    assert lines[0] == "**accuracy: mean ± 95 % CI (t, ddof=1) (n) over seeds**"
    assert lines[2] == "| student | test / data | test / big | test / same |"
    assert (
        lines[4] == f"| MLP | 0.800 ± {half['data']:.3f} (5) | 1.002 ± {half['big']:.3f} (5) ▲ | 0.798 ± {half['same']:.3f} (5) |"
    )
    assert "Welch's t-test (scipy.stats.ttest_ind, equal_var=False): 2" in text
    assert "α = 0.05, Holm-corrected over the table's 2 comparisons; n = 5 vs 5 (cell vs reference)" in text


def test_paired_where_the_units_share_their_streams_else_welch():
    # against "big": "same" (a student, same streams) is paired, "data" (other streams) is Welch's
    out = _csv(_table(), compare="teacher=big").set_index("teacher")
    assert out.loc["same", "test"] == "paired" and out.loc["same", "n_pairs"] == 5
    assert out.loc["same", "p"] == pytest.approx(scipy.stats.ttest_rel(VALUES["same"], VALUES["big"]).pvalue)
    assert out.loc["data", "test"] == "welch" and out.loc["data", "n_pairs"] == 0
    # the pairing is read from the results, not assumed: other streams, and the same students are unpaired
    moved = _table().assign(init_seed=lambda d: np.where(d.teacher == "same", d.init_seed + 7, d.init_seed))
    assert _csv(moved, compare="teacher=big").set_index("teacher").loc["same", "test"] == "welch"
    unknown = _table().drop(columns=["init_seed", "data_seed"])  # results without stream seeds pair nothing
    assert set(_csv(unknown, compare="teacher=big").test.dropna()) == {"welch"}


def test_test_paired_where_the_design_is_unpaired_is_one_line():
    with pytest.raises(KdtuneError) as e:
        render(_table(), ["accuracy"], stat=ReportSpec(compare="teacher=data", test="paired"))
    assert "--test paired" in str(e.value) and "are not paired (different random streams)" in str(e.value)
    assert "the same initialisation (architecture and seed) or the same folds" in str(e.value) and "\n" not in str(e.value)


def test_bootstrap_and_permutation_on_request_reproducible_with_their_seed():
    boot = _csv(_table(), compare="teacher=data", test="bootstrap", seed=3)
    assert boot.equals(_csv(_table(), compare="teacher=data", test="bootstrap", seed=3))
    assert set(boot.test.dropna()) == {"bootstrap"}
    perm = _csv(_table(), compare="teacher=data", test="permutation").set_index("teacher")
    assert perm.loc["big", "p"] < 0.05 < perm.loc["same", "p"]
    text = render(_table(), ["accuracy"], stat=ReportSpec(compare="teacher=data", test="bootstrap", seed=3))
    assert "BCa bootstrap of the mean difference (scipy.stats.bootstrap), 9999 resamples, seed 3" in text


def test_cells_with_fewer_than_two_units_are_never_marked():
    df = _table({"data": BASE, "big": [1.0, 1.0, 1.0, 1.0, 1.0]}, seeds_of={"big": 1})  # one model: 1.0, far above
    text = render(df, ["accuracy"], stat=ReportSpec(compare="teacher=data", bold="significant"))
    assert "| MLP | 0.800 ± 0.079 (5) | 1.000 (1) |" in text  # no ▲ for the single model
    assert "1 cell(s) not tested, never marked: n < 2 on one side" in text
    assert "no test (nothing to compare)" in text and "over the table's 0 comparisons; the CSV" in text  # no empty n =
    by_teacher = render(df, ["accuracy"], rows=["teacher"], cols=["eval_set"], stat=ReportSpec(bold="significant"))
    assert "| big | 1.000 (1) |" in by_teacher and "**" not in by_teacher.split("\n", 1)[1]  # best of the column: n = 1
    assert "1 column(s) without bold: their best cell has n < 2" in by_teacher
    out = _csv(df, compare="teacher=data").set_index("teacher")
    assert pd.isna(out.loc["big", "p"]) and out.loc["big", "n_ref"] == 5


def _students(values: dict[str, list[float]]) -> pd.DataFrame:
    """Students X, Y, Z of one teacher (one column), their seeds sharing streams."""
    rows = []
    for student, accs in values.items():
        for seed, acc in enumerate(accs):
            rows.append(
                dict(student=student, teacher="CNN", eval_set="test", seed=seed, init_seed=seed, data_seed=seed, status="ok")
                | {"accuracy": acc, "ece": 1 - acc}
            )
    return pd.DataFrame(rows)


def test_bold_significant_marks_a_tie_inside_the_noise_and_follows_the_metric_direction():
    df = _students({"X": [0.90, 0.80, 0.95], "Y": [0.89, 0.82, 0.93], "Z": [0.60, 0.50, 0.65]})
    text = render(df, ["accuracy", "ece"], stat=ReportSpec(bold="significant"))
    acc, ece = text.split("**ece")
    assert "| X | **0.883 ± 0.076 (3)** |" in acc and "| Y | **0.880 ± 0.056 (3)** |" in acc  # Y: within the noise
    assert "| Z | 0.583 ± 0.076 (3) |" in acc and "<u>" not in text
    assert "higher is better for accuracy" in acc and "lower is better for ece" in ece
    assert "| X | **0.117 ± 0.076 (3)** |" in ece and "| Z | 0.417 ± 0.076 (3) |" in ece  # lower ece is better
    # X, Y, Z are other models at the same seeds (no shared initialisation is known): Welch, not paired
    assert "Welch's t-test" in acc and "Holm-corrected over the table's 2 comparisons" in acc
    assert "bold: the best cell of each column (eval_set × teacher)" in acc and "cannot decide" not in text
    latex = render(df, ["accuracy"], "latex", stat=ReportSpec(bold="significant"))
    assert r"X & \bfseries 0.883{${}\pm{}$0.076 (3)} \\" in latex and r"Y & \bfseries 0.880{" in latex


def test_bold_best_marks_the_best_mean_and_underlines_the_second_without_a_test():
    df = _students({"X": [0.90, 0.80, 0.95], "Y": [0.89, 0.82, 0.93], "Z": [0.60, 0.50, 0.65]})  # means .883 .880 .583
    text = render(df, ["accuracy", "ece"], stat=ReportSpec(bold="best"))
    acc, ece = text.split("**ece")
    assert "| X | **0.883 ± 0.076 (3)** |" in acc and "| Y | <u>0.880 ± 0.056 (3)</u> |" in acc
    assert "| Z | 0.583 ± 0.076 (3) |" in acc
    assert "| X | **0.117 ± 0.076 (3)** |" in ece and "| Y | <u>0.120 ± 0.056 (3)</u> |" in ece  # lower ece is better
    assert "bold: the best mean of each column (eval_set × teacher), higher is better for accuracy; underlined: the " \
           "second best; by the means alone, no test" in acc  # fmt: skip
    assert "t-test" not in text and "±: " not in text  # nothing tested, ± still the std
    out = _csv(df, bold="best").set_index("student")
    assert out["bold"].tolist() == [True, False, False] and out["underline"].tolist() == [False, True, False]
    latex = render(df, ["accuracy"], "latex", stat=ReportSpec(bold="best"))
    assert r"X & \bfseries 0.883{${}\pm{}$0.076 (3)} \\" in latex
    assert r"Y & 0.880{\llap{\underline{\phantom{$0.880$}}}${}\pm{}$0.056 (3)} \\" in latex


def test_bold_significant_says_when_the_test_cannot_decide_at_n_2():
    """Two seeds a student, three students a column (other models at the same seeds: Welch's t-test, not paired):
    at α/2 it finds, with 80 % power, only differences of more than 8 std (stats.detectable), so 'not significantly
    worse' would hold for nearly all: only the best mean is bold and the note says why, instead of bolding every cell."""
    df = _students({"X": [0.90, 0.80], "Y": [0.89, 0.82], "Z": [0.60, 0.50]})
    text = render(df, ["accuracy"], stat=ReportSpec(bold="significant"))
    floor = stats.detectable(2, 2, paired=False, alpha=0.05 / 2)
    assert 5 < floor < 10
    assert "| Y | **0.855 ± 0.049 (2)** |" in text and text.count("**0.") == 1  # one bold cell (Y: .855), not three
    assert (f"bold: the best mean alone in 1 column(s): at n = 2 vs 2 the test cannot decide (at α = 0.025, the first "
            f"step of the correction over the table, it finds only differences above {floor:.3g} std of the units with "
            "80 % power; kdtune asks for 5 std)") in text  # fmt: skip
    perm = render(df, ["accuracy"], stat=ReportSpec(bold="significant", test="permutation"))
    assert "it finds nothing there with 80 % power" in perm  # 4 sign flips: the smallest p is 0.5


def test_detectable_is_the_difference_a_t_test_finds_with_80_percent_power():
    """By simulation: normal units a difference of ``detectable`` std apart are found (p < α) in 80 % of tables."""
    rng = np.random.default_rng(0)
    for n, paired, alpha in [(4, True, 0.05), (5, False, 0.01)]:
        d = stats.detectable(n, n, paired=paired, alpha=alpha)
        a = rng.normal(d, 1, (20000, n))
        b = rng.normal(0, 1, (20000, n)) if not paired else np.zeros((20000, n))  # paired: the differences' std is 1
        p = scipy.stats.ttest_rel(a, b, axis=1).pvalue if paired else scipy.stats.ttest_ind(a, b, axis=1).pvalue
        assert np.mean(p < alpha) == pytest.approx(0.8, abs=0.015)
    assert stats.detectable(1, 5, paired=False, alpha=0.05) == float("inf")
    assert stats.detectable(3, 3, paired=False, alpha=0.05, test="permutation") == float("inf")  # min p 2/20 = 0.1


def test_shared_baselines_are_the_reference_under_every_temperature():
    df = _table()
    df["temperature"] = np.where(df.teacher == "data", np.nan, 4.0)
    extra = df[df.teacher == "big"].assign(temperature=1.0, accuracy=lambda d: d.accuracy - 0.15)
    df = pd.concat([df, extra], ignore_index=True)
    out = _csv(df, compare="teacher=data")
    big = out[out.teacher == "big"].set_index("temperature")
    assert big.loc[4.0, "p_adjusted"] < 0.05 < big.loc[1.0, "p_adjusted"]  # each against the one baseline
    assert (out.teacher == "data").sum() == 1  # the baseline once in the CSV, its temperature empty
    text = render(df, ["accuracy"], cols=["temperature", "teacher"], stat=ReportSpec(compare="teacher=data"))
    assert "the same models appear under every temperature" in text and "▲" in text


def test_latex_markers_and_notes():
    text = render(_table(), ["accuracy"], "latex", stat=ReportSpec(compare="teacher=data", interval="ci95"))
    assert r"1.002{${}\pm{}$0.113 (5)$^{\blacktriangle}$}" in text
    assert text.startswith(r"% needs \usepackage{booktabs, siunitx, array, amssymb}")
    assert r"$^{\blacktriangle}$/$^{\blacktriangledown}$: significantly higher/lower than the cell of teacher = data" in text


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"compare": "teacher"}, "--compare takes KEY=VALUE, e.g. teacher=data; got 'teacher'"),
        ({"compare": "teachr=data"}, "unknown compare key 'teachr'; valid keys: student, teacher"),
        ({"compare": "teacher=dat"}, "no cell with teacher = 'dat' in this table; its values of teacher: data, big, same"),
        ({"compare": "student=MLP"}, "compare key 'student' is a row key; it must be one of the column keys (eval_set, teacher)"),
        ({"compare": "temperature=4"}, "compare key 'temperature' is not a column key"),
        ({"interval": "ci99"}, "unknown interval 'ci99'; one of std, se, ci95"),
        ({"test": "wilcoxon"}, "unknown test 'wilcoxon'; one of auto, paired, welch, bootstrap, permutation"),
    ],
)
def test_bad_input_is_one_line(kw, words):
    with pytest.raises(KdtuneError) as e:
        render(_table(), ["accuracy"], stat=ReportSpec(**kw))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_without_the_new_options_the_table_is_unchanged():
    plain = render(_table(), ["accuracy"])
    assert plain.splitlines()[0] == "**accuracy: mean ± std (n) over seeds**" and "▲" not in plain and "α" not in plain
    assert render(_table(), ["accuracy"], "csv").splitlines()[0] == "student,eval_set,teacher,mean,std,n,n_expected,metric"


@needs_pdflatex
def test_the_latex_table_compiles_with_pdflatex(tmp_path):
    df = _table()
    df["teacher"] = df["teacher"].replace({"big": "CNN_big", "same": "MLP & co"})  # characters LaTeX must escape
    table = render(df, ["accuracy", "ece"], "latex", stat=ReportSpec(compare="teacher=data", interval="ci95", bold="best"))
    compile_latex(table, tmp_path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny sweep run inline: MLP students of a CNN teacher and from data, 2 seeds; its sweep file asks for s.e."""
    import copy

    from kdtune.plan import make_plan
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import write_sweep_record
    from kdtune.spec.sweepfile import parse_sweep
    from tests.conftest import TINY

    raw = copy.deepcopy(TINY)
    raw["report"] = {"interval": "se", "correction": "bonferroni"}
    out = tmp_path_factory.mktemp("stats") / "run"
    plan = make_plan(parse_sweep(raw, "tiny.yaml", output=out))
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    return out


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    from kdtune.cli import main

    rc = main(["report", *argv])
    got = capsys.readouterr()
    return rc, got.out, got.err


def test_cli_compare_reads_the_sweeps_report_section_and_its_flags(tiny_run, capsys):
    rc, out, _ = _main(capsys, str(tiny_run), "--metric", "accuracy", "--compare", "teacher=data")
    assert rc == 0 and "**accuracy: mean ± s.e. (ddof=1) (n) over seeds**" in out  # report.interval: se
    assert "Bonferroni-corrected" in out and "Welch's t-test" in out  # students and baselines: other streams
    rc, out, _ = _main(capsys, str(tiny_run), "--metric", "accuracy", "--compare", "teacher=data", "--interval", "ci95",
                       "--correction", "holm", "--format", "csv")  # fmt: skip
    header = out.splitlines()[0].split(",")
    assert rc == 0 and header[-11:] == ["ci95_lo", "ci95_hi", *COMPARE, "metric"]


COMPARE = ["diff", "diff_lo", "diff_hi", "p", "p_adjusted", "test", "n_pairs", "n_ref"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--compare", "teacher=data", "--test", "paired"], "--test paired: the cells"),
        (["--compare", "student=MLP"], "compare key 'student' is a row key"),
        (["--compare", "teacher=ResNet"], "no cell with teacher = 'ResNet' in this table; its values of teacher: data, CNN"),
        (["--compare", "teacher"], "--compare takes KEY=VALUE"),
        (["--alpha", "5"], "alpha must be between 0 and 1"),
    ],
)
def test_cli_bad_input_is_one_line(tiny_run, capsys, argv, words):
    rc, out, err = _main(capsys, str(tiny_run), "--metric", "accuracy", *argv)
    lines = [line for line in err.splitlines() if line.startswith("kdtune: error:")]
    assert rc == 2 and out == "" and len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err


def test_cli_an_unknown_compare_key_is_refused_before_reading_the_run_folder(tmp_path, capsys):
    rc, _, err = _main(capsys, str(tmp_path / "nowhere"), "--compare", "teachr=data")
    assert rc == 2 and "unknown compare key 'teachr'; valid keys: student, teacher" in err


def test_the_sweeps_report_section_takes_the_statistics():
    from kdtune.errors import SpecError
    from kdtune.results.tables import parse_report

    r = parse_report({"interval": "ci95", "compare": "teacher=data", "test": "welch", "bold": "best", "alpha": 0.01}, "s.yaml")
    assert (r.interval, r.compare, r.test, r.bold, r.alpha, r.correction, r.seed) == (
        "ci95", "teacher=data", "welch", "best", 0.01, "holm", 0,
    )  # fmt: skip
    for raw, words in [
        ({"interval": "ci90"}, "s.yaml: report.interval: must be one of std, se, ci95; got 'ci90'"),
        ({"compare": "teacher"}, "s.yaml: report.compare: must be KEY=VALUE, e.g. teacher=data; got 'teacher'"),
        ({"compare": "techer=data"}, "s.yaml: report.compare: unknown compare key 'techer'"),
        ({"alpha": 1}, "s.yaml: report.alpha: must be a number > 0 and < 1"),
    ]:
        with pytest.raises(SpecError) as e:
            parse_report(raw, "s.yaml")
        assert str(e.value).startswith(words) and "\n" not in str(e.value)
