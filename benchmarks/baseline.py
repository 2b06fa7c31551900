"""The plain reference baseline iml-ray must beat, given the answer format.

    python benchmarks/baseline.py TASK_DIR --answers-json ANSWERS_JSON --out SUBMISSION_CSV

Tabular: default HistGradientBoosting with string columns as native
categoricals. A task with a long free-text column: default TF-IDF + logistic
regression (ridge for regression) on that text. random_state=0 everywhere.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def text_column(frame: pd.DataFrame) -> str | None:
    for column in frame.columns:
        if frame[column].dtype == object or str(frame[column].dtype).startswith(("string", "str")):
            if frame[column].astype(str).str.len().mean() > 50:
                return column
    return None


def run_baseline(task_dir: Path, meta: dict) -> pd.DataFrame:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    train = pd.read_csv(task_dir / "train.csv", low_memory=False)
    test = pd.read_csv(task_dir / "test.csv", low_memory=False)
    fmt = meta["submission_format"]
    target, id_column = meta["target"], meta["id_column"]
    regression = fmt["kind"] == "value"
    features = [c for c in test.columns if c != id_column]
    X, y, X_test = train[features], train[target], test[features]
    text = text_column(X)
    if text:
        model = make_pipeline(TfidfVectorizer(), Ridge() if regression else LogisticRegression(max_iter=1000))
        model.fit(X[text].fillna(""), y)
        inputs = X_test[text].fillna("")
    else:
        strings = [c for c in features if not pd.api.types.is_numeric_dtype(X[c])]
        encoder = ColumnTransformer(
            [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                    encoded_missing_value=np.nan), strings)],
            remainder="passthrough", verbose_feature_names_out=False)
        head = HistGradientBoostingRegressor(random_state=0) if regression else HistGradientBoostingClassifier(random_state=0)
        # HistGradientBoosting takes at most 255 categories; wider string columns go in as ordinal codes.
        narrow = [i for i, c in enumerate(strings) if X[c].nunique() <= 255]
        head.set_params(categorical_features=narrow or None)
        model = make_pipeline(encoder, head)
        model.fit(X.astype({c: str for c in strings}).where(X.notna(), np.nan) if strings else X, y)
        inputs = X_test.astype({c: str for c in strings}).where(X_test.notna(), np.nan) if strings else X_test
    answer = pd.DataFrame({id_column: test[id_column]})
    if regression:
        predictions = model.predict(inputs)
        if meta["metric"] == "rmsle":
            predictions = np.clip(predictions, 0, None)
        answer[fmt["target_columns"][0]] = predictions
        return answer
    proba = model.predict_proba(inputs)
    classes = [str(c) for c in model.classes_]
    if fmt["kind"] == "label":
        answer[fmt["target_columns"][0]] = model.classes_[proba.argmax(axis=1)]
    elif fmt["kind"] == "probability":
        answer[fmt["target_columns"][0]] = proba[:, classes.index(str(fmt["positive_class"]))]
    else:
        for column, cls in zip(fmt["target_columns"], fmt["classes"]):
            answer[column] = proba[:, classes.index(str(cls))]
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task_dir", type=Path)
    parser.add_argument("--answers-json", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    meta = json.loads(args.answers_json.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run_baseline(args.task_dir, meta).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
