"""Fine-tuning run directories and the `gpt-tf finetune` command."""

import json
import os

import pytest

from gpt_tf.errors import UserError
from gpt_tf.tasks.finetune import parse_task_arg, prepare_finetune_run, read_task_card
from tests.helpers import write_reviews


@pytest.fixture()
def task_files(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"light {i}\tlumière {i}\n" for i in range(30)), encoding="utf-8")
    sentiment = write_reviews(tmp_path / "reviews.jsonl", 20)
    context = "The man was Elimelech. His wife was Naomi."
    question = {"id": "1", "question": "Who?",
                "answers": [{"text": "Naomi", "answer_start": context.index("Naomi")}]}
    squad = {"version": "1.1", "data": [{"title": "ruth", "paragraphs": [
        {"context": context, "qas": [question]}]}]}
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps(squad), encoding="utf-8")
    one_label = tmp_path / "one.jsonl"
    one_label.write_text(json.dumps({"text": "x", "label": "a"}) + "\n", encoding="utf-8")
    return {"translate": str(pairs), "sentiment": str(sentiment), "qa": str(qa),
            "one_label": str(one_label), "folder": str(tmp_path)}


def test_prepare_writes_a_run_that_starts_from_the_base(trained_run, task_files, tmp_path):
    from gpt_tf.export.tasks import load_tasks
    from gpt_tf.training import load_run_config, load_split

    base = trained_run["run_dir"]
    run = str(tmp_path / "tuned")
    prepare_finetune_run(run, base, {t: task_files[t] for t in ("translate", "sentiment", "qa")},
                         ["train.steps=7", "model.dropout=0.2"], holdout_fraction=0.25)
    config = load_run_config(run)
    assert config.train.steps == 7 and config.model.dropout == 0.2
    assert config.model.num_layers == load_run_config(base).model.num_layers
    assert open(os.path.join(run, "tokenizer.model"), "rb").read() == \
        open(os.path.join(base, "tokenizer.model"), "rb").read()
    init = json.load(open(os.path.join(run, "init_from.json")))
    assert init == {"run_dir": os.path.abspath(base)}
    split = load_split(run)
    assert split["kind"] == "tasks"
    assert [s["task"] for s in split["train"]] == ["translate", "sentiment", "qa"]
    assert {s["select"] for s in split["train"]} == {"train"}
    assert {s["select"] for s in split["validation"]} == {"validation"}
    card = read_task_card(run)
    assert card["tasks"]["sentiment"]["labels"] == ["negative", "positive"]
    assert card["tasks"]["qa"]["doc_stride"] > 0
    exported = load_tasks(os.path.join(run, "export_tasks.json"))
    assert [t.name for t in exported] == ["translate", "answer", "classify"]
    assert exported[2].labels == ("negative", "positive")


def test_a_new_learning_rate_scales_the_inherited_floor(trained_run, task_files, tmp_path):
    from gpt_tf.training import load_run_config

    base = trained_run["run_dir"]
    base_train = load_run_config(base).train
    peak = base_train.min_learning_rate / 2  # below the base floor: invalid if the floor stayed
    tasks = {"sentiment": task_files["sentiment"]}
    scaled = prepare_finetune_run(str(tmp_path / "a"), base, tasks,
                                  [f"--train.learning_rate={peak}"])
    assert scaled.train.learning_rate == peak
    assert scaled.train.min_learning_rate == pytest.approx(
        base_train.min_learning_rate * peak / base_train.learning_rate, rel=1e-5)
    assert scaled.train.min_learning_rate < peak
    assert load_run_config(str(tmp_path / "a")).train == scaled.train
    given = prepare_finetune_run(str(tmp_path / "b"), base, tasks,
                                 {"train.learning_rate": peak, "train.min_learning_rate": 0.0})
    assert given.train.min_learning_rate == 0.0
    kept = prepare_finetune_run(str(tmp_path / "c"), base, tasks, ["train.steps=3"])
    assert kept.train.min_learning_rate == base_train.min_learning_rate


