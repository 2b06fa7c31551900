"""Scripted LLM answers for the toy binary task of helpers.binary_frames (columns id, x1, colour, age; target label).

Entries are routed by the agent's name, which opens every system prompt
("You are the PreprocessingCoder of iml-ray ..."), so the tracks' concurrent
calls cannot steal each other's answers.
"""
from __future__ import annotations

import json

GOOD_PREP = '''
import numpy as np
import pandas as pd


class Preprocessor:
    def fit(self, frame):
        self.numeric = ["x1", "age"]
        self.medians = frame[self.numeric].median()
        self.colours = sorted(frame["colour"].dropna().astype(str).unique())
        self.layout_ = {"n_features": len(self.numeric) + len(self.colours), "categorical": [],
                        "embedding": None, "image": None, "text": None}
        return self

    def transform(self, frame):
        numeric = frame[self.numeric].fillna(self.medians).to_numpy(dtype=np.float32)
        colours = np.stack([(frame["colour"].astype(str) == c).to_numpy(dtype=np.float32) for c in self.colours], axis=1)
        return np.hstack([numeric, colours]).astype(np.float32)
'''

# Reads a column the task does not have: the contract check fails with a KeyError.
BAD_PREP = GOOD_PREP.replace('frame["colour"].dropna()', 'frame["colour_code"].dropna()')

MODEL = '''
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_model(X, y, layout):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)


def predict_model(model, X):
    return model.predict_proba(X)


def describe_model(model):
    return {"choice": "logistic regression (written by the LLM)"}
'''

# The profiling code also reports whether it can see the API key (it must not).
PROFILER = '''
import json, os
import pandas as pd

train = pd.read_csv(TRAIN)
findings = {"duplicates": f"{int(train.duplicated().sum())} duplicated train rows",
            "key_seen": os.environ.get("OPENAI_API_KEY", "absent")}
with open("findings.json", "w") as handle:
    json.dump(findings, handle)
'''


def fenced(code: str) -> str:
    return f"Here is the module.\n\n```python\n{code.strip()}\n```\n"


def answer(agent: str, content: str, **extra) -> dict:
    return {"when": f"You are the {agent} of iml-ray", "content": content, **extra}


def analyzer_answer() -> dict:
    return answer("TaskAnalyzer", json.dumps({"target": "label", "id_column": "id", "metric": "accuracy",
                                              "problem_type": "binary", "why": "the sample submission predicts label"}))


def repair_script(train_path: str, cards: list[str]) -> list[dict]:
    """A whole run: the prep coder's module reads a missing column, the ErrorAnalyzer blames prep, the Debugger
    fixes it; the GuidelineAgent's first answer is invalid and is accepted when re-asked."""
    return [
        analyzer_answer(),
        answer("Profiler", fenced(PROFILER.replace("TRAIN", repr(train_path)))),
        answer("KnowledgeRetriever", json.dumps({"cards": cards, "advice": "A small tabular task: keep models simple."})),
        answer("GuidelineAgent", json.dumps({"blueprint": {"prep": {"missing_indicators": "no"}}, "contract": {}})),
        answer("GuidelineAgent", "Sure:\n```json\n" + json.dumps({
            "blueprint": {"prep": {"missing_indicators": False}}, "contract": {},
            "why": "few missing values: no indicator columns"}) + "\n```"),
        answer("PreprocessingCoder", fenced(BAD_PREP)),
        answer("ErrorAnalyzer", json.dumps({"blamed": "prep", "explanation": "prep reads colour_code, which the task lacks"})),
        answer("Debugger", fenced(GOOD_PREP)),
        answer("ModelingCoder", fenced(MODEL)),
        # Asked to improve on its verified module, the model writes the same one twice: neither beats it.
        answer("ModelingCoder", fenced(MODEL), repeat=2),
    ]


def failing_script() -> tuple[list[dict], dict]:
    """The LLM's prep module never works, whatever it is asked; everything else answers in prose."""
    return ([analyzer_answer(),
             answer("PreprocessingCoder", fenced(BAD_PREP), repeat=100),
             answer("Debugger", fenced(BAD_PREP), repeat=100),
             answer("ErrorAnalyzer", json.dumps({"blamed": "prep", "explanation": "a missing column"}), repeat=100),
             answer("ModelingCoder", fenced(MODEL), repeat=100)],
            {"content": "I am not sure what you need."})


# A first draft that ignores every column: the class frequencies.
PRIOR_MODEL = '''
import numpy as np


def fit_model(X, y, layout):
    counts = np.bincount(np.asarray(y, dtype=int), minlength=2) + 1.0
    return counts / counts.sum()


def predict_model(model, X):
    return np.tile(model, (X.shape[0], 1))


def describe_model(model):
    return {"choice": "the class frequencies, whatever the row"}
'''

# The logistic regression with its strength declared for the framework to tune.
TUNABLE_MODEL = '''
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SEARCH_SPACE = {"C": ["loguniform", 0.01, 100.0]}
SEARCH_DEFAULTS = {"C": 1.0}
SETTINGS = dict(SEARCH_DEFAULTS)


def apply_params(params):
    SETTINGS.update(params)


def fit_model(X, y, layout):
    return make_pipeline(StandardScaler(), LogisticRegression(C=SETTINGS["C"], max_iter=1000)).fit(X, y)


def predict_model(model, X):
    return model.predict_proba(X)


def describe_model(model):
    return {"choice": "logistic regression (written by the LLM)", "C": SETTINGS["C"]}
'''

# What a capable model writes for a network track when asked to do better: a small MLP on scaled inputs.
MLP_MODEL = '''
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_model(X, y, layout):
    network = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, early_stopping=True, random_state=0)
    return make_pipeline(StandardScaler(), network).fit(X, y)


def predict_model(model, X):
    return model.predict_proba(X)


def describe_model(model):
    return {"choice": "an MLP of 32 units (written by the LLM)"}
'''


def improving_script(train_path: str, cards: list[str]) -> list[dict]:
    """Two tracks whose first model modules are weak drafts; asked to improve, the model writes better ones."""
    def coder(track: str, asked: str, code: str, **extra) -> dict:
        return {"when": f"You are the ModelingCoder of iml-ray for the `{track}` track. {asked}", "content": fenced(code),
                **extra}

    return [
        analyzer_answer(),
        answer("Profiler", fenced(PROFILER.replace("TRAIN", repr(train_path)))),
        answer("KnowledgeRetriever", json.dumps({"cards": cards, "advice": "A small tabular task."})),
        answer("GuidelineAgent", json.dumps({"blueprint": {}, "contract": {}, "why": "the draft fits"})),
        answer("PreprocessingCoder", fenced(GOOD_PREP), repeat=2),
        coder("traditional", "You write", PRIOR_MODEL),
        coder("custom_nn", "You write", PRIOR_MODEL),
        coder("traditional", "A model module", TUNABLE_MODEL),
        coder("custom_nn", "A model module", MLP_MODEL),
    ]
