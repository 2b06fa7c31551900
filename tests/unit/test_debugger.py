"""The rules ErrorAnalyzer localises failures; the Debugger escalates one safe step at a time."""
from __future__ import annotations

from iml_ray.blueprint import PrepPlan, TrackPlan, TrainPlan
from iml_ray.plan.repairs import Failure, Plans, diagnose, repair

PLANS = Plans(
    PrepPlan(numeric=("a", "b"), categorical=("c",), text=("t",), tfidf_max_features=40000),
    TrackPlan("traditional", models=("lightgbm", "linear"), lightgbm={"learning_rate": 0.05, "max_rounds": 3000},
              linear={"c_grid": [0.1, 1.0, 10.0]}),
    TrainPlan(),
)


def test_timeout_is_blamed_on_resources_and_speeds_up_training():
    diagnosis = diagnose(Failure("pipeline", "timeout", "timed out after 60 s"))
    assert (diagnosis.blamed, diagnosis.kind) == ("resources", "timeout")
    fix = repair(diagnosis, PLANS, n_rows=50_000)
    assert fix.module == "model"
    assert fix.plans.track.lightgbm["learning_rate"] > 0.05
    assert fix.plans.track.lightgbm["max_rounds"] < 3000
    assert fix.plans.track.linear["c_grid"] == [1.0]


def test_repeated_timeouts_escalate_until_nothing_is_left():
    plans, changes = PLANS, []
    diagnosis = diagnose(Failure("pipeline", "timeout", "timed out"))
    for _ in range(20):
        fix = repair(diagnosis, plans, n_rows=50_000)
        if fix is None:
            break
        assert fix.plans != plans, "every repair must change something"
        changes.append(fix.change)
        plans = fix.plans
    assert fix is None, "escalation must end"
    assert any("TF-IDF" in c for c in changes) and any("sample" in c for c in changes)
    assert plans.track.models in (("linear",), ("lightgbm",))


def test_a_prep_check_out_of_time_is_repaired_in_the_preprocessing_or_not_at_all():
    # The prep check transforms every train and test row and fits no model: faster boosting cannot shorten it.
    diagnosis = diagnose(Failure("prep_probe", "timeout", "prep check timed out after 40 s", failing_section="prep"))
    encoder = {"name": "efficientnet-lite0", "input": {"size": 224}}
    images = Plans(PrepPlan(numeric=("a",), image=("img",), image_mode="pretrained", image_encoder=encoder),
                   PLANS.track, PLANS.train)
    fix = repair(diagnosis, images, n_rows=50_000, stage="prep_probe")
    assert fix.module == "prep" and fix.plans.prep.image_encoder["input"]["size"] < 224
    assert fix.plans.track == images.track and fix.plans.train == images.train
    fix = repair(diagnosis, PLANS, n_rows=50_000, stage="prep_probe")
    assert fix.module == "prep" and fix.plans.prep.tfidf_max_features < 40000 and fix.plans.track == PLANS.track
    names = Plans(PrepPlan(numeric=("a",), text=("name",), text_mode="pretrained", text_encoder={"name": "minilm"}),
                  PLANS.track, PLANS.train)
    assert repair(diagnosis, names, n_rows=50_000, stage="prep_probe") is None
    # The same timeout in the pipeline (which fits the models) still speeds up the training.
    assert repair(diagnosis, names, n_rows=50_000, stage="pipeline").module == "model"


def test_memory_error_in_traceback_shrinks_the_text_features():
    failure = Failure("pipeline", "error", "exit code 1: MemoryError", "Traceback ...\nMemoryError: Unable to allocate 9 GiB")
    diagnosis = diagnose(failure)
    assert (diagnosis.blamed, diagnosis.kind) == ("resources", "memory")
    fix = repair(diagnosis, PLANS, n_rows=10_000)
    assert fix.module == "prep" and fix.plans.prep.tfidf_max_features == 10000


def test_dtype_error_in_prep_coerces_numeric_columns():
    failure = Failure("pipeline", "error", "ValueError: could not convert string to float: '?'",
                      "ValueError: could not convert string to float: '?'", failing_section="prep")
    diagnosis = diagnose(failure)
    assert (diagnosis.blamed, diagnosis.kind) == ("prep", "dtype")
    fix = repair(diagnosis, PLANS, n_rows=100)
    assert fix.plans.prep.numeric == () and set(fix.plans.prep.numeric_coerce) == {"a", "b"}


def test_contract_violation_is_blamed_on_the_contract():
    failure = Failure("verify", "invalid", "submission has 9 rows for 10 test rows",
                      violations=("submission has 9 rows for 10 test rows",))
    assert diagnose(failure).blamed == "contract"


def test_lightgbm_failure_falls_back_to_the_linear_model():
    failure = Failure("pipeline", "error", "LightGBMError: bad", "lightgbm.basic.LightGBMError: bad", failing_section="model")
    diagnosis = diagnose(failure)
    assert diagnosis.kind == "lightgbm"
    assert repair(diagnosis, PLANS, 100).plans.track.models == ("linear",)


def test_unrecognised_output_flood_is_not_repaired():
    diagnosis = diagnose(Failure("pipeline", "output_limit", "wrote more than 20 MB"))
    assert repair(diagnosis, PLANS, 100) is None
