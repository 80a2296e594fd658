"""Everything about a run's inputs that can be checked before its directory is made: the data
are there (found, extracted or downloaded), and the model can be built for them (timm installed,
pretrained weights cached, the user's factory returns a module with the right outputs)."""

from __future__ import annotations

import sys
from pathlib import Path


def check_inputs(config, resume_dir=None):
    """Returns the config to record (an image folder's notes its file list); raises UserError,
    or UserCodeError when the user's own code raised. resume_dir: the run a resume continues
    (an experiment file's run is checked with the copy it keeps)."""
    from . import data, models
    from .experiment import is_experiment_file

    if is_experiment_file(config.dataset):
        from .experiment_run import preflight

        preflight(config, resume_dir)
        return config
    config = data.preflight(config)
    models.preflight(config, lambda: data.sample_shape(config))
    return config


def run_name_parts(config) -> tuple[str, str]:
    """The dataset and model as a run directory's name shows them: a folder by its own name."""
    from .config import is_image_folder
    from .experiment import RUN_NAME, is_experiment_file
    from .models.spec import short_name

    if is_experiment_file(config.dataset):
        return Path(config.dataset).stem, RUN_NAME
    dataset = Path(config.dataset).name if is_image_folder(config.dataset) else config.dataset
    return dataset, short_name(config.model)


def user_code_files(config, run_dir) -> set[str]:
    """The files of the user's own code a run loads: an experiment file (and its copy in the run
    directory) and a `--model path.py:factory` or `package.module:factory`."""
    files: set[str] = set()
    if str(config.dataset).endswith(".py"):
        files |= {str(Path(config.dataset).resolve()), str((Path(run_dir) / "experiment.py").resolve())}
    try:
        from .models.spec import parse

        spec = parse(config.model)
    except Exception:  # noqa: BLE001 - an experiment file's model, or none we know
        return files
    if spec.kind == "factory":
        module = sys.modules.get(spec.source)
        path = spec.source if spec.is_file else getattr(module, "__file__", None)
        if path:
            files.add(str(Path(path).resolve()))
    return files


def user_traceback(exc: BaseException, files: set[str]) -> str:
    """The traceback from the first frame in one of `files` (the user's own code) down to where
    it raised; "" when none is on it (our bug or torch's: the one line says it)."""
    import traceback

    tb = exc.__traceback__
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) in files:
            return "".join(traceback.format_exception(type(exc), exc, tb))
        tb = tb.tb_next
    return ""


def print_user_traceback(exc) -> None:
    """The user's exception with the frames of their code, not ours (tui-trainer's frames above
    theirs are left out), then one line saying what raised it."""
    import traceback

    from .event_io import printable

    cause = exc.__cause__ or exc
    here = str(Path(__file__).resolve().parent)  # the tui_trainer package
    tb = cause.__traceback__
    while tb is not None and tb.tb_next is not None and \
            str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(here):
        tb = tb.tb_next
    traceback.print_exception(type(cause), cause, tb, file=sys.stderr)
    print(f"tui-trainer: error: {printable(str(exc))}", file=sys.stderr)
