"""Claims as checkable statements (kdtune.repro.claims): the grammar, its one-line errors, and verdicts on made-up
results whose tests are computed here with scipy.stats itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from kdtune.errors import KdtuneError
from kdtune.repro.claims import (
    CHECKS,
    CONTRADICTED,
    EXPLORATORY,
    HOLDS,
    NOT_SIGNIFICANT,
    PRIMARY,
    SETUP,
    UNTESTABLE,
    Cell,
    Checker,
    Claim,
    Evidence,
    deciding_p,
    evaluate,
    link_ids,
    parse_check,
)
from kdtune.results import stats
from kdtune.results.tables import SETTINGS

# four models per cell (seeds 0-3); the values are chosen so the verdicts are known
CELLS = {
    ("MLP", "data"): [0.30, 0.31, 0.29, 0.32],
    ("MLP", "CNN"): [0.50, 0.52, 0.49, 0.51],  # far above MLP from data: holds
    ("MLP", "MLP"): [0.20, 0.21, 0.19, 0.22],  # far below: "MLP ← MLP > MLP" is contradicted
    ("CNN", "data"): [0.305, 0.30, 0.33, 0.29],  # the same as MLP from data within noise: not significant
    ("CNN", "CNN"): [0.40, 0.90, 0.10, 0.60],  # a wide spread
}


def results(cells=CELLS, paired_streams: bool = False) -> pd.DataFrame:
    rows = []
    for (student, teacher), values in cells.items():
        for seed, v in enumerate(values):
            tid = f"{student}-{teacher}-{seed}"
            init = seed if paired_streams else hash((student, teacher, seed)) % 1000
            rows.append(
                {
                    "trial_id": tid,
                    "student": student,
                    "teacher": teacher,
                    "eval_set": "translated",
                    "seed": seed,
                    "fold": None,
                    "init_seed": init,
                    "data_seed": init,
                    "temperature": None if teacher == "data" else 5.0,
                    "status": "ok",
                    "accuracy": v,
                    "sweep": "made_up",
                }
            )
    return pd.DataFrame(rows)


def verdicts(checks: list[str], df: pd.DataFrame | None = None, **kw):
    ev = Evidence(results() if df is None else df, None, SETTINGS)
    claims = [Claim(f"c{i}", parse_check(c)) for i, c in enumerate(checks)]
    return evaluate(claims, ev, **kw)


def acc(student: str, teacher: str) -> str:
    return f"accuracy[student={student}, teacher={teacher}, eval_set=translated]"


def test_the_grammar_parses_cells_sources_coefficients_chains_and_margins():
    c = parse_check(f"{acc('MLP', 'CNN')} > 0.5*{acc('CNN', 'data')} + 0.5 * {acc('MLP', 'data')} - 0.01")
    assert c.ops == (">",)
    left, right = c.sides
    assert left.plain == Cell("report", "accuracy", (("student", "MLP"), ("teacher", "CNN"), ("eval_set", "translated")))
    assert [t.coef for t in right.terms] == [0.5, 0.5, -0.01] and right.terms[2].cell is None
    chain = parse_check(f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')} > {acc('MLP', 'MLP')}")
    assert chain.ops == (">", ">") and len(chain.links) == 2
    eq = parse_check(f"{acc('MLP', 'data')} ~ {acc('CNN', 'data')} within 0.02")
    assert eq.ops == ("≈",) and eq.margin == 0.02
    assert parse_check(f"{acc('MLP', 'data')} >= 0.25").ops == (">",)  # >= is read as >
    sim = parse_check("similarity.value[group=MLP ← CNN, column=CNN (data)] > 0.5")
    assert sim.sides[0].plain == Cell("similarity", "value", (("group", "MLP ← CNN"), ("column", "CNN (data)")))
    spread = parse_check(f"std({acc('CNN', 'data')}) < std({acc('MLP', 'data')})")
    assert spread.sides[0].terms[0].spread


@pytest.mark.parametrize(
    ("check", "says"),
    [
        ("", "empty check"),
        ("accuracy[student=MLP] >", "ends early"),
        ("accuracy[student=MLP] 0.5", "unexpected '0.5'"),
        ("accuracy[student=MLP]", "no comparison"),
        ("acc[student=MLP] > 1", "unknown metric 'acc'"),
        ("accuracy[studnt=MLP] > 1", "unknown key 'studnt'"),
        ("accuracy[student=MLP, student=CNN] > 1", "key 'student' twice"),
        ("accuracy[student] > 1", "each key is KEY=VALUE"),
        ("accuracy[student=MLP > 1", "without ']'"),
        ("accuracy > 1", "without [key=value"),
        ("nosuch.value[group=a] > 1", "unknown source 'nosuch'"),
        ("accuracy[student=MLP] ≈ accuracy[student=CNN]", "≈ without a margin"),
        ("accuracy[student=MLP] > accuracy[student=CNN] within 0.1", "'within' without ≈"),
        ("accuracy[student=MLP] ≈ accuracy[student=CNN] within -0.1", "'within' without a number"),
        ("accuracy[student=MLP] ≈ accuracy[student=CNN] within 0", "must be positive"),
        ("accuracy[student=MLP] > accuracy[student=CNN] < accuracy[student=LSTM]", "mixing > and <"),
        ("std(accuracy[student=MLP]) > 1", "std() mixed"),
        ("1 > 0.5", "no cell"),
        ("accuracy[student=MLP] > 0.5 > accuracy[student=CNN]", "a number inside a chain"),
        ("accuracy[student=MLP] > accuracy[student=CNN] $", "unexpected '$'"),
    ],
)
def test_a_malformed_check_is_one_line_naming_the_problem(check, says):
    with pytest.raises(KdtuneError) as e:
        parse_check(check, "ref.yaml: tables.t: claim x")
    message = str(e.value)
    assert "\n" not in message and says in message and message.startswith("ref.yaml: tables.t: claim x: ")


def test_known_verdicts_holds_contradicted_not_significant_untestable():
    v = verdicts(
        [
            f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}",  # holds
            f"{acc('MLP', 'MLP')} > {acc('MLP', 'data')}",  # contradicted: significantly lower
            f"{acc('CNN', 'data')} > {acc('MLP', 'data')}",  # not significant
            f"{acc('LSTM', 'data')} > {acc('MLP', 'data')}",  # untestable: no LSTM
        ]
    )
    assert [x.verdict for x in v] == [HOLDS, CONTRADICTED, NOT_SIGNIFICANT, UNTESTABLE]
    assert "no student=LSTM" in v[3].links[0].why and "MLP, CNN" in v[3].links[0].why
    # the p-values are Welch's t-test (the streams differ), Holm-adjusted over the family's 4 tests: the untestable
    # one counts as p = 1, so a missing cell never shrinks the correction of the others
    raw = [
        scipy.stats.ttest_ind(CELLS[a], CELLS[b], equal_var=False).pvalue
        for a, b in ((("MLP", "CNN"), ("MLP", "data")), (("MLP", "MLP"), ("MLP", "data")), (("CNN", "data"), ("MLP", "data")))
    ]
    assert [x.links[0].p for x in v[:3]] == pytest.approx(raw)
    assert [x.links[0].p_adjusted for x in v[:3]] == pytest.approx(list(stats.adjust([*raw, 1.0], "holm")[:3]))
    assert v[0].links[0].test == "welch" and v[0].links[0].n == "4 vs 4"
    assert v[0].links[0].estimate == pytest.approx(np.mean(CELLS[("MLP", "CNN")]) - np.mean(CELLS[("MLP", "data")]))


def test_shared_streams_are_tested_paired():
    v = verdicts([f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"], results(paired_streams=True))
    link = v[0].links[0]
    assert link.test == "paired"
    assert link.p == pytest.approx(scipy.stats.ttest_rel(CELLS[("MLP", "CNN")], CELLS[("MLP", "data")]).pvalue)


def test_a_chain_holds_only_when_every_link_holds():
    v = verdicts(
        [
            f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')} > {acc('MLP', 'MLP')}",
            f"{acc('MLP', 'CNN')} > {acc('CNN', 'data')} > {acc('MLP', 'data')}",  # second link not significant
            f"{acc('MLP', 'CNN')} > {acc('MLP', 'MLP')} > {acc('MLP', 'data')}",  # second link contradicted
        ]
    )
    assert [x.verdict for x in v] == [HOLDS, NOT_SIGNIFICANT, CONTRADICTED]
    assert [len(x.links) for x in v] == [2, 2, 2]


def test_equivalence_is_tost_with_the_margin():
    a, b = CELLS[("CNN", "data")], CELLS[("MLP", "data")]
    v = verdicts(
        [
            f"{acc('CNN', 'data')} ≈ {acc('MLP', 'data')} within 0.05",  # inside ±0.05: holds
            f"{acc('MLP', 'CNN')} ≈ {acc('MLP', 'data')} within 0.05",  # 0.2 apart: beyond the margin
            f"{acc('CNN', 'data')} ≈ {acc('MLP', 'data')} within 0.001",  # too narrow to show either
        ],
        correction="none",
    )
    assert [x.verdict for x in v] == [HOLDS, CONTRADICTED, NOT_SIGNIFICANT]
    # TOST by hand: the larger of the two one-sided Welch tests against ±margin
    lower = scipy.stats.ttest_ind(np.add(a, 0.05), b, equal_var=False, alternative="greater").pvalue
    upper = scipy.stats.ttest_ind(np.subtract(a, 0.05), b, equal_var=False, alternative="less").pvalue
    assert v[0].links[0].p == pytest.approx(max(lower, upper))


def test_a_linear_contrast_and_a_constant():
    # "recovered at least half of the gap": MLP ← CNN > (MLP data + MLP ← CNN)/2 … against the halfway point
    v = verdicts(
        [
            f"{acc('MLP', 'CNN')} > 0.5*{acc('MLP', 'data')} + 0.5*{acc('MLP', 'MLP')}",
            f"{acc('MLP', 'data')} > 0.29",
        ],
        correction="none",
    )
    assert v[0].verdict == HOLDS and v[0].links[0].test == "contrast"
    x, y, z = (np.array(CELLS[k]) for k in (("MLP", "CNN"), ("MLP", "data"), ("MLP", "MLP")))
    assert v[0].links[0].estimate == pytest.approx(x.mean() - 0.5 * y.mean() - 0.5 * z.mean())
    one = scipy.stats.ttest_1samp(y, 0.29)  # one cell against a constant is the one-sample t-test
    assert v[1].links[0].p == pytest.approx(one.pvalue)
    # two cells with ±1 is Welch's t-test (stats.contrast against scipy)
    c = stats.contrast([x, y], [1, -1])
    assert c.p == pytest.approx(scipy.stats.ttest_ind(x, y, equal_var=False).pvalue)


def test_spreads_are_compared_by_permuting_centred_units():
    v = verdicts([f"std({acc('MLP', 'data')}) < std({acc('CNN', 'CNN')})"], correction="none")
    link = v[0].links[0]
    s = stats.spread_test(CELLS[("MLP", "data")], CELLS[("CNN", "CNN")])
    assert link.test == "spread" and link.p == pytest.approx(s.p) and link.ratio
    assert link.estimate == pytest.approx(np.std(CELLS[("MLP", "data")], ddof=1) / np.std(CELLS[("CNN", "CNN")], ddof=1))
    assert v[0].verdict == (HOLDS if s.p < 0.05 else NOT_SIGNIFICANT)
    two = results({k: vals[:2] for k, vals in CELLS.items()})  # 2 vs 2: no relabelling can reach α
    v = verdicts([f"std({acc('MLP', 'data')}) < std({acc('CNN', 'CNN')})"], two)
    assert v[0].verdict == UNTESTABLE and "no relabelling can reach" in v[0].links[0].why


def test_a_cell_that_pools_configurations_or_lacks_units_is_untestable():
    df = results()
    other = df[(df["student"] == "MLP") & (df["teacher"] == "CNN")].assign(
        temperature=8.0, trial_id=lambda d: d["trial_id"] + "t8"
    )
    v = verdicts([f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"], pd.concat([df, other]))
    assert v[0].verdict == UNTESTABLE and "temperature: 5, 8" in v[0].links[0].why
    one = df[~((df["student"] == "MLP") & (df["teacher"] == "CNN") & (df["seed"] > 0))]
    v = verdicts([f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"], one)
    assert v[0].verdict == UNTESTABLE and "n = 1" in v[0].links[0].why
    two_sweeps = df.assign(sweep=np.where(df["seed"] < 2, "a", "a,b"))  # trials shared by sweeps a and b: one cell
    assert verdicts([f"{acc('MLP', 'data')} > 0.1"], two_sweeps)[0].links[0].n == "4"
    two_sweeps = df.assign(sweep=np.where(df["seed"] < 2, "a", "b"))  # the same labels in two sweeps: never pooled
    v = verdicts([f"{acc('MLP', 'data')} > 0.1"], two_sweeps)
    assert v[0].verdict == UNTESTABLE and "different sweeps (a, b); name one with sweep=NAME" in v[0].links[0].why
    v = verdicts(["accuracy[student=MLP, teacher=data, eval_set=translated, sweep=b] > 0.1"], two_sweeps)
    assert v[0].links[0].n == "2"


def test_unfinished_models_do_not_count_as_units():
    df = results()
    df.loc[(df["student"] == "MLP") & (df["teacher"] == "CNN") & (df["seed"] >= 2), "status"] = "failed"
    v = verdicts([f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"], df)
    assert v[0].links[0].n == "2 vs 4"


def test_pair_sources_read_their_pair_tables_and_permute_model_labels(tmp_path):
    folder = tmp_path / "run" / "analysis" / "similarity"
    folder.mkdir(parents=True)
    groups = {"MLP ← CNN": 0.61, "MLP (data)": 0.52, "CNN (data)": 0.9}
    models = [(g, f"{g} s{i}") for g in groups for i in range(5)]
    rng = np.random.default_rng(0)
    rows = []
    for ga, a in models:
        for gb, b in models:
            if a != b:
                pair = {ga, gb} - {"CNN (data)"}
                value = groups[pair.pop()] if len(pair) == 1 and "CNN (data)" in (ga, gb) else 0.4
                rows.append({"trial1": a, "trial2": b, "group1": ga, "group2": gb, "similarity": value + rng.normal(0, 0.005),
                             "within": True, "between": True})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "pairs.csv", index=False)
    ev = Evidence(results(), tmp_path / "run", SETTINGS)
    check = "similarity.value[group=MLP ← CNN, column=CNN (data)] > similarity.value[group=MLP (data), column=CNN (data)]"
    claims = [Claim("sim", parse_check(check)), Claim("cka", parse_check("cka.value[group=MLP ← CNN, column=CNN (data)] > 0"))]
    sim, cka = evaluate(claims, ev, correction="none")
    link = sim.links[0]
    assert sim.verdict == HOLDS and link.test == "pairs" and link.n == "5×5 models vs 5×5 models"
    assert link.p == pytest.approx(2 / 252)  # 5 vs 5 models: the observed labelling and its mirror are the extremes
    assert {r["side"] for r in link.units} == {"cell1", "cell2"} and len([r for r in link.units if r["side"] != "pool"]) == 50
    assert cka.verdict == UNTESTABLE and "has no cka" in cka.links[0].why


def test_evidence_restricted_to_a_tables_sweeps():
    df = pd.concat([results().assign(sweep="rows_a"), results().assign(sweep="rows_b", trial_id=lambda d: d["trial_id"] + "b")])
    ev = Evidence(df, None, SETTINGS)
    assert verdicts([f"{acc('MLP', 'data')} > 0.1"], df)[0].verdict == UNTESTABLE  # two sweeps, one label: never pooled
    only_a, used = ev.restricted(["rows_a", "not_run"])
    assert used == ["rows_a"] and set(only_a.df["sweep"]) == {"rows_a"}
    v = evaluate([Claim("x", parse_check(f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"))], only_a)
    assert v[0].verdict == HOLDS
    same, used = ev.restricted(["elsewhere"])  # none of the table's sweeps here: all of it, and it says so
    assert same is ev and used == []


def test_one_comparison_under_two_claim_ids_is_one_test_with_one_verdict():
    same = "accuracy[eval_set=translated, teacher=CNN, student=MLP] > accuracy[student=MLP, teacher=data, eval_set=translated]"
    flipped = f"{acc('MLP', 'data')} < {acc('MLP', 'CNN')}"  # the same comparison, written the other way round
    claims = [
        Claim("improves", parse_check(f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"), ref="t6/improves"),
        Claim("fewer-errors", parse_check(same), ref="e/fewer-errors"),
        Claim("flipped", parse_check(flipped), ref="e/flipped"),
        Claim("other", parse_check(f"{acc('MLP', 'MLP')} > {acc('MLP', 'data')}"), ref="t6/other"),
    ]
    checker = Checker()
    v = [checker.add(c, Evidence(results(), None, SETTINGS)) for c in claims]
    families = checker.finish()
    assert v[0].links[0] is v[1].links[0] is v[2].links[0]
    assert link_ids(v[0].links[0]) == ["t6/improves", "e/fewer-errors", "e/flipped"]
    assert [x.same_as for x in v] == ["", "t6/improves", "t6/improves", ""]
    assert len(families[EXPLORATORY].links) == 2  # two tests, not four: the correction counts each once
    assert v[0].verdict == v[1].verdict == v[2].verdict == HOLDS


def test_primary_claims_are_their_own_family_and_the_note_names_the_untestable():
    claims = [
        Claim("a", parse_check(f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"), ref="t/a"),
        Claim("b", parse_check(f"{acc('LSTM', 'data')} > {acc('MLP', 'data')}"), ref="t/b"),  # untestable
        Claim("c", parse_check(f"{acc('CNN', 'data')} > {acc('MLP', 'data')}"), ref="t/c"),
        Claim("d", parse_check(f"{acc('MLP', 'MLP')} > {acc('MLP', 'data')}"), ref="t/d", kind=SETUP),
    ]
    checker = Checker(primary=["t/a", "t/b"])
    v = [checker.add(c, Evidence(results(), None, SETTINGS)) for c in claims]
    families = checker.finish()
    assert [x.family for x in v] == [PRIMARY, PRIMARY, EXPLORATORY, CHECKS]
    raw = scipy.stats.ttest_ind(CELLS[("MLP", "CNN")], CELLS[("MLP", "data")], equal_var=False).pvalue
    assert v[0].links[0].p_adjusted == pytest.approx(min(1.0, 2 * raw))  # Holm over 2: itself and the untestable (p = 1)
    assert v[2].links[0].p_adjusted == pytest.approx(v[2].links[0].p)  # alone in its family
    note = families[PRIMARY].note(0.05, "holm")
    assert note.startswith("Primary claims") and "Holm over 2 tests (1 performed, 1 untestable counted as p = 1: t/b)" in note
    assert len(families[CHECKS].links) == 1 and v[3].verdict == CONTRADICTED


def test_an_equivalence_is_one_test_of_its_family_and_shows_the_p_that_decided_it():
    claims = [
        Claim("eq", parse_check(f"{acc('MLP', 'CNN')} ≈ {acc('MLP', 'data')} within 0.05")),  # 0.2 apart: beyond
        Claim("x", parse_check(f"{acc('CNN', 'data')} > {acc('MLP', 'data')}")),
    ]
    v = evaluate(claims, Evidence(results(), None, SETTINGS))
    link = v[0].links[0]
    assert link.verdict == CONTRADICTED and link.level == pytest.approx(0.90)
    other = v[1].links[0].p
    assert link.p_beyond_adjusted == pytest.approx(stats.adjust([link.p_beyond, other], "holm")[0])  # over both links
    assert link.p_adjusted == pytest.approx(stats.adjust([link.p, other], "holm")[0])
    assert deciding_p(link) == (link.p_beyond_adjusted, "beyond")


def test_a_chain_as_a_trend_is_one_contrast_with_centred_ranks():
    chain = f"{acc('MLP', 'CNN')} > {acc('CNN', 'data')} > {acc('MLP', 'data')} > {acc('MLP', 'MLP')}"
    v = evaluate([Claim("trend", parse_check(chain), chain="trend")], Evidence(results(), None, SETTINGS))
    link = v[0].links[0]
    cells = [CELLS[k] for k in (("MLP", "CNN"), ("CNN", "data"), ("MLP", "data"), ("MLP", "MLP"))]
    c = stats.contrast(cells, [1.5, 0.5, -0.5, -1.5])
    assert len(v[0].links) == 1 and link.test == "trend" and link.p == pytest.approx(c.p) and v[0].verdict == HOLDS


def test_folds_pair_two_architectures_and_take_the_corrected_test():
    """Five folds of one seed: a student and a model of another architecture share each fold, so they are paired by
    fold (their initialisations differ), and the t-test takes the Nadeau–Bengio correction."""
    rows = []
    for student, base in (("MLP", 0.80), ("CNN", 0.85)):
        for fold in range(5):
            rows.append({"trial_id": f"{student}-{fold}", "student": student, "teacher": "data", "eval_set": "test",
                         "seed": 0, "fold": fold, "init_seed": 0, "data_seed": 0, "status": "ok", "sweep": "s",
                         "accuracy": base + 0.01 * fold + (0.003 if student == "CNN" and fold % 2 else 0.0)})  # fmt: skip
    v = verdicts(["accuracy[student=CNN, teacher=data, eval_set=test] > accuracy[student=MLP, teacher=data, eval_set=test]"],
                 pd.DataFrame(rows))  # fmt: skip
    link = v[0].links[0]
    cnn = np.array([0.85 + 0.01 * f + (0.003 if f % 2 else 0.0) for f in range(5)])
    d = cnn - np.array([0.80 + 0.01 * f for f in range(5)])
    se = np.sqrt(d.var(ddof=1) * (1 / 5 + 1 / 4))
    assert link.test == "paired-folds" and "the same folds" in link.note
    assert link.p == pytest.approx(2 * scipy.stats.t.sf(d.mean() / se, 4))


def test_barrier_claims_read_pairs_permute_within_an_architecture_and_jackknife_across(tmp_path):
    folder = tmp_path / "run" / "analysis" / "barriers"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for model, teachers in (("MLP", ["data", "MLP"]), ("CNN", ["data"])):
        trials = [(t, f"{model}-{t}-{i}") for t in teachers for i in range(3)]
        for i, (t1, a) in enumerate(trials):
            for t2, b in trials[:i]:
                height = {"MLP": 0.05, "CNN": 0.01}[model] + (0.02 if "data" in (t1, t2) else 0.0)
                rows.append({"model": model, "teacher1": t1, "teacher2": t2, "trial1": a, "trial2": b, "same_init": True,
                             "barrier": height + rng.normal(0, 0.002), "accuracy_mid": 0.5})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "pairs.csv", index=False)
    ev = Evidence(results(), tmp_path / "run", SETTINGS)
    cell = "barriers.barrier[model={}, teacher1={}, teacher2={}, same_init=yes]".format
    claims = [
        Claim("within-mlp", parse_check(f"{cell('MLP', 'MLP', 'MLP')} < {cell('MLP', 'data', 'data')}")),
        Claim("mlp-above-cnn", parse_check(f"{cell('MLP', 'data', 'data')} > {cell('CNN', 'data', 'data')}")),
    ]
    within, across = evaluate(claims, ev, correction="none")
    # 3 vs 3 models of one architecture: 20 relabellings, the smallest p 0.1: untestable, and it says so
    assert within.verdict == UNTESTABLE and "20 relabellings" in within.links[0].why
    # an MLP and a CNN share no pair: the permutation cannot relabel across them, the jackknife over models can
    assert across.links[0].test == "pairs-jackknife" and across.verdict == HOLDS
