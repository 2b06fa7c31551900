"""Task loading and inference: what is stated is used, what is missing is inferred and recorded."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import binary_frames, write_task

from iml_ray.errors import TaskError
from iml_ray.task.inference import analyze_task, check_task


def test_binary_task_inferred_from_sample_submission(binary_task):
    summary = analyze_task(binary_task)
    assert summary.target == "label"
    assert summary.id_column == "id"
    assert summary.problem_type == "binary"
    assert summary.metric == "accuracy"
    assert summary.submission.kind == "label"
    assert summary.submission.classes == (0, 1)
    assert set(summary.feature_columns) == {"x1", "colour", "age"}
    assert "inferred" in summary.decisions["target"]
    assert "description names accuracy" in summary.decisions["metric"]


def test_task_yaml_overrides_inference(tmp_path):
    train, test, sample = binary_frames()
    root = write_task(tmp_path / "t", train, test, sample, "no metric named here",
                      "target: label\nid_column: id\nmetric: roc_auc\n")
    summary = analyze_task(root)
    assert summary.metric == "auc"
    assert summary.decisions["metric"] == "stated in task.yaml"
    assert summary.submission.kind == "probability"
    assert summary.submission.positive_class == 1


def test_probability_placeholder_in_sample_defaults_to_auc(tmp_path):
    train, test, sample = binary_frames()
    sample["label"] = 0.5
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample))
    assert summary.metric == "auc"
    assert summary.decisions["metric"].startswith("default")
    assert summary.submission.kind == "probability"


def test_a_gini_task_submits_probabilities_even_with_label_placeholders(tmp_path):
    # Porto Seguro's layout: 0/1 target, a sample of zeros, "Normalized Gini Coefficient" in the description.
    train, test, sample = binary_frames()
    sample["label"] = 0
    summary = analyze_task(write_task(tmp_path / "g", train, test, sample,
                                      "## Evaluation\nSubmissions are evaluated using the Normalized Gini Coefficient."))
    assert (summary.metric, summary.problem_type) == ("gini", "binary")
    assert (summary.submission.kind, summary.submission.positive_class) == ("probability", 1)


def test_regression_with_rmsle_from_description(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"Id": range(200), "area": rng.uniform(50, 300, 200), "zone": rng.choice(list("abc"), 200)})
    frame["SalePrice"] = frame["area"] * 1000 + rng.normal(0, 5000, 200)
    train, test = frame.iloc[:150], frame.iloc[150:].drop(columns="SalePrice")
    sample = pd.DataFrame({"Id": test["Id"], "SalePrice": 0.0})
    desc = "# Houses\n\n## Evaluation\nSubmissions are evaluated on Root-Mean-Squared-Logarithmic-Error (RMSLE).\n"
    summary = analyze_task(write_task(tmp_path / "h", train, test, sample, desc))
    assert (summary.target, summary.problem_type, summary.metric) == ("SalePrice", "regression", "rmsle")
    assert summary.submission.kind == "value"


def test_one_probability_column_per_class(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"id": range(90), "x": rng.normal(size=90), "species": np.tile(["Adelie", "Gentoo", "Chinstrap"], 30)})
    train, test = frame.iloc[:60], frame.iloc[60:].drop(columns="species")
    sample = pd.DataFrame({"id": test["id"], "Gentoo": 1 / 3, "Adelie": 1 / 3, "Chinstrap": 1 / 3})
    summary = analyze_task(write_task(tmp_path / "p", train, test, sample))
    assert summary.target == "species"
    assert summary.problem_type == "multiclass"
    assert summary.metric == "logloss"
    assert summary.submission.kind == "class_probabilities"
    # classes follow the sample's column order, so column i holds P(classes[i])
    assert summary.submission.classes == ("Gentoo", "Adelie", "Chinstrap")


def test_probability_columns_named_with_a_prefix_are_matched_to_their_classes(tmp_path):
    # The cirrhosis playground's layout: target Status holds C, CL, D; the submission asks for Status_C, ...
    from iml_ray.metrics.predictions import score_predictions

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"id": range(120), "x": rng.normal(size=120), "Status": np.tile(["C", "CL", "D"], 40)})
    train, test = frame.iloc[:90], frame.iloc[90:].drop(columns="Status")
    sample = pd.DataFrame({"id": test["id"], "Status_D": 1 / 3, "Status_C": 1 / 3, "Status_CL": 1 / 3})
    summary = analyze_task(write_task(tmp_path / "c", train, test, sample, "Scored on multi-class log loss."))
    fmt = summary.submission
    assert (summary.target, fmt.kind) == ("Status", "class_probabilities")
    assert fmt.classes == ("D", "C", "CL")
    assert "'Status_<class>'" in summary.decisions["submission"]
    truth = pd.Series(["C", "CL", "D", "D"])
    sure = pd.DataFrame({f"Status_{c}": (truth == c).astype(float) * 0.98 + 0.01 for c in ("D", "C", "CL")})
    assert score_predictions("logloss", truth, sure, fmt) < 0.05
    swapped = sure.rename(columns={"Status_C": "Status_D", "Status_D": "Status_C"})
    assert score_predictions("logloss", truth, swapped, fmt) > 1.0


def test_class_columns_match_exactly_then_ignoring_case_then_with_shared_affixes():
    from iml_ray.task.class_columns import classes_of_columns

    assert classes_of_columns(["b", "a"], ["a", "b"]) == (("b", "a"), "named exactly as the classes")
    assert classes_of_columns(["Died", "Adoption"], ["adoption", "died"])[0] == ("died", "adoption")
    assert classes_of_columns(["class_1", "class_0"], [0, 1]) == ((1, 0), "named 'class_<class>'")
    assert classes_of_columns(["p_yes", "p_no"], ["no", "yes"])[0] == ("yes", "no")
    assert classes_of_columns(["x_1", "x_11"], [1, 11])[0] == (1, 11)
    assert classes_of_columns(["Class_2", "Class_1"], [1.0, 2.0])[0] == (2.0, 1.0)   # a target with gaps reads as floats
    assert classes_of_columns(["Class_1", "Class_2"], [1, 3]) is None          # a class has no column
    assert classes_of_columns(["a_1", "b_2"], [1, 2]) is None                  # no prefix shared by all
    assert classes_of_columns(["p_0", "p_1", "p_2"], [0, 1]) is None           # more columns than classes


def test_probability_columns_that_name_no_class_are_refused(tmp_path):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"id": range(90), "x": rng.normal(size=90), "kind": np.tile(["u", "v", "w"], 30)})
    train, test = frame.iloc[:60], frame.iloc[60:].drop(columns="kind")
    sample = pd.DataFrame({"id": test["id"], "first": 0.3, "second": 0.3, "third": 0.4})
    with pytest.raises(TaskError, match="do not match the classes of 'kind'"):
        analyze_task(write_task(tmp_path / "k", train, test, sample, "Scored on multi-class log loss.", "target: kind\n"))


def test_a_sample_column_named_otherwise_finds_the_target_named_like_one(tmp_path):
    # jigsaw's unintended bias: train has `target` and other columns test lacks; the sample asks for `prediction`.
    train, test, sample = binary_frames()
    train = train.rename(columns={"label": "target"}).assign(severe_toxicity=0.1, insult=0.2)
    summary = analyze_task(write_task(tmp_path / "j", train, test, sample.rename(columns={"label": "prediction"}),
                                      "Scored on AUC."))
    assert (summary.target, summary.submission.target_columns) == ("target", ("prediction",))
    assert set(summary.dropped_columns) == {"severe_toxicity", "insult"}
    assert "named like a target" in summary.decisions["target"]


def test_the_samples_column_names_the_target_in_another_case(tmp_path):
    train, test, sample = binary_frames()
    train = train.rename(columns={"label": "Label"}).assign(leak=1)
    summary = analyze_task(write_task(tmp_path / "c", train, test, sample, "Scored on accuracy."))
    assert (summary.target, summary.submission.target_columns) == ("Label", ("label",))
    assert "in another case" in summary.decisions["target"]


def test_train_only_columns_are_dropped_and_recorded(tmp_path):
    train, test, sample = binary_frames()
    train["leak"] = train["label"]
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample))
    assert summary.target == "label"
    assert "leak" in summary.dropped_columns
    assert "leak" not in summary.feature_columns


def test_mlebench_public_dir_is_accepted(tmp_path):
    train, test, sample = binary_frames()
    write_task(tmp_path / "comp" / "public", train, test, sample)
    summary = analyze_task(tmp_path / "comp")
    assert summary.name == "comp"
    assert summary.task_dir.endswith("public")


@pytest.mark.parametrize("case, message", [
    ("missing_dir", "does not exist"),
    ("no_train", "no train file"),
    ("empty_train", "train.csv is empty"),
    ("header_only", "has a header but no rows"),
    ("malformed", "train.csv is malformed"),
    ("test_extra_column", "test.csv has column(s) that train.csv lacks"),
    ("no_target", "no target column"),
    ("ambiguous_target", "cannot tell which column is the target"),
    ("unknown_metric", "unknown metric 'bogus'"),
    ("yaml_target_missing", "target 'price' from task.yaml is not a column"),
])
def test_bad_input_is_a_task_error(tmp_path, case, message):
    train, test, sample = binary_frames(50, 20)
    root = tmp_path / "task"
    if case != "missing_dir":
        write_task(root, train, test, sample)
    if case == "no_train":
        (root / "train.csv").unlink()
    elif case == "empty_train":
        (root / "train.csv").write_text("")
    elif case == "header_only":
        (root / "train.csv").write_text("id,x1,label\n")
    elif case == "malformed":
        (root / "train.csv").write_text("a,b,label\n1,2,0\n1,2,3,4,5\n")
    elif case == "test_extra_column":
        test.assign(extra=1).to_csv(root / "test.csv", index=False)
    elif case == "no_target":
        train.drop(columns="label").to_csv(root / "train.csv", index=False)
    elif case == "ambiguous_target":
        (root / "sample_submission.csv").unlink()
        train.assign(other=1).to_csv(root / "train.csv", index=False)
    elif case == "unknown_metric":
        (root / "task.yaml").write_text("metric: bogus\n")
    elif case == "yaml_target_missing":
        (root / "task.yaml").write_text("target: price\n")
    with pytest.raises(TaskError) as info:
        check_task(root)
        analyze_task(root)
    assert message in str(info.value)
    rendered = info.value.render()
    assert rendered.startswith("error: ") and len(rendered.splitlines()) <= 2
    assert info.value.fix, "every task error says what to do"


def test_constant_target_is_refused(tmp_path):
    train, test, sample = binary_frames(50, 20)
    train["label"] = 1
    with pytest.raises(TaskError, match="single value"):
        analyze_task(write_task(tmp_path / "t", train, test, sample))


def test_description_names_the_positive_class(tmp_path):
    # "great" sorts first, so without reading the description the submission would report P(other).
    train, test, sample = binary_frames()
    train["label"] = np.where(train["label"] == 1, "great", "other")
    sample["label"] = 0.5
    description = ("Scored with the **log loss** of the predicted probability that `label` is `great`.\n"
                   "Column `id`, then `label` holding the probability that `label` is `great`.")
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample, description))
    assert summary.submission.kind == "probability"
    assert summary.submission.positive_class == "great"
    assert "description names it" in summary.decisions["submission"]


def test_probability_range_in_description_does_not_pick_a_class(tmp_path):
    train, test, sample = binary_frames()
    sample["label"] = 0.5
    description = "Evaluated on AUC. Submit a probability between 0 and 1 for each row."
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample, description))
    assert summary.submission.positive_class == 1
    assert "conventional" in summary.decisions["submission"]


@pytest.mark.parametrize("text, expected", [
    ("submit the probability that `parity` is `odd`.", "odd"),
    ("the likelihood of a 'spam' message; ham messages are common.", "spam"),
    ("Predict the probability. Rows are either spam or ham.", None),
    ("a probability for spam or ham", None),
])
def test_class_named_for_probability(text, expected):
    from iml_ray.task.answer_format import class_named_for_probability
    classes = ["even", "odd"] if "parity" in text else ["ham", "spam"]
    assert class_named_for_probability(text, classes, "parity") == expected


def test_a_task_orders_its_classes_as_the_metrics_do_numbers_by_value(tmp_path):
    from iml_ray.metrics.labels import class_sort_key, natural_order

    labels = ["10", "2", "unsure", "2", "10", "unsure"] * 10          # numeric strings beside text: read as text
    train = pd.DataFrame({"id": range(60), "x": range(60), "grade": labels})
    test = pd.DataFrame({"id": range(60, 70), "x": range(10)})
    sample = pd.DataFrame({"id": range(60, 70), "grade": ["2"] * 10})
    summary = analyze_task(write_task(tmp_path / "grades", train, test, sample))
    assert list(summary.submission.classes) == ["2", "10", "unsure"] == natural_order(labels)
    assert sorted([3, "10", "b", "1.5", True], key=class_sort_key) == [True, "1.5", 3, "10", "b"]
