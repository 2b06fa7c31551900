"""The Assembler joins modules into one standalone script, or says why it cannot."""
from __future__ import annotations

import pytest

from iml_ray.codegen.assemble import AssemblyError, ModuleSource, assemble, section_lines

PREP = '"""prep doc"""\nclass Preprocessor:\n    pass\n'
MODEL = ("def fit_model(X, y, c=()):\n    return 1\n\ndef predict_model(m, X):\n    return X\n\n"
         "def describe_model(m):\n    return {}\n"
         "\ndef apply_params(p):\n    pass\n\ndef tune_model(X, y, layout, settings):\n    return {}, {}\n")
RUNNER = "def main():\n    return 0\n\nif __name__ == '__main__':\n    main()\n"


def _assemble(prep=PREP, model=MODEL, runner=RUNNER):
    return assemble([ModuleSource("prep", prep), ModuleSource("model", model), ModuleSource("runner", runner)],
                    name="t", problem_type="binary", metric="auc", track="traditional")


def test_sections_are_joined_and_located():
    script = _assemble()
    compile(script, "pipeline.py", "exec")
    assert "iml_ray" not in script.split('"""', 2)[2]
    ranges = section_lines(script)
    lines = script.splitlines()
    assert "class Preprocessor:" in lines[ranges["prep"][0]:ranges["prep"][1]]
    assert "def fit_model(X, y, c=()):" in lines[ranges["model"][0]:ranges["model"][1]]
    assert "# prep doc" in script          # module docstrings survive as comments


def test_clashing_names_are_refused():
    with pytest.raises(AssemblyError, match="both define 'fit_model'"):
        _assemble(prep=PREP + "\ndef fit_model():\n    pass\n")


def test_missing_entry_point_is_blamed_on_its_module():
    with pytest.raises(AssemblyError) as info:
        _assemble(model="def fit_model(X, y):\n    pass\n")
    assert info.value.module == "model" and "predict_model" in str(info.value)


def test_syntax_error_names_the_module():
    with pytest.raises(AssemblyError, match="prep module has a syntax error"):
        _assemble(prep="class Preprocessor(:\n")


def test_imports_are_hoisted_once():
    script = _assemble(prep="import numpy as np\n" + PREP, model="import numpy as np\nimport json\n" + MODEL)
    lines = script.splitlines()
    assert lines.count("import numpy as np") == 1 and lines.count("import json") == 1
    assert lines.index("import numpy as np") < lines.index("# prep")
