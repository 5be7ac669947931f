"""Sphinx configuration for the sctransfer documentation.

Build with ``make docs`` (``sphinx-build -W --keep-going -E``): every warning fails the build,
and ``nitpicky`` turns each unresolved cross-reference into a warning.

Intersphinx needs the network. When the inventories cannot be reached (an offline machine),
intersphinx is switched off and qualified names outside ``sctransfer`` (``numpy.ndarray``) are
exempt from ``nitpicky``; references to sctransfer's own objects and bare names are still checked. On Read the Docs the
build is always online and fully strict. Force a mode with ``SCTRANSFER_DOCS_OFFLINE=1`` / ``=0``.
"""

import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import sys
import threading
import urllib.request
from datetime import datetime
from importlib.metadata import metadata
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer

HERE = Path(__file__).parent
ROOT = HERE.parent

# -- Project information -----------------------------------------------------

info = metadata("sctransfer")
project = info["Name"]
author = info["Author"] or "sctransfer developers"
copyright = f"{datetime.now():%Y}, {author}"
version = info["Version"]
release = info["Version"]
urls = dict(entry.split(", ", 1) for entry in info.get_all("Project-URL") or [])
repository_url = urls.get("Source", "https://github.com/sctransfer/sctransfer")

templates_path = ["_templates"]
nitpicky = True  # every broken reference is a warning, and -W makes it an error
needs_sphinx = "7.0"

# -- Tutorials ----------------------------------------------------------------
# Notebooks live in <repo>/tutorials/ (outside the Sphinx source tree). They are copied into
# docs/tutorials/ (git-ignored) at every build so that myst-nb renders them with their stored
# outputs; tutorials.md lists them with a glob. Copies whose source is gone are removed.

TUTORIALS_SRC = ROOT / "tutorials"
TUTORIALS_DST = HERE / "tutorials"


def _sync_tutorials() -> list[str]:
    notebooks = sorted(TUTORIALS_SRC.glob("*.ipynb"))
    if notebooks:
        TUTORIALS_DST.mkdir(exist_ok=True)
    names = {nb.name for nb in notebooks}
    if TUTORIALS_DST.is_dir():
        for stale in TUTORIALS_DST.glob("*.ipynb"):
            if stale.name not in names:
                stale.unlink()
    for nb in notebooks:
        target = TUTORIALS_DST / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copy2(nb, target)
    return [nb.stem for nb in notebooks]


TUTORIALS = _sync_tutorials()

# -- Generated pages: the bibliography and the benchmark tables ----------------------------------
# docs/references.bib is the one list of citations: docs/references.md (git-ignored) is written from
# it. The tables of benchmarks.md are read from benchmarks/results/*.json, never copied by hand.

GENERATED = HERE / "generated"


def _bib_entries(text: str) -> list[dict[str, str]]:
    """Entries of a BibTeX file whose field values are in braces (no nested braces)."""
    entries = []
    for match in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", text, flags=re.DOTALL):
        fields = dict(re.findall(r"(\w+)\s*=\s*\{([^{}]*)\}", match[3]))
        entries.append({"type": match[1].lower(), "key": match[2], **{k.lower(): v for k, v in fields.items()}})
    return entries


def _authors(field: str) -> str:
    """``Last, First and ... and others`` -> ``Last F, ... et al.``."""
    names, more = [], False
    for name in (n.strip() for n in field.split(" and ")):
        if name == "others":
            more = True
            continue
        last, _, first = name.partition(",")
        initials = "".join(part[0] for part in re.split(r"[\s.\-]+", first) if part)
        names.append(f"{last.strip()} {initials}".strip())
    return ", ".join(names) + (" et al." if more else "")