def test_validation_data_can_be_given_per_task(trained_run, task_files, tmp_path):
    from gpt_tf.task_data.examples import check_spec, load_records
    from gpt_tf.training import load_split

    base = trained_run["run_dir"]
    dev = write_reviews(tmp_path / "dev.jsonl", 3, tag=" dev")
    run = str(tmp_path / "dev-run")
    prepare_finetune_run(run, base, {"sentiment": task_files["sentiment"],
                                     "translate": task_files["translate"]},
                         holdout_fraction=0.25, validation=[f"sentiment={dev}"])
    split = load_split(run)
    by_task = {s["task"]: s for s in split["validation"]}
    assert by_task["sentiment"]["path"] == str(dev) and by_task["sentiment"]["select"] == "all"
    # the training file now trains whole; translate keeps its hold-out
    trained = {s["task"]: load_records(check_spec([s])[0]) for s in split["train"]}
    assert len(trained["sentiment"]) == 40 and 0 < len(trained["translate"]) < 30
    assert len(load_records(check_spec([by_task["sentiment"]])[0])) == 6
    assert read_task_card(run)["tasks"]["sentiment"]["validation_data"] == str(dev)

    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"text": "meh", "label": "neutral"}) + "\n", encoding="utf-8")
    for validation, message in [
            ([f"sentiment={task_files['sentiment']}"], "that is the training file too"),
            ([f"translate={dev}"], "there is no --task translate; add --task translate=DATA"),
            ([f"sentiment={dev}", f"sentiment={dev}"], "--validation sentiment=... is given twice"),
            (["sentiment"], "--validation 'sentiment' must look like TASK=DATA"),
            ([f"sentiment={odd}"], r"labels \['neutral'\] are not in the training data"),
            (["sentiment=mt-en-fr"], "is for translation, not sentiment")]:
        with pytest.raises(UserError, match=message):
            prepare_finetune_run(str(tmp_path / "bad"), base,
                                 {"sentiment": task_files["sentiment"]}, validation=validation)
        assert not os.path.exists(tmp_path / "bad")


def test_a_named_data_set_is_checked_against_the_task(trained_run, tmp_path):
    with pytest.raises(UserError, match="is for sentiment, not translate"):
        prepare_finetune_run(str(tmp_path / "r"), trained_run["run_dir"],
                             {"translate": "sentiment-en"})
    with pytest.raises(UserError, match="neither a file nor a data set"):
        prepare_finetune_run(str(tmp_path / "r"), trained_run["run_dir"],
                             {"qa": "no-such-set"})


@pytest.mark.parametrize("tasks,overrides,message", [
    ({"translate": "TRANSLATE"}, ["model.num_layers=6"], "base model's shape"),
    ([("sentiment", "SENTIMENT"), ("sentiment", "SENTIMENT")], [], "given twice"),
    ({"translate": "FOLDER"}, [], "is a folder"),
    ({"sentiment": "ONE_LABEL"}, [], "one label"),
    ({}, [], "at least one task"),
])
def test_bad_fine_tuning_requests_are_refused(trained_run, task_files, tmp_path, tasks, overrides,
                                              message):
    def fill(value):
        return task_files[value.lower()] if value.lower() in task_files else value

    if isinstance(tasks, dict):
        tasks = {k: fill(v) for k, v in tasks.items()}
    else:
        tasks = [(k, fill(v)) for k, v in tasks]
    run = tmp_path / "r"
    with pytest.raises(UserError, match=message):
        prepare_finetune_run(str(run), trained_run["run_dir"], tasks, overrides)
    assert not run.exists()  # nothing half-written


def test_an_existing_run_or_an_untrained_base_is_refused(trained_run, task_files, tmp_path):
    with pytest.raises(UserError, match="already exists"):
        prepare_finetune_run(trained_run["run_dir"], trained_run["run_dir"],
                             {"sentiment": task_files["sentiment"]})
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(open(os.path.join(trained_run["run_dir"],
                                                         "config.json")).read())
    with pytest.raises(UserError, match="no trained model"):
        prepare_finetune_run(str(tmp_path / "r"), str(empty),
                             {"sentiment": task_files["sentiment"]})


def test_task_arguments_parse():
    assert parse_task_arg("translate=mt-en-fr") == ("translate", "mt-en-fr")
    assert parse_task_arg("qa = my file.json") == ("qa", "my file.json")
    for bad in ("translate", "poetry=x", "qa="):
        with pytest.raises(UserError):
            parse_task_arg(bad)


def test_the_finetune_command_prepares_a_lora_run(trained_run, task_files, tmp_path, capsys):
    from gpt_tf.cli import main
    from gpt_tf.training import load_run_config

    run = str(tmp_path / "lora")
    status = main(["finetune", "--base", trained_run["run_dir"], "--run-dir", run,
                   "--task", f"sentiment={task_files['sentiment']}", "--lora-rank", "2",
                   "--weight", "sentiment=2", "--prepare-only"])
    assert status == 0
    assert load_run_config(run).train.lora_rank == 2
    assert json.load(open(os.path.join(run, "data_split.json")))["train"][0]["weight"] == 2.0
    capsys.readouterr()
    assert main(["finetune", "--run-dir", str(tmp_path / "new"), "--task", "qa=x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--base" in err[0]
    assert main(["finetune", "--base", trained_run["run_dir"], "--run-dir",
                 str(tmp_path / "new"), "--task", "poetry=x"]) == 2
    capsys.readouterr()
    assert main(["finetune", "--base", trained_run["run_dir"], "--run-dir",
                 str(tmp_path / "new"), "--task", f"sentiment={task_files['sentiment']}",
                 "--validation", f"sentiment={task_files['one_label']}", "--prepare-only"]) == 2
    assert "--validation sentiment=" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "new")
