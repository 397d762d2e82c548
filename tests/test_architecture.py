"""The house, measured from the code's imports (scripts/architecture.py): no import circles, no
module over 500 lines, a device runtime that uses nothing but itself, errors and spec, and an
architecture picture that is the code's current one."""

import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import architecture  # noqa: E402  (scripts/ is no package)


def test_no_two_modules_import_each_other_round_in_a_circle() -> None:
    assert architecture.cycles(architecture.import_graph()) == []


def test_the_cycle_finder_sees_a_circle_through_three_modules() -> None:
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert architecture.cycles(circle) == [["a", "b", "c"]]


def test_imports_inside_functions_and_under_type_checking_count() -> None:
    graph = architecture.import_graph()
    assert "edgetl.export" in graph["edgetl.verify"]  # `from edgetl.export import FORMATS` inside verify()
    assert "edgetl.verify.results" in graph["edgetl.verify.reports"]  # only under `if TYPE_CHECKING:`
    assert "edgetl.verify.reports" in graph["edgetl.render"]  # a name from a module, by `from edgetl.verify.reports`


def test_no_module_is_over_500_lines() -> None:
    assert architecture.long_modules(500) == {}


def test_the_device_runtime_imports_only_itself_errors_spec_and_the_version() -> None:
    graph = architecture.import_graph()
    outside = {target for module, targets in graph.items() if module.startswith("edgetl.runtime")
               for target in targets if not target.startswith("edgetl.runtime")}
    assert outside <= architecture.RUNTIME_MAY_IMPORT
    assert {"edgetl.errors", "edgetl.spec"} <= outside  # the scan did read the runtime's imports


def test_the_architecture_page_is_the_codes_current_picture() -> None:
    done = subprocess.run([sys.executable, "scripts/architecture.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (REPO / "docs" / "architecture-graph.md").read_text(encoding="utf-8")
    assert "```mermaid\nflowchart" in page and 'subgraph verify["edgetl/verify/"]' in page