def _write_references() -> None:
    """docs/references.md from docs/references.bib: one labelled paragraph per work, in file order."""
    lines = [
        "# References",
        "",
        "The works these pages cite; `docs/references.bib` in the repository holds them as BibTeX.",
        "",
    ]
    for entry in _bib_entries((HERE / "references.bib").read_text(encoding="utf-8")):
        venue = f"*{entry.get('journal') or entry.get('booktitle', '')}*"
        if "volume" in entry:
            venue += f" {entry['volume']}" + (f"({entry['number']})" if "number" in entry else "")
        if "pages" in entry:
            venue += f":{entry['pages']}" if "volume" in entry else f", {entry['pages']}"
        link = f"https://doi.org/{entry['doi']}" if "doi" in entry else entry.get("url")
        text = f"{_authors(entry['author'])} ({entry['year']}). {entry['title']}. {venue}."
        lines += [f"({entry['key']})=", text + (f" <{link}>" if link else ""), ""]
    target = HERE / "references.md"
    content = "\n".join(lines)
    if not target.exists() or target.read_text(encoding="utf-8") != content:
        target.write_text(content, encoding="utf-8")


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    )


def _write_benchmark_tables() -> None:
    """The defaults studies of benchmarks/results as Markdown tables, included by benchmarks.md."""
    results = ROOT / "benchmarks" / "results"
    GENERATED.mkdir(exist_ok=True)
    scncl = json.loads((results / "scncl_defaults.json").read_text())
    splits = list(dict.fromkeys(r["split"] for r in scncl))
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in scncl):
        runs = {r["split"]: r for r in scncl if r["variant"] == variant}
        cells = [f"{runs[s]['accuracy']:.3f} / {runs[s]['macro_f1']:.3f}" if s in runs else "" for s in splits]
        mean = [sum(runs[s][k] for s in runs) / len(runs) for k in ("accuracy", "macro_f1", "wall_s")]
        rows.append([variant, *cells, f"{mean[0]:.3f} / {mean[1]:.3f}", f"{mean[2]:.0f} s"])
    (GENERATED / "scncl_defaults.inc").write_text(
        _table(["variant", *(s.replace("->", " → ") for s in splits), "mean", "mean wall time"], rows) + "\n"
    )
    scclip = json.loads((results / "scclip_defaults.json").read_text())
    rows = [
        [r["variant"], r["held_out"], f"{r['foscttm']:.3f}", f"{r['train_wall_s']:.0f} s"]
        for r in sorted(scclip, key=lambda r: (r["held_out"], r["foscttm"]))
    ]
    (GENERATED / "scclip_defaults.inc").write_text(
        _table(["variant (seed 0)", "held-out libraries", "FOSCTTM", "training time"], rows) + "\n"
    )
    held_out = json.loads((results / "novelty_all_splits.json").read_text())["open_set"]
    held_out += json.loads((results / "novelty_none.json").read_text())["open_set"]
    splits = list(dict.fromkeys(r["split"] for r in held_out))
    rows = []
    for setting in dict.fromkeys(r["held_out"] for r in held_out):
        runs = {  # split -> its runs (one per seed); the table shows the mean over the seeds
            s: [r for r in held_out if r["held_out"] == setting and r["split"] == s] for s in splits
        }
        mean = {
            s: {k: sum(r[k] for r in rs) / len(rs) for k in ("novel recall", "known flagged") if k in rs[0]}
            for s, rs in runs.items()
            if rs
        }
        cells = [
            (f"{mean[s]['novel recall']:.0%} / " if setting else "") + f"{mean[s]['known flagged']:.1%}"
            if s in mean
            else ""
            for s in splits
        ]
        rows.append([setting.replace("+", " + ") or "nothing", *cells])
    (GENERATED / "novelty_threshold.inc").write_text(
        _table(["held out", *(s.replace("->", " → ") for s in splits)], rows) + "\n"
    )
    refine = json.loads((results / "novelty.json").read_text())["refine"]
    rows = [
        [
            f"{r['min_margin']:g}",
            f"{r['flagged']:,}",
            f"{r['precision']:.2f}",
            f"{r['recall']:.2f}",
            f"{r['proposal correct (flagged corrupted cells)']:.0%}",
        ]
        for r in sorted(refine, key=lambda r: r["min_margin"])
    ]
    (GENERATED / "refine_annotation.inc").write_text(
        _table(["min_margin", "cells flagged", "precision", "recall", "proposal correct"], rows) + "\n"
    )


