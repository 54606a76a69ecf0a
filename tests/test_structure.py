"""The codebase's own rules, checked on the source: short functions, no import cycles (neither at import time nor
through imports inside functions), the lab apart from the CLI, and no argparse internals.

They read the files with `ast` or as text (nothing is imported), so they run in well under a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FUNCTION_LINES = 80  # the hard limit; we aim for 60


def module_names() -> dict[str, Path]:
    names = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def top_level_imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The cnnlab modules `name` imports when it is first imported: module level, TYPE_CHECKING blocks and
    function bodies excluded (those imports run later, when the cycle no longer matters)."""
    found: set[str] = set()
    stack = list(ast.parse(path.read_text()).body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnlab"):
            for alias in node.names:  # `from pkg import sub` imports the submodule sub
                target = f"{node.module}.{alias.name}"
                found.add(target if target in known else node.module)
        stack.extend(ast.iter_child_nodes(node))
    found.discard(name)
    return found


def all_imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The cnnlab modules `name` imports anywhere: module level, TYPE_CHECKING blocks and function bodies alike
    (an import inside a function still ties the two modules together)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnlab"):
            for alias in node.names:  # `from pkg import sub` imports the submodule sub
                target = f"{node.module}.{alias.name}"
                found.add(target if target in known else node.module)
    found.discard(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a list of names, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in graph:
        if start in state:
            continue
        path, iterators = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iterators[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                iterators.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_imports_another_at_top_level_in_a_cycle():
    known = module_names()
    graph = {name: top_level_imports(name, path, known) for name, path in known.items()}
    assert len(graph) > 50  # the walk found the package
    assert find_cycle(graph) is None


def test_no_modules_import_each_other_in_a_cycle_even_inside_functions():
    known = module_names()
    graph = {name: all_imports(name, path, known) for name, path in known.items()}
    assert "cnnlab.cli" in graph["cnnlab.__main__"] and "cnnlab.lab.server" in graph["cnnlab.cli"]  # function-level
    assert find_cycle(graph) is None


def test_all_imports_counts_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import cnnlab.a\n\ndef f():\n    from cnnlab.b import c\n    from cnnlab import d\n")
    known = {name: module for name in ("cnnlab", "cnnlab.a", "cnnlab.b", "cnnlab.d")}
    assert all_imports("m", module, known) == {"cnnlab.a", "cnnlab.b", "cnnlab.d"}
    assert top_level_imports("m", module, known) == {"cnnlab.a"}


def test_the_lab_does_not_import_the_cli():
    """The lab reads the option declarations (cnnlab.options), never the CLI's parser built from them."""
    known = module_names()
    lab = {name: path for name, path in known.items() if name == "cnnlab.lab" or name.startswith("cnnlab.lab.")}
    assert len(lab) > 10
    importing = sorted(name for name, path in lab.items() if "cnnlab.cli" in all_imports(name, path, known))
    assert importing == []


def test_no_source_reads_argparse_internals():
    """argparse's private attributes change between Python versions; the options layer is the source to read."""
    private = ("_actions", "_SubParsersAction", "_option_string_actions", "argparse._")
    found = [f"{p.relative_to(SRC)}: {word}" for p in SRC.rglob("*.py") for word in private if word in p.read_text()]
    assert found == []


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


# The run directory's files are read and written by cnnlab.rundir alone; a module that names one (a path
# `run / "config.json"`, a glob) would be a second reader or writer of it.
RUN_FILE_NAMES = {"config.json", "results.json", "metrics.csv", "progress.jsonl", "eval.json", "finetune.json"}
RUN_FILES_HOME = SRC / "cnnlab" / "rundir"


def names_a_run_file(value: object) -> bool:
    """A string constant that is one of the run files' names, or a path ending in one ("x/config.json")."""
    return isinstance(value, str) and value.strip().rsplit("/", 1)[-1] in RUN_FILE_NAMES


def run_file_names_outside_the_package() -> list[str]:
    found = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(RUN_FILES_HOME):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and names_a_run_file(node.value):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    return found


def test_names_a_run_file_matches_names_and_paths_not_prose():
    assert names_a_run_file("config.json") and names_a_run_file("seed-0/metrics.csv")
    assert not names_a_run_file("every past run's results.json as one table") and not names_a_run_file(3)


def test_only_the_rundir_package_opens_run_files_by_name():
    assert run_file_names_outside_the_package() == []


UPPER_ROOMS = ("cnnlab.training", "cnnlab.engine", "cnnlab.workflows")  # above inference: it must never reach up


def test_inference_does_not_import_the_engine_or_the_workflows():
    """Inference stands below training: no import of the engine, the workflows or the old training package, at
    module level or inside a function (shared pieces live in cnnlab.precision, .batches, .building, .checkpoint)."""
    known = module_names()
    inference = {n: p for n, p in known.items() if n == "cnnlab.inference" or n.startswith("cnnlab.inference.")}
    assert len(inference) >= 4
    upward = sorted(
        f"{name} -> {target}"
        for name, path in inference.items()
        for target in all_imports(name, path, known)
        if target.startswith(UPPER_ROOMS)
    )
    assert upward == []
