"""Your own networks in the lab: the only code it runs comes from the files named when it starts.

    networks = Networks(["my_models.py"])          # `cnnlab lab --models my_models.py`
    networks.offered()                             # [{"file": "my_models.py", "names": ["SmallNet"], ...}]
    networks.model("my_models.py:SmallNet")        # "/home/me/my_models.py:SmallNet": the argv's model
    networks.model("/tmp/evil.py:Net")             # CodeNotOffered: 400, naming the field, nothing imported

A model's text is a zoo name, a layer spec (data: building it runs no code) or a reference to code
(`building.model_kind`). A request may name code only in a `--models` file, whatever path it spells it by;
anything else is refused before a file is read. A saved run's code loads by the CLI's rule (`check_run_code`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.lab.security import FieldError


class CodeNotOffered(FieldError):
    """A request named a network in code that is not in a file the lab was started with (`--models`)."""

    def __init__(self, field: str, reference: str, offered: list[str]) -> None:
        files = ", ".join(offered) or "none: start it with cnnlab lab --models FILE.py"
        message = f"'{reference}' is not in a file the lab offers; it runs code only from its --models files"
        super().__init__(field, f"{message} ({files}).")
        self.reference = reference


class Networks:
    """The --models files: checked when the lab starts (a missing file stops it, in one line)."""

    def __init__(self, files=()) -> None:
        self.files: dict[Path, str] = {}  # resolved path -> as given on the command line
        for given in files or ():
            path = Path(given)
            if path.suffix != ".py" or not path.is_file():
                raise CnnlabError(f"--models {given}: no such Python file (from {Path.cwd()})")
            self.files[path.resolve()] = str(given)

    def offered(self) -> list[dict]:
        """Each file with the nn.Module classes and factories it defines now (read again each time, so an edit
        shows), or the one line saying why it cannot be imported."""
        from cnnlab.models.references import network_names

        listed = []
        for path, given in self.files.items():
            try:
                names, problem = network_names(path), None
            except CnnlabError as error:
                names, problem = [], str(error)
            listed.append({"file": given, "names": names, "entries": [f"{given}:{n}" for n in names], "error": problem})
        return listed

    def model(self, text, field: str = "model") -> str:
        """The model a request names, as a job's argv gives it: a zoo name or a spec as typed; code as the
        absolute reference into its --models file. CodeNotOffered for code anywhere else."""
        from cnnlab.building import REFERENCE, model_kind
        from cnnlab.models.references import parse_reference

        if not isinstance(text, str) or model_kind(text) != REFERENCE:
            return text
        reference = parse_reference(text)
        path = Path(reference.target).resolve() if reference.kind == "file" else None
        if path not in self.files:
            raise CodeNotOffered(field, text.strip(), list(self.files.values()))
        return f"{path}:{reference.name}"


def check_run_code(run) -> None:
    """Before a Resume job starts: a run of a network in code continues only by the CLI's rule, that it holds its
    own copy of the source, whose hash this user trained here (`cnnlab.models.trust`); UntrustedCode (403)
    otherwise, and a run naming code without a copy is refused. (Loading one for Inspect goes through
    `building.build_model`, which applies the same rule.)"""
    from cnnlab.building import REFERENCE, model_kind
    from cnnlab.models import trust

    config = run.read_config()
    if model_kind(config.model) != REFERENCE:
        return
    source = run.model_source
    if not source.is_file():
        raise CnnlabError(f"run {run.path.name} names code ({config.model}) but holds no copy of its source")
    trust.require_trust(run.path.name, hashlib.sha256(source.read_bytes()).hexdigest())