def _write_label_transfer_table() -> None:
    """Accuracy, macro-F1, calibration and seed agreement of label transfer (benchmarks/label_transfer.py)."""
    results = ROOT / "benchmarks" / "results"
    ours, ceiling = "sctransfer (default)", "ceiling: ATAC classifier with ATAC labels"
    rows = []
    for name in ("label_transfer.json", "label_transfer_fine.json"):
        record = json.loads((results / name).read_text())
        agreement = {(a["split"], a["method"]): a["agreement"] for a in record["seed_agreement"]}
        for split in dict.fromkeys(r["split"] for r in record["runs"]):
            runs = [r for r in record["runs"] if r["split"] == split and r["method"] == ours]
            ceilings = [r for r in record["runs"] if r["split"] == split and r["method"].startswith("ceiling")]
            top = [r["accuracy"] for r in ceilings if r["method"] == ceiling]
            top_f1 = max((r["macro_f1"] for r in ceilings), default=None)  # either ceiling: accuracy- or F1-tuned
            mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("accuracy", "macro_f1", "ece", "cpu_s")}
            rows.append(
                [
                    record["level"],
                    split.replace("->", " → "),
                    f"{mean['accuracy']:.3f}",
                    f"{sum(top) / len(top):.3f}" if top else "",
                    f"{mean['macro_f1']:.3f}",
                    f"{top_f1:.3f}" if top_f1 is not None else "",
                    f"{mean['ece']:.3f} ({max(r['ece'] for r in runs):.3f})",
                    f"{agreement[split, ours]:.3f}",
                    f"{mean['cpu_s']:.0f} s",
                ]
            )
    header = [
        "types",
        "split",
        "accuracy",
        "ceiling",
        "macro-F1",
        "ceiling macro-F1",
        "ECE (worst seed)",
        "seed agreement",
        "CPU time",
    ]
    (GENERATED / "label_transfer_trust.inc").write_text(_table(header, rows) + "\n")


_write_references()
_write_benchmark_tables()
_write_label_transfer_table()

# -- General configuration ---------------------------------------------------

extensions = [
    "myst_nb",
    "sphinx_copybutton",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",  # after napoleon
    "sphinx.ext.mathjax",
    "IPython.sphinxext.ipython_console_highlighting",
]

autosummary_generate = True
autodoc_member_order = "groupwise"
default_role = "literal"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True
typehints_defaults = "braces"

myst_heading_anchors = 6
myst_enable_extensions = [
    "amsmath",
    "colon_fence",
    "deflist",
    "dollarmath",
    "html_image",
    "html_admonition",
]
myst_url_schemes = ("http", "https", "mailto")

# Notebooks are rendered with the outputs stored in them; they are never executed here.
nb_execution_mode = "off"
nb_output_stderr = "remove"
nb_merge_streams = True

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

# -- Intersphinx ---------------------------------------------------------------

_INTERSPHINX = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
}
intersphinx_timeout = 30


def _offline() -> bool:
    """Whether the intersphinx inventories are out of reach (forced by SCTRANSFER_DOCS_OFFLINE)."""
    forced = os.environ.get("SCTRANSFER_DOCS_OFFLINE", "").strip().lower()
    if forced in {"1", "true", "yes"}:
        return True
    if forced in {"0", "false", "no"} or os.environ.get("READTHEDOCS"):
        return False
    result: list[bool] = []

    def probe() -> None:
        request = urllib.request.Request(_INTERSPHINX["python"][0] + "/objects.inv", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=5):
                result.append(True)
        except Exception:  # noqa: BLE001 - any failure means "offline"
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout=10)  # DNS look-ups can ignore the socket timeout
    return not (result and result[0])


