"""A linear model on TF-IDF text: each term scaled by its largest value (MaxAbsScaler) or the rows as the
vectoriser wrote them (unit length), by k-fold cross-validation on a task's train file.

    .venv/bin/python benchmarks/linear_text_scaling.py TASK_DIR --text review --target sentiment --metric auc

The vectoriser is the prep template's (word 1-2-grams, min_df 2, 20,000 terms, sublinear tf); the plain
baseline's (scikit-learn's defaults, C = 1) is shown beside. Two seeds of 5 stratified folds, the same folds for
every variant: a difference is paired. Prints one markdown row per variant: the mean score and its standard
error over the ten folds (log loss as its negative, so higher is better everywhere).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import MaxAbsScaler

STRENGTHS = (1.0, 10.0, 30.0)
SEEDS = (0, 1)


def read_train(task: Path) -> pd.DataFrame:
    if (task / "train.csv").is_file():
        return pd.read_csv(task / "train.csv")
    return pd.read_json(task / "train.json")


def score(metric: str, truth: np.ndarray, proba: np.ndarray) -> float:
    if metric == "auc":
        return float(roc_auc_score(truth, proba[:, 1]))
    if metric == "logloss":
        return -float(log_loss(truth, proba, labels=list(range(proba.shape[1]))))
    return float(accuracy_score(truth, proba.argmax(axis=1)))


def design(train_texts, test_texts, scaled: bool | None):
    """scaled None: the baseline's vectoriser; else the prep template's, with or without per-term scaling."""
    if scaled is None:
        vectoriser = TfidfVectorizer().fit(train_texts)
        return vectoriser.transform(train_texts), vectoriser.transform(test_texts)
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20000, sublinear_tf=True).fit(train_texts)
    train, test = vectoriser.transform(train_texts), vectoriser.transform(test_texts)
    if scaled:
        scaler = MaxAbsScaler().fit(train)
        train, test = scaler.transform(train), scaler.transform(test)
    return train, test


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", type=Path)
    parser.add_argument("--text", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--metric", choices=("auc", "accuracy", "logloss"), required=True)
    args = parser.parse_args(argv)
    frame = read_train(args.task)
    texts = frame[args.text].fillna("").astype(str).to_numpy()
    labels = pd.factorize(frame[args.target])[0]
    variants = [("baseline's TF-IDF, C 1", None, 1.0)]
    variants += [(f"scaled per term, C {c:g}", True, c) for c in STRENGTHS]
    variants += [(f"unit rows, C {c:g}", False, c) for c in STRENGTHS]
    scores: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for seed in SEEDS:
        for fit_rows, held_rows in StratifiedKFold(5, shuffle=True, random_state=seed).split(texts, labels):
            for name, scaled, strength in variants:
                train, held = design(texts[fit_rows], texts[held_rows], scaled)
                model = LogisticRegression(C=strength, max_iter=2000).fit(train, labels[fit_rows])
                scores[name].append(score(args.metric, labels[held_rows], model.predict_proba(held)))
    print(f"| {args.task.name} ({args.metric}) | mean | standard error |")
    print("|---|---|---|")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.4f} | {np.std(values) / np.sqrt(len(values)):.4f} |")


if __name__ == "__main__":
    main()
