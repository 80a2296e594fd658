"""--cuda-graphs: the capture decision for every input and every fallback reason (a pure
function, no torch), and what a run says about it: the header's `step` line and the Notice."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tui_trainer.engine.capture import CaptureInputs, decide_capture

CAPTURABLE = CaptureInputs(requested="on", device_type="cuda", precision="bf16", accum_steps=1, world_size=1,
                           optimizer="AdamW", optimizer_fused=True, compiled=False, own_scheduler=False,
                           skip_nan=False, fixed_batch_size=True)


@pytest.mark.parametrize("optimizer", ["AdamW", "Adam", "SGD"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_on_captures_a_single_cuda_process_with_a_fused_optimizer(optimizer, precision):
    decision = decide_capture(replace(CAPTURABLE, optimizer=optimizer, precision=precision))
    assert decision.captured and not decision.fallback
    assert decision.label.startswith("captured as a CUDA graph (--cuda-graphs on, experimental)")


FALLBACKS = [
    ({"device_type": "cpu"}, "CUDA graphs need a CUDA GPU and this run is on cpu"),
    ({"device_type": "mps"}, "CUDA graphs need a CUDA GPU and this run is on mps"),
    ({"compiled": True}, "--compile is on"),
    ({"world_size": 4}, "DDP's gradient all-reduce is not captured (4 processes)"),
    ({"accum_steps": 2}, "gradient accumulation (--accum-steps 2) is not captured"),
    ({"precision": "fp16"}, "fp16's GradScaler decides on the host whether to skip a step"),
    ({"skip_nan": True}, "--on-nan skip reads every loss on the host"),
    ({"own_scheduler": True}, "a torch LR scheduler of your own writes the LR"),
    ({"optimizer": "RMSprop"}, "the optimizer is RMSprop (captured: AdamW, Adam, SGD)"),
    ({"optimizer_fused": False}, "the AdamW optimizer is not fused (build it with fused=True)"),
    ({"fixed_batch_size": False}, "the loader's batches have no fixed size"),
]


@pytest.mark.parametrize("change, reason", FALLBACKS)
def test_on_falls_back_to_eager_with_the_reason(change, reason):
    decision = decide_capture(replace(CAPTURABLE, **change))
    assert not decision.captured
    assert decision.fallback  # `on` was asked for: a Notice, not only the header
    assert reason in decision.reason and decision.reason.startswith("--cuda-graphs on, but ")
    assert decision.label == f"eager ({decision.reason})"


def test_the_compile_reason_says_what_compile_does():
    """--compile is torch.compile's default mode, which makes no CUDA graph: the reason must not
    say it is a CUDA-graph path of its own."""
    decision = decide_capture(replace(CAPTURABLE, compiled=True))
    assert decision.reason == ("--cuda-graphs on, but --compile is on and a torch.compile'd model is not captured "
                               "(use one or the other): training eagerly")


def test_the_first_blocker_is_the_one_named():
    decision = decide_capture(replace(CAPTURABLE, device_type="cpu", accum_steps=4, precision="fp16"))
    assert "this run is on cpu" in decision.reason and "accum" not in decision.reason


def test_off_is_eager_and_no_fallback():
    decision = decide_capture(replace(CAPTURABLE, requested="off"))
    assert (decision.captured, decision.fallback, decision.reason) == (False, False, "--cuda-graphs off")


def test_auto_stays_eager_until_a_gpu_run_verified_the_captured_step():
    decision = decide_capture(replace(CAPTURABLE, requested="auto"))  # the module's default: not verified
    assert not decision.captured and not decision.fallback
    assert "until a GPU run has verified the captured step" in decision.reason


def test_auto_once_verified_captures_what_on_captures_and_falls_back_like_it():
    assert decide_capture(replace(CAPTURABLE, requested="auto"), verified=True).captured
    on_cuda = decide_capture(replace(CAPTURABLE, requested="auto", accum_steps=2), verified=True)
    assert not on_cuda.captured and on_cuda.fallback and on_cuda.reason.startswith("--cuda-graphs auto: gradient")
    # a CPU run with auto is eager as expected: said in nothing louder than the reason
    on_cpu = decide_capture(replace(CAPTURABLE, requested="auto", device_type="cpu"), verified=True)
    assert not on_cpu.captured and not on_cpu.fallback


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="cuda_graphs must be one of auto, on, off"):
        decide_capture(replace(CAPTURABLE, requested="yes"))


# ------------------------------------------------------------------ what a run shows

TINY = ("--model", "mlp", "--epochs", "1", "--limit-batches", "2", "--batch-size", "32", "--threads", "1",
        "--headless", "--device", "cpu")


def test_on_with_a_cpu_device_trains_eagerly_and_says_why(cli, tmp_path):
    result = cli("run", "digits", *TINY, "--cuda-graphs", "on", "--run-dir", tmp_path / "run")
    assert result.code == 0, result.err
    reason = "--cuda-graphs on, but CUDA graphs need a CUDA GPU and this run is on cpu: training eagerly"
    assert f"  step       eager ({reason})" in result.out  # the run header
    assert f"warning: training step: eager ({reason})" in result.out  # the Notice, printed by the log
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["event"] == "RunStarted")
    assert started["training_step"] == f"eager ({reason})"
    notices = [e["message"] for e in events if e["event"] == "Notice"]
    assert f"training step: eager ({reason})" in notices
    assert json.loads((tmp_path / "run" / "config.json").read_text())["cuda_graphs"] == "on"


def test_the_default_on_a_cpu_says_nothing_about_capture(cli, tmp_path):
    result = cli("run", "digits", *TINY, "--run-dir", tmp_path / "run")
    assert result.code == 0, result.err
    assert "  step  " not in result.out and "training step" not in result.out


def test_a_bad_mode_is_one_line_and_exit_2(cli, tmp_path):
    result = cli("run", "digits", *TINY, "--cuda-graphs", "always", "--run-dir", tmp_path / "run")
    assert result.code == 2
    assert result.err.strip() == "tui-trainer: error: unknown --cuda-graphs mode 'always'; choose one of: auto, on, off"
    assert not (tmp_path / "run").exists()


def test_the_config_file_takes_cuda_graphs(cli, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('cuda-graphs = "off"\n')
    out = cli("run", "digits", "--config", path, "--print-config").out
    assert 'cuda-graphs = "off"' in out


def test_help_text_names_the_modes(capsys):
    from tui_trainer.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--cuda-graphs" in text and "EXPERIMENTAL" in text and "auto (default; eager until verified on a GPU)" in text


def test_resume_takes_cuda_graphs_to_leave_an_experimental_capture(cli, tmp_path):
    """`on` is experimental: a run resumed with --cuda-graphs off trains eagerly (that resume, as
    --device); a bad mode is one line, exit 2, and the run directory is left as it was."""
    run = tmp_path / "run"
    assert cli("run", "digits", *TINY, "--cuda-graphs", "on", "--run-dir", run).code == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    bad = cli("resume", run, "--epochs", "2", "--headless", "--cuda-graphs", "always")
    assert bad.code == 2
    assert bad.err.strip() == "tui-trainer: error: unknown --cuda-graphs mode 'always'; choose one of: auto, on, off"
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    result = cli("resume", run, "--epochs", "2", "--headless", "--cuda-graphs", "off")
    assert result.code == 0, result.err
    assert "training step" not in result.out and "  step  " not in result.out
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["training_step"] for e in events if e["event"] == "RunStarted"][-1] == ""
