"""Subject-verb agreement: data sources, generator, masking, µ/D/A accuracy, LM agreement scoring."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from kdtune.errors import DataError, SpecError
from kdtune.spec.sweepfile import freeze, parse_sweep
from kdtune.train import metrics
from kdtune.train.data import DataSpec, EvalSetSpec, load_data
from kdtune.train.data.agreement import NOUNS, SyntheticAgreement
from kdtune.train.data.base import DataInfo, Split
from kdtune.train.data.linzen import TSV_COLUMNS, LinzenSimple, inflect, parse_simple, parse_tsv
from kdtune.train.data.text import Vocabulary, plural_of, singular_of
from kdtune.train.models import build_model
from kdtune.train.tasks import Classification, LanguageModel

TEST = (EvalSetSpec("test"),)


# ---------------------------------------------------------------- Linzen's simple files


def _write_simple(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines) + "\n")


def test_simple_files_parse_labels_prefixes_and_attractors_from_the_file_name(tmp_path):
    d = tmp_path / "agreement" / "linzen_simple"
    _write_simple(d, {
        "numpred.train": ["VBZ\tthe dog", "VBP\tthe dogs near the house", "VBZ\tthe key to the cabinets"] * 4,
        "numpred.test.1": ["VBP\tthe keys to the cabinet", "VBZ\tthe key to the cabinets"],
        "numpred.test.3": ["VBZ\tthe author of the books near the NNS that the dogs"],
    })  # fmt: skip
    items = parse_simple(d / "numpred.test.1", attractors=1)
    assert [(it.words[: it.verb_index], it.number, it.attractors) for it in items] == [
        (["the", "keys", "to", "the", "cabinet"], 1, 1),
        (["the", "key", "to", "the", "cabinets"], 0, 1),
    ]
    spec = DataSpec("linzen_simple", freeze({"folder": "agreement/linzen_simple"}), val_size=2, eval_sets=TEST)
    b = load_data(spec, tmp_path)
    test = b.evals["test"]
    assert sorted(test.meta["attractors"].tolist()) == [1, 1, 3]
    assert (test.meta["distance"] == -1).all()  # not in these files
    assert len(b.train) == 10 and len(b.val) == 2 and b.info.num_classes == 2


def test_simple_file_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "numpred.test.2"
    p.write_text("VBZ\tthe dog\nVBX\tthe cats\n")
    with pytest.raises(DataError, match=r"numpred\.test\.2:2: expected 'VBZ' or 'VBP', a tab"):
        parse_simple(p)
    p.write_text("VBZ the dog without a tab\n")
    with pytest.raises(DataError, match=r"numpred\.test\.2:1: expected"):
        parse_simple(p)
    p.write_text("VBZ\t   \n")
    with pytest.raises(DataError, match=r"numpred\.test\.2:1: empty sentence prefix"):
        parse_simple(p)


def test_simple_missing_files_are_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        LinzenSimple().check(tmp_path)
    (tmp_path / "agreement" / "linzen_simple").mkdir(parents=True)
    with pytest.raises(DataError, match=r"numpred\.train: no such file"):
        LinzenSimple().check(tmp_path)


@pytest.mark.skipif(not (__import__("tests.conftest").conftest.SHARED_DATA / "agreement").is_dir(), reason="needs ../shared/data")
def test_real_simple_files_have_the_documented_sizes():
    from tests.conftest import SHARED_DATA

    d = SHARED_DATA / "agreement" / "linzen_simple"
    assert [len(parse_simple(d / f"numpred.test.{n}")) for n in range(1, 6)] == [52599, 9380, 2051, 561, 159]
    assert len(parse_simple(d / "numpred.val")) == 15772


# ---------------------------------------------------------------- Linzen's original TSV


def _tsv_row(sentence, verb_pos, subj_index, verb_index, distance, n_diff):
    row = dict.fromkeys(TSV_COLUMNS, "x")
    tags = ["DT"] * len(sentence.split())
    if isinstance(verb_index, int) and verb_index <= len(tags):
        tags[verb_index - 1] = verb_pos
    row |= {"sentence": sentence, "pos_sentence": " ".join(tags), "verb_pos": verb_pos, "subj_index": str(subj_index),
            "verb_index": str(verb_index), "distance": str(distance), "n_diff_intervening": str(n_diff)}  # fmt: skip
    return "\t".join(row[c] for c in TSV_COLUMNS)


def test_tsv_parses_one_based_indices_distance_attractors_and_verb_forms(tmp_path):
    p = tmp_path / "agr.tsv"
    p.write_text("\n".join([
        "\t".join(TSV_COLUMNS),
        _tsv_row("the keys to the cabinet are here", "VBP", 2, 6, 4, 1),
        _tsv_row("the dog runs", "VBZ", 2, 3, 1, 0),
    ]) + "\n")  # fmt: skip
    (a, _), (b, _) = parse_tsv(p)
    assert a.words[: a.verb_index] == ["the", "keys", "to", "the", "cabinet"] and a.words[a.verb_index] == "are"
    assert (a.number, a.distance, a.attractors) == (1, 4, 1)
    # verb forms pair up only when both were seen with their tags in the training sentences
    inflect([a, b], [(["it", "is"], ["PRP", "VBZ"]), (["they", "are", "runs"], ["PRP", "VBP", "VBZ"])])
    assert (a.singular, a.plural) == ("is", "are")
    assert (b.singular, b.plural) == ("", "")  # "run" was never seen as VBP


@pytest.mark.parametrize(
    "line,message",
    [
        ("only\tthree\tcolumns", r"agr\.tsv:2: expected 18 tab-separated columns, got 3"),
        (_tsv_row("the dog runs", "VBD", 2, 3, 1, 0), r"agr\.tsv:2: verb_pos must be VBZ or VBP, got 'VBD'"),
        (_tsv_row("the dog runs", "VBZ", 2, 9, 1, 0), r"agr\.tsv:2: subj_index 2 and verb_index 9 do not fit a 3-word sentence"),
        (_tsv_row("the dog runs", "VBZ", "two", 3, 1, 0), r"agr\.tsv:2: subj_index, verb_index, distance"),
    ],
)
def test_tsv_malformed_lines_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "agr.tsv"
    p.write_text("\t".join(TSV_COLUMNS) + "\n" + line + "\n")
    with pytest.raises(DataError, match=message):
        parse_tsv(p)


def test_tsv_without_its_header_is_rejected(tmp_path):
    p = tmp_path / "agr.tsv"
    p.write_text(_tsv_row("the dog runs", "VBZ", 2, 3, 1, 0) + "\n")
    with pytest.raises(DataError, match=r"agr\.tsv:1: expected a header with the 18 columns"):
        parse_tsv(p)


def test_tsv_split_is_9_1_90_and_feeds_the_language_model(tmp_path):
    (tmp_path / "agreement").mkdir()
    rows = [
        _tsv_row(f"the dog{i % 7} near the cats runs fast", "VBZ", 2, 6, 4, 1) if i % 2
        else _tsv_row(f"the dogs{i % 7} near the cat run fast", "VBP", 2, 6, 4, 1)
        for i in range(200)
    ]  # fmt: skip
    (tmp_path / "agreement" / "agr.tsv").write_text("\n".join(["\t".join(TSV_COLUMNS), *rows]) + "\n")
    params = freeze({"file": "agreement/agr.tsv", "objective": "language_model", "max_words": 20})
    b = load_data(DataSpec("linzen_tsv", params, eval_sets=TEST), tmp_path)
    assert (len(b.train), len(b.val), len(b.evals["test"])) == (18, 2, 180)
    assert b.info.task == "language_model" and b.info.num_classes == b.info.get("vocab_size")
    row = b.evals["test"].x["tokens"][0]
    assert row[0].item() == 2 and row[b.evals["test"].x["lengths"][0] - 1].item() == 3  # <bos> … <eos>


# ---------------------------------------------------------------- vocabulary and verb forms


def test_vocabulary_comes_from_training_words_only():
    vocab = Vocabulary.build([["the", "dog", "runs"], ["the", "cats", "run"]])
    assert vocab.words[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and vocab.words[4] == "the"
    assert vocab.encode(["the", "zebra"]) == [4, 1]
    assert len(Vocabulary.build([["a", "b", "a"]], max_size=5)) == 5


@pytest.mark.parametrize("max_vocab", [2, 4, -1])
def test_a_vocabulary_too_small_for_the_special_tokens_is_a_sweep_error(max_vocab):
    raw = {
        "data": {"name": "agreement_synthetic", "params": {"max_vocab": max_vocab}},
        "models": {"LSTM": {"arch": "lstm", "params": {"embedding_dim": 8, "hidden_size": 8, "num_layers": 1}}},
        "grid": {"pairs": ["data -> LSTM"]},
    }
    with pytest.raises(SpecError, match=r"data.params: max_vocab must be 0 \(all words\) or > 4"):
        parse_sweep(raw, "s.yaml")


@pytest.mark.parametrize("sing,plur", [("is", "are"), ("has", "have"), ("runs", "run"), ("tries", "try"), ("watches", "watch")])
def test_verb_inflection_round_trips(sing, plur):
    assert plural_of(sing) == plur and singular_of(plur) == sing


# ---------------------------------------------------------------- the generator


def test_generator_is_reproducible_and_seeded():
    a = SyntheticAgreement(train_size=50, test_per_group=5).read(None)
    b = SyntheticAgreement(train_size=50, test_per_group=5).read(None)
    c = SyntheticAgreement(train_size=50, test_per_group=5, seed=1).read(None)
    assert [it.words for it in a["train"]] == [it.words for it in b["train"]]
    assert [it.words for it in a["train"]] != [it.words for it in c["train"]]


def test_generator_attractor_counts_distances_and_test_strata():
    parts = SyntheticAgreement(train_size=300, test_per_group=30, max_attractors=4).read(None)
    number_of = {n: k for pair in NOUNS for k, n in enumerate(pair)}
    for it in parts["train"] + parts["test"]:
        subj = it.verb_index - it.distance
        assert number_of[it.words[subj]] == it.number
        between = [number_of[w] for w in it.words[subj + 1 : it.verb_index] if w in number_of]
        assert sum(n != it.number for n in between) == it.attractors
        assert it.words[it.verb_index] == (it.singular if it.number == 0 else it.plural)
    assert np.bincount([it.attractors for it in parts["test"]]).tolist() == [30] * 5
    train_counts = np.bincount([it.attractors for it in parts["train"]], minlength=5)
    assert train_counts[0] > train_counts[2] > train_counts[4]  # many-attractor items are rare in training
    seen = {it.prefix for it in parts["train"]}
    assert not any(it.prefix in seen for it in parts["test"])  # held out, not repeated


def test_generator_distance_follows_the_number_of_modifiers():
    near = SyntheticAgreement(train_size=200, test_per_group=10, max_modifiers=0, max_attractors=0).read(None)
    assert {it.distance for it in near["train"] + near["test"]} == {1}  # "the dog ... barks": subject next to verb
    far = SyntheticAgreement(train_size=200, test_per_group=10, min_modifiers=3).read(None)
    assert min(it.distance for it in far["train"] + far["test"]) > max(it.distance for it in near["train"])
    with pytest.raises(ValueError, match="min_modifiers <= max_modifiers"):
        SyntheticAgreement(min_modifiers=5)


# ---------------------------------------------------------------- models and masking


def _info(vocab=30, task="classification", width=12):
    return DataInfo("tokens", (width,), vocab if task == "language_model" else 2, (("vocab_size", vocab), ("pad_id", 0)), task)


@pytest.mark.parametrize("arch,task", [("transformer_seq", "classification"), ("universal_transformer_seq", "classification"),
                                       ("transformer_lm", "language_model"), ("lstm", "classification")])  # fmt: skip
def test_future_tokens_do_not_change_earlier_positions(arch, task):
    torch.manual_seed(0)
    model = build_model(arch, _info(task=task), 0.0, {"d_model": 16, "n_heads": 2, "n_layers": 2} if "former" in arch else {})
    model.eval()
    a = torch.randint(4, 30, (1, 10))
    b = a.clone()
    b[0, 6:] = torch.randint(4, 30, (4,))
    enc = model.backbone
    with torch.no_grad():
        ha, hb = enc(a), enc(b)
    assert torch.allclose(ha[0, :6], hb[0, :6], atol=1e-6)
    assert not torch.allclose(ha[0, 6:], hb[0, 6:], atol=1e-3)


def test_full_attention_transformer_does_see_the_future():
    torch.manual_seed(0)
    model = build_model("transformer", _info(), 0.0, {"d_model": 16, "n_heads": 2, "n_layers": 2}).eval()
    a = torch.randint(4, 30, (1, 10))
    b = a.clone()
    b[0, 8] = (a[0, 8] + 1 - 4) % 26 + 4
    with torch.no_grad():
        assert not torch.allclose(model.backbone(a)[0, :5], model.backbone(b)[0, :5], atol=1e-4)


def test_padding_does_not_change_a_classifiers_output():
    torch.manual_seed(0)
    for arch in ("lstm", "transformer", "transformer_seq"):
        model = build_model(arch, _info(), 0.0, {} if arch == "lstm" else {"d_model": 16, "n_heads": 2, "n_layers": 1}).eval()
        tokens = torch.tensor([[5, 6, 7, 0, 0, 0]])
        with torch.no_grad():
            short = model({"tokens": tokens[:, :3], "lengths": torch.tensor([3])})[0]
            padded = model({"tokens": tokens, "lengths": torch.tensor([3])})[0]
        assert torch.allclose(short, padded, atol=1e-5), arch


def test_model_and_objective_must_match(tiny_raw):
    tiny_raw["data"] = {"name": "agreement_synthetic", "params": {"objective": "language_model"}}
    tiny_raw["models"] = {"MLP": {"arch": "lstm"}}
    with pytest.raises(SpecError, match="model 'lstm' serves classification on tokens inputs; the data is language_model"):
        parse_sweep(tiny_raw, "s.yaml")


# ---------------------------------------------------------------- µ/D/A accuracy and LM scoring


def test_micro_distance_and_attractor_accuracy_by_hand():
    # 6 examples: correct = [1, 1, 0, 1, 0, 0]
    logits = torch.tensor([[2.0, 0], [0, 2], [2, 0], [0, 2], [0, 2], [2, 0]])
    labels = torch.tensor([0, 1, 1, 1, 0, 1])
    distance = torch.tensor([1, 1, 1, 5, 5, 9])
    attractors = torch.tensor([0, 0, 1, 1, 2, 2])
    split = Split({"tokens": torch.zeros(6, 2, dtype=torch.long), "lengths": torch.ones(6, dtype=torch.long)}, labels,
                  {"distance": distance, "attractors": attractors})  # fmt: skip
    row = Classification(_info()).scores(logits, split)
    assert row["accuracy"] == pytest.approx(3 / 6)
    assert row["d_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)  # groups 1, 5, 9
    assert row["a_accuracy"] == pytest.approx((1 + 1 / 2 + 0) / 3)  # groups 0, 1, 2
    assert metrics.macro_accuracy(logits, labels, attractors) == pytest.approx(0.5)


class _FixedLM(nn.Module):
    """A 'language model' whose next-token log-probabilities are given per position."""

    def __init__(self, logp: torch.Tensor) -> None:
        super().__init__()
        self.logp = logp

    def forward(self, x):
        n, t = x["tokens"].shape
        return self.logp[:n, :t], torch.zeros(n, t, 3)


def test_lm_agreement_compares_the_two_verb_forms_at_the_verb():
    # vocabulary: 0 pad, 1 unk, 2 bos, 3 eos, 4 "dog", 5 "is", 6 "are"; rows "<bos> dog is <eos>" etc.
    logp = torch.full((2, 4, 7), math.log(0.2 / 5))  # the other 5 tokens share the remaining 0.2
    logp[0, 1, 5], logp[0, 1, 6] = math.log(0.6), math.log(0.2)  # sentence 0: p(is)=.6 > p(are)=.2; singular → right
    logp[1, 1, 5], logp[1, 1, 6] = math.log(0.7), math.log(0.1)  # sentence 1: plural subject, but p(is) > p(are) → wrong
    tokens = torch.tensor([[2, 4, 5, 3], [2, 4, 6, 3]])
    split = Split({"tokens": tokens, "lengths": torch.tensor([4, 4])}, torch.tensor([0, 1]),
                  {"verb_index": torch.tensor([2, 2]), "singular": torch.tensor([5, 5]), "plural": torch.tensor([6, 6]),
                   "distance": torch.tensor([1, 1]), "attractors": torch.tensor([0, 1])})  # fmt: skip
    task = LanguageModel(_info(7, "language_model", 4))
    two_way, _ = task.predict(_FixedLM(logp), split, 8)
    assert torch.allclose(two_way.exp(), torch.tensor([[0.6, 0.2], [0.7, 0.1]], dtype=torch.double))
    row = task.scores(two_way, split)
    assert row["accuracy"] == 0.5 and row["a_accuracy"] == 0.5
    # calibration of the two-way choice: confidences 0.75 (right) and 0.875 (wrong)
    assert row["ece"] == pytest.approx(0.5 * (1 - 0.75) + 0.5 * 0.875)


def test_trial_seeds_differ_between_a_self_distilled_student_and_its_teacher(tiny_raw, tmp_path):
    from kdtune.plan import make_plan
    from kdtune.train.trainer import trial_seed

    tiny_raw["grid"] = {"students": ["MLP"], "teachers": ["self"], "seeds": 1}
    plan = make_plan(parse_sweep(tiny_raw, "s.yaml", output=tmp_path))
    student = next(t for t in plan.trials.values() if t.stage == 2)
    teacher = plan.teacher_of(student)
    assert student.seed == teacher.seed == 0
    assert trial_seed(student.config) != trial_seed(teacher.config) and trial_seed(teacher.config) == 0


def test_a_malformed_data_file_stops_the_run_before_any_work(tmp_path, tiny_raw):
    import subprocess
    import sys

    import yaml

    d = tmp_path / "data" / "agreement" / "linzen_simple"
    _write_simple(d, {"numpred.train": ["VBZ\tthe dog"] * 5 + ["VBZ the dog"], "numpred.test.1": ["VBP\tthe dogs"]})
    tiny_raw["data"] = {"name": "linzen_simple"}
    tiny_raw["models"] = {"LSTM": {"arch": "lstm", "params": {"hidden_size": 8, "embedding_dim": 8}}}
    tiny_raw["grid"] = {"students": ["LSTM"], "seeds": 1}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kdtune", "run", str(p), "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "numpred.train:6: expected 'VBZ' or 'VBP', a tab" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["classification", "language_model"])
def test_agreement_sweep_end_to_end_with_distillation(tmp_path, objective):
    from kdtune.plan import make_plan
    from kdtune.results.tables import render
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import collect

    lm = objective == "language_model"
    small = {"d_model": 16, "n_heads": 2, "n_layers": 1}
    raw = {
        "data": {"name": "agreement_synthetic", "params": {"objective": objective, "train_size": 300, "test_per_group": 20}},
        "models": {
            "LSTM": {"arch": "lstm_lm" if lm else "lstm", "params": {"embedding_dim": 16, "hidden_size": 16, "num_layers": 1}},
            "TF": {"arch": "transformer_lm" if lm else "transformer_seq", "params": small},
        },
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01},
        "grid": {"students": ["TF"], "teachers": ["data", "LSTM", "TF"], "seeds": 1},
        "outputs": {"feature_examples": 10},
    }
    plan = make_plan(parse_sweep(raw, "a.yaml", output=tmp_path / "run"))
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    df = collect(plan)
    test = df[df.eval_set == "test"]
    assert test.a_accuracy.between(0, 1).all() and test.d_accuracy.between(0, 1).all()
    students = test[test.stage == 2]
    assert students.agreement.between(0, 1).all() and (students.kl >= 0).all()
    if lm:
        assert (test.perplexity > 1).all() and (test.perplexity < 200).all()
    table = render(df, ["a_accuracy"], "markdown", ["student"], ["teacher"], ["test"])
    assert table.splitlines()[2] == "| student | data | LSTM | TF |"
