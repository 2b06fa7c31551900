"""The improvement steps that change how a TF-IDF text reaches the traditional track's models
(plan/improvements.py orders them among the others)."""
from __future__ import annotations

from iml_ray.plan.repairs import Plans
from iml_ray.plan.round_facts import Improvement, RoundFacts

CHAR_NGRAM_MAX = 5
CHAR_NGRAM_COST = 3.5           # vectorising characters and a linear fit on several times the non-zeros (bbc_news: 3.3x)
# Trees see a few of a text's words, as AutoGluon's n-gram features give them: where a text sits beside other
# columns (a name's title, a product's brand); measured on two tasks, neither better nor worse on average, so the
# holdout decides per task, late in the order.
TEXT_TREE_TERMS = 30
TEXT_WORDS_COST = 1.2


def char_ngrams(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    prep, track = plans.prep, plans.track
    if (track.model_template != "traditional" or not prep.text or prep.text_mode != "tfidf" or prep.tfidf_char_ngram_max
            or "linear" not in track.models):
        return None
    new = prep.replace(tfidf_char_ngram_max=CHAR_NGRAM_MAX)
    return Improvement(Plans(new, track, plans.train), "char_ngrams",
                       f"character 2-{CHAR_NGRAM_MAX}-grams beside the word terms of {', '.join(prep.text)}",
                       CHAR_NGRAM_COST * facts.fresh_s)


def text_words(plans: Plans, facts: RoundFacts, budget: float) -> Improvement | None:
    prep, track = plans.prep, plans.track
    trees = set(track.models) - {"linear", "knn"}
    if (track.model_template != "traditional" or not prep.text or prep.text_mode != "tfidf" or prep.text_tree_terms
            or not trees or not trees_have_columns(plans)):
        return None
    new = prep.replace(text_tree_terms=TEXT_TREE_TERMS)
    return Improvement(Plans(new, track, plans.train), "text_words",
                       f"the trees see the length and the {TEXT_TREE_TERMS} most frequent words of {', '.join(prep.text)}",
                       TEXT_WORDS_COST * facts.fresh_s)


def trees_have_columns(plans: Plans) -> bool:
    """Whether anything but the sparse TF-IDF block (which the trees skip) reaches the models."""
    prep = plans.prep
    return prep.text_mode == "pretrained" or bool(set(prep.used_columns) - set(prep.text))