OFFLINE = _offline()
if OFFLINE:
    print(
        "sctransfer docs: intersphinx inventories unreachable, building OFFLINE: intersphinx off, "
        "references outside sctransfer not checked (Read the Docs checks them).",
        file=sys.stderr,
    )
    intersphinx_mapping = {}
    # Exempt only qualified names outside sctransfer (``numpy.ndarray``, ``anndata.AnnData``): they need
    # intersphinx. sctransfer's own objects and bare names (unresolvable online too) stay nitpicky.
    nitpick_ignore_regex = [(r"py:.*", r"(?!sctransfer\.)[A-Za-z_]\w*\..+")]
else:
    intersphinx_mapping = _INTERSPHINX
    nitpick_ignore_regex = []

nitpick_ignore = [
    # A reference outside our control that cannot be resolved goes here, e.g. ("py:class", "igraph.Graph").
]

# -- HTML output -------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_title = project
html_theme_options = {
    "repository_url": repository_url,
    "repository_branch": "main",
    "use_repository_button": True,
    "path_to_docs": "docs/",
    "navigation_with_keys": False,
}
pygments_style = "default"


def _tutorials_without_notebooks(app, docname, source) -> None:
    """With no notebook in tutorials/, replace the (empty) glob toctree by a sentence."""
    if docname == "tutorials" and not TUTORIALS:
        source[0] = re.sub(
            r"```\{toctree\}.*?```",
            "No tutorial notebook has been published yet.",
            source[0],
            flags=re.DOTALL,
        )


def _public_name(target: str) -> str | None:
    """Shortest public path of a class given under a private module path.

    ``anndata._core.anndata.AnnData`` -> ``anndata.AnnData``, ``pandas.core.frame.DataFrame`` ->
    ``pandas.DataFrame``, ``sctransfer.model._scncl.SCNCL`` -> ``sctransfer.model.SCNCL``. Type hints
    and base classes are written with ``__module__``, which is often a private module that neither
    the API pages nor other projects' intersphinx inventories list.
    """
    module_path, _, name = target.rpartition(".")
    if not module_path:
        return None
    try:
        obj = getattr(importlib.import_module(module_path), name)
    except Exception:  # noqa: BLE001 - not an importable object: leave the reference alone
        return None
    parts = module_path.split(".")
    for i in range(1, len(parts)):
        if parts[i - 1].startswith("_"):
            break
        candidate = ".".join(parts[:i])
        try:
            if getattr(importlib.import_module(candidate), name, None) is obj:
                return f"{candidate}.{name}"
        except Exception:  # noqa: BLE001
            continue
    return None


def _resolve_private_path(app, env, node, contnode):
    """Retry an unresolved class reference by its public path: in these docs, then through intersphinx."""
    if node.get("refdomain") != "py" or node.get("reftype") not in {"class", "exc", "obj"}:
        return None
    public = _public_name(node.get("reftarget", ""))
    if public is None:
        return None
    retry = node.deepcopy()
    retry["reftarget"] = public
    resolved = env.domains["py"].resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], public, retry, contnode
    )
    if resolved is None and intersphinx_mapping:
        from sphinx.ext.intersphinx import missing_reference

        resolved = missing_reference(app, env, retry, contnode)
    return resolved


def _is_private_sctransfer_class(cls: type) -> bool:
    """A class of sctransfer that no public module exports (a mixin such as ``model._base.SaveLoadMixin``)."""
    return cls.__module__.startswith("sctransfer.") and _public_name(f"{cls.__module__}.{cls.__qualname__}") is None


def _public_bases(app, name, obj, options, bases) -> None:
    """Show a class's public bases: a private sctransfer base is replaced by its own bases.

    ``SCNCL(StepTrainingMixin, SaveLoadMixin, BaseModelClass)`` shows as based on ``BaseModelClass``;
    what it gets from the private mixins (``save``, ``load``, ...) is documented on its own page
    (see :func:`_members_from_private_bases`), as scvi-tools documents its models' mixin methods.
    """
    public: list[type] = []

    def add(base: type) -> None:
        if base is object or base in public:
            return
        if _is_private_sctransfer_class(base):
            for parent in base.__bases__:
                add(parent)
        else:
            public.append(base)

    for base in list(bases):
        add(base)
    bases[:] = public


