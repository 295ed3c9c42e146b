"""Every `>>>` example in grok_tf's docstrings runs, or says why not.

Each module's examples run with `doctest` in the module's namespace. An
example marked `# doctest: +SKIP` must sit in a docstring that states why
it is not run, as `(not run: <reason>)` — e.g. it needs a trained run or a
file the reader has — so a skip is a decision, not an accident.
"""

import doctest
import importlib
import io
import pkgutil
import re

import pytest

import grok_tf

MODULES = sorted(
    module.name
    for module in pkgutil.walk_packages(grok_tf.__path__, "grok_tf.")
    if module.name != "grok_tf.__main__"  # runs the CLI when imported
)
REASON = re.compile(r"\(not run: [^)]+\)")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def docstring_tests(name):
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in docstring_tests(name):
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()


@pytest.mark.parametrize("name", MODULES)
def test_skipped_examples_say_why(name):
    unexplained = [
        test.name
        for test in docstring_tests(name)
        if any(example.options.get(doctest.SKIP) for example in test.examples)
        and not REASON.search(test.docstring)
    ]
    assert not unexplained, (
        f"{unexplained}: a docstring with `# doctest: +SKIP` examples says "
        "why they are not run, as `(not run: <reason>)`"
    )


def test_a_failing_example_fails():
    """The runner above would catch a wrong example (not a vacuous test)."""

    def wrong():
        """>>> 1 + 1
        3
        """

    test = doctest.DocTestFinder().find(wrong, "wrong")[0]
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=io.StringIO().write)
    assert runner.failures == 1
