"""Every docstring example of the installed package runs (models, streams, benchmarks)."""
import doctest
import importlib
import pkgutil

import pytest

import nextoffer.benchmarks
import nextoffer.models
import nextoffer.streams


def _modules() -> list[str]:
    names = []
    for package in (nextoffer.models, nextoffer.streams, nextoffer.benchmarks):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(names)


MODULES = _modules()


def test_every_module_is_found():
    assert {"nextoffer.models.policy", "nextoffer.streams.worker.agents", "nextoffer.streams.ops.cli",
            "nextoffer.streams.tools.storefront", "nextoffer.benchmarks.run"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(verbose=False)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (above)"
