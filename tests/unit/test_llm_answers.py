"""Answers as a capable model writes them, for each agent: prose around the answer, helper functions, comments, a
second code block, another library, another spelling of a valid value, a model that ignores a hint. Each is either
accepted as meant or refused with a message the model can act on (the Brain sends that message back)."""
from __future__ import annotations

import json

import pytest
from helpers import binary_frames, write_task
from llm_scripts import GOOD_PREP, MODEL, fenced

from iml_ray.agents import error_analyzer, guideline, knowledge_retriever, modeling_coder, preprocessing_coder, task_analyzer
from iml_ray.llm.errors import BadAnswer

XGB_MODULE = '''
"""A gradient-boosted model with a small helper; the answer explains itself around the code."""
import numpy as np
import xgboost as xgb


def _matrix(X):
    # XGBoost wants a dense float matrix here.
    return np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float32)


def fit_model(X, y, layout):
    model = xgb.XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.1, n_jobs=1)
    return model.fit(_matrix(X), y)


def predict_model(model, X):
    return model.predict_proba(_matrix(X))


def describe_model(model) -> dict:
    return {"choice": "xgboost", "trees": int(model.n_estimators)}
'''


def test_a_module_with_prose_a_usage_snippet_helpers_and_another_library_is_accepted_whole():
    answer = ("Here is an improved model. First, how it is called:\n\n```python\nmodel = fit_model(X, y, layout)\n```\n\n"
              f"And the module:\n\n```python\n{XGB_MODULE.strip()}\n```\n\nIt should beat the linear model.")
    code = modeling_coder.parse(answer)
    assert "def _matrix(X):" in code and "import xgboost as xgb" in code and "model = fit_model(X, y, layout)\n" not in code


def test_a_module_in_a_bare_fence_is_accepted_and_one_missing_an_entry_point_is_refused_by_name():
    assert "def fit_model" in modeling_coder.parse(f"```\n{MODEL.strip()}\n```")
    without = MODEL.replace("def describe_model(model):", "def describe(model):")
    with pytest.raises(BadAnswer, match="does not define describe_model at top level"):
        modeling_coder.parse(fenced(without))


def test_a_prep_module_with_extra_methods_is_accepted_and_code_that_does_not_parse_is_refused_with_the_line():
    extra = GOOD_PREP.replace("    def transform(self, frame):", "    def _clean(self, frame):\n        return frame\n\n"
                                                                    "    def transform(self, frame):")
    assert "def _clean(self, frame)" in preprocessing_coder.parse(fenced(extra))
    with pytest.raises(BadAnswer, match="no Python code block that parses.*Answer with the whole module"):
        preprocessing_coder.parse(fenced(GOOD_PREP.replace("def fit(self, frame):", "def fit(self, frame)")))


def _draft(tmp_path):
    from iml_ray.plan.guideline_rules import make_blueprint, make_contract
    from iml_ray.plan.knowledge import retrieve
    from iml_ray.task.inference import analyze_task
    from iml_ray.task.profiling import profile_task

    train, test, sample = binary_frames(120, 30)
    summary = analyze_task(write_task(tmp_path / "t", train, test, sample))
    profile = profile_task(summary)
    blueprint = make_blueprint(summary, profile, retrieve(summary, profile, ("traditional",)), ("traditional",), 0, 0.2, 1)
    return summary, blueprint, make_contract(summary, blueprint.prep)


def _guideline(tmp_path, text):
    from iml_ray.plan.guideline_rules import make_contract

    summary, blueprint, contract = _draft(tmp_path)
    return blueprint, guideline.parse(text, blueprint, contract, list(summary.feature_columns),
                                      lambda prep: make_contract(summary, prep))


def test_a_guideline_answer_fenced_with_prose_after_it_is_merged_and_one_that_keeps_the_draft_is_taken(tmp_path):
    answer = ("I looked at the findings.\n```json\n" + json.dumps({
        "blueprint": {"prep": {"text_clean": True, "max_categories": 30}}, "contract": {},
        "why": "fewer categories"}) + "\n```\nLet me know if you want more changes.")
    draft, (merged, _, why) = _guideline(tmp_path, answer)
    assert merged.prep.max_categories == 30 and merged.prep.text_clean is True and why == "fewer categories"
    # The model ignored the advice and changed nothing: the draft stands, as asked for.
    draft, (kept, _, _) = _guideline(tmp_path, '{"blueprint": {}, "contract": {}, "why": "the draft is right"}')
    assert kept.prep == draft.prep and kept.tracks == draft.tracks


