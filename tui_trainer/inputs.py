"""Everything about a run's inputs that can be checked before its directory is made: the data
are there (found, extracted or downloaded), and the model can be built for them (timm installed,
pretrained weights cached, the user's factory returns a module with the right outputs)."""

from __future__ import annotations

import os
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


def _library_dirs() -> tuple[str, ...]:
    """Where code that is not the user's lives: tui-trainer itself, the standard library and the
    installed packages (torch above all)."""
    import site
    import sysconfig

    dirs = {Path(__file__).resolve().parent}
    paths = [sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")]
    for path in [*paths, site.getusersitepackages() if hasattr(site, "getusersitepackages") else None]:
        if path:
            dirs.add(Path(path).resolve())
    return tuple(f"{d}{os.sep}" for d in dirs)


def _is_users(filename: str, files: set[str], library: tuple[str, ...]) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = str(Path(filename).resolve())
    return path in files or not path.startswith(library)


def own_frames(exc: BaseException, files: set[str] = frozenset()) -> str:
    """exc's traceback with only the user's frames (their files, and `files`: an installed factory
    module), then its last line; torch's nn.Module calls and tui-trainer's frames between and
    around them are left out. "" when none of the user's frames is on it."""
    import traceback

    library = _library_dirs()
    summary = traceback.extract_tb(exc.__traceback__)
    own = [frame for frame in summary if _is_users(frame.filename, files, library)]
    if not own:
        return ""
    left_out = len(summary) - len(own)
    header = "Traceback (most recent call last):" + (f" your frames only, {left_out} of torch and tui-trainer "
                                                     "left out" if left_out else "") + "\n"
    return (header + "".join(traceback.StackSummary.from_list(own).format())
            + "".join(traceback.format_exception_only(type(exc), exc)))


def user_traceback(exc: BaseException, files: set[str]) -> str:
    """A failure during the run: the user's frames of it (see own_frames); "" when the run loads
    no code of the user's (`files` empty: a built-in model and dataset) or none of its frames is
    on it (our bug or torch's: the one line says it)."""
    return own_frames(exc, files) if files else ""


def print_user_traceback(exc) -> None:
    """The user's exception with the frames of their code only, then one line saying what raised
    it. When none of their lines is on it (torch raised, called with their model or loss), the
    exception's own line, and that the line below names the code of theirs it came from."""
    import traceback

    from .event_io import printable

    cause = exc.__cause__ or exc
    text = own_frames(cause)
    if not text:
        text = "".join(traceback.format_exception_only(type(cause), cause)) + \
            "(raised inside torch: no line of your code is on its traceback)\n"
    print(text, end="", file=sys.stderr)
    print(f"tui-trainer: error: {printable(str(exc))}", file=sys.stderr)