def _members_from_private_bases() -> dict[str, list[str]]:
    """Public members that the public classes of sctransfer inherit from its private classes.

    ``{"sctransfer.model.SCNCL": ["load", "load_registry", "save", "view_setup_args"], ...}``, read by
    ``_templates/autosummary/class.rst``: such members are documented on the class's page, while members
    inherited from other projects (scvi-tools, torch) are documented by them, behind the base-class link.
    """
    import sctransfer

    shared: dict[str, list[str]] = {}
    for subpackage in sctransfer._SUBPACKAGES:
        package = importlib.import_module(f"sctransfer.{subpackage}")
        for name in getattr(package, "__all__", []):
            cls = getattr(package, name)
            if not isinstance(cls, type):
                continue
            names = [
                attr
                for attr in dir(cls)
                if not attr.startswith("_")
                and attr not in vars(cls)
                and _is_private_sctransfer_class(next(k for k in cls.__mro__ if attr in vars(k)))
            ]
            if names:
                shared[f"sctransfer.{subpackage}.{name}"] = names
    return shared


autosummary_context = {"members_from_private_bases": _members_from_private_bases()}


def _decorated_classmethod_signature(app, what, name, obj, options, signature, return_annotation):
    """The signature of a decorated classmethod without ``cls`` (``SCNCL.load(dir_path, adata=None, ...)``).

    sphinx-autodoc-typehints unwraps the bound method to the decorated function and, seeing a classmethod,
    assumes ``cls`` is already gone. Runs before it, calls it and drops ``cls``.
    """
    if what != "method" or not inspect.ismethod(obj) or not hasattr(obj.__func__, "__wrapped__"):
        return None
    from sphinx_autodoc_typehints import process_signature

    result = process_signature(app, what, name, obj, options, signature, return_annotation)
    if result is None:
        return None
    formatted, annotation = result
    return re.sub(r"^\(cls(, |\))", lambda m: "(" if m[1] == ", " else "()", formatted), annotation


def _reexported_data_doc(app, what, name, obj, options, lines) -> None:
    """Document a constant re-exported by a package with its ``#:`` comment.

    autodoc reads the ``#:`` comment of a module-level constant only in the module the constant is
    documented under. For ``sctransfer.datasets.KNOWN_GENOMES``, imported into the package from
    ``sctransfer.datasets._annotation``, it finds none and falls back to the docstring of the value's
    type (``tuple``). Here the comment is read in the submodule that defines the constant.
    """
    if what != "data" or not name.startswith("sctransfer."):
        return
    package_name, _, attr = name.rpartition(".")
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        module_name = f"{package_name}.{info.name}"
        if getattr(importlib.import_module(module_name), attr, None) is not obj:
            continue
        comment = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attr))
        if comment:
            lines[:] = list(comment)
            return


def _parse_returns_section(self, section: str) -> list[str]:
    """Read a numpy "Returns" section as a description, as scanpy and scverse write them.

    Napoleon would take an untyped first line as the return *type*; here the whole section is the
    description, and sphinx-autodoc-typehints adds the type from the return annotation. Lines of the
    form ``name : type`` become list items.
    """
    lines = self._dedent(self._consume_to_next_section())
    if lines and lines[0] == ":":
        del lines[0]
    described = []
    for line in lines:
        named = re.fullmatch(r"(?P<name>\w+)\s+:\s+(?P<type>[\w.]+)", line)
        described.append(f"- **{named['name']}** (:class:`~{named['type']}`)" if named else line)
    block = self._format_block(":returns: ", described)
    if block and block[-1]:
        block.append("")
    return block


def setup(app):
    """Register the build hooks."""
    from sphinx.ext.napoleon.docstring import NumpyDocstring

    NumpyDocstring._parse_returns_section = _parse_returns_section
    app.connect("source-read", _tutorials_without_notebooks)
    app.connect("autodoc-process-docstring", _reexported_data_doc)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-process-signature", _decorated_classmethod_signature, priority=400)  # before typehints
    app.connect("missing-reference", _resolve_private_path, priority=900)  # after intersphinx (500)