def test_a_guideline_answer_with_a_wrongly_typed_value_is_refused_with_the_path_and_the_type(tmp_path):
    with pytest.raises(BadAnswer, match="blueprint.prep.max_categories must be a whole number"):
        _guideline(tmp_path, json.dumps({"blueprint": {"prep": {"max_categories": 12.5}}, "contract": {}}))
    with pytest.raises(BadAnswer, match=r"blueprint.train has no key 'epochs'; its keys are \["):
        _guideline(tmp_path, json.dumps({"blueprint": {"train": {"epochs": 3}}, "contract": {}}))


def test_the_knowledge_retriever_naming_an_unknown_card_is_told_the_known_ones():
    with pytest.raises(BadAnswer) as refused:
        knowledge_retriever.parse('{"cards": ["tabular-gbdt", "deep-learning"], "advice": "x"}', ["tabular-gbdt", "small-data"])
    assert "deep-learning" in str(refused.value) and "small-data" in str(refused.value)
    assert knowledge_retriever.parse('Sure! {"cards": ["small-data"], "advice": "few rows"} Hope this helps.',
                                     ["tabular-gbdt", "small-data"]) == (["small-data"], "few rows")


@pytest.mark.parametrize("spelled", ["Prep", " model ", "PREP"])
def test_the_error_analyzer_spelling_a_module_its_own_way_is_taken_as_meant(spelled):
    assert error_analyzer.parse(json.dumps({"blamed": spelled, "explanation": "x"}))[0] == spelled.strip().lower()
    with pytest.raises(BadAnswer, match='"blamed" must be one of'):
        error_analyzer.parse(json.dumps({"blamed": "the data", "explanation": "x"}))


def test_the_task_analyzer_naming_a_metric_by_an_alias_or_a_pinball_level_is_taken_and_a_made_up_one_refused():
    columns = (["id", "x", "price"], ["id", "x"])
    for said, meant in (("roc_auc", "auc"), ("RMSE", "rmse"), ("pinball_0.9", "pinball_0.9")):
        answer = {"target": "price", "id_column": "id", "metric": said, "problem_type": "regression"}
        assert task_analyzer.parse(json.dumps(answer), *columns, ["auc", "rmse"])["metric"] == meant
    made_up = {"target": "price", "id_column": "id", "metric": "price_error", "problem_type": "regression"}
    with pytest.raises(BadAnswer, match=r"metric 'price_error' is not one of \['auc', 'rmse', 'pinball_<level>'\]"):
        task_analyzer.parse(json.dumps(made_up), *columns, ["auc", "rmse", "pinball_<level>"])


def test_a_guideline_answer_fine_tunes_an_encoder_only_with_its_own_tokens():
    """Token ids are a fine-tuned encoder's input: a track that has one without the other, or another encoder's
    tokenizer, is refused with what goes together."""
    from iml_ray.blueprint import PrepPlan, TrackPlan

    encoder = {"name": "all-MiniLM-L6-v2", "ref": "/models/minilm", "loader": "transformers", "dim": 384}
    tokens = PrepPlan(text=("review",), text_mode="tokens", text_encoder=encoder)
    network = TrackPlan("pretrained", models=("nn",), model_template="custom_nn",
                        nn={"backbone": {"modality": "text", **encoder}})
    guideline._check_fine_tuning(network, tokens)          # both: taken
    guideline._check_fine_tuning(TrackPlan("traditional"), PrepPlan(text=("review",)))
    with pytest.raises(BadAnswer, match="text_mode 'tokens' goes with a custom_nn track whose nn.backbone"):
        guideline._check_fine_tuning(TrackPlan("pretrained"), tokens)
    with pytest.raises(BadAnswer, match="text_mode 'tokens' goes with a custom_nn track whose nn.backbone"):
        guideline._check_fine_tuning(network, PrepPlan(text=("review",), text_mode="pretrained", text_encoder=encoder))
    other = network.replace(nn={"backbone": {"modality": "text", **encoder, "ref": "/models/other"}})
    with pytest.raises(BadAnswer, match="nn.backbone.ref must be the prep's text_encoder.ref"):
        guideline._check_fine_tuning(other, tokens)
    image = network.replace(nn={"backbone": {"modality": "image", "ref": "/models/lite0.pth"}})
    guideline._check_fine_tuning(image, PrepPlan(image=("photo",), image_channels=3))
    with pytest.raises(BadAnswer, match="an image nn.backbone reads RGB pixels"):
        guideline._check_fine_tuning(image, PrepPlan(image=("photo",), image_channels=1))
    with pytest.raises(BadAnswer, match="nn.backbone.modality must be 'text' or 'image'"):
        guideline._check_fine_tuning(network.replace(nn={"backbone": {"ref": "/models/minilm"}}), tokens)
