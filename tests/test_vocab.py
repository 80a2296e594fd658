"""The run's vocabularies as types: each Status and StopReason carries its word in events and
files, its label on screen, whether a report follows, and its exit code."""

from __future__ import annotations

import signal

import pytest

from tui_trainer.vocab import Status, StopReason, signal_exit_code

#            status                 word in events      badge             done   active exit
STATUSES = [(Status.PREPARING, "preparing", "PREPARING", False, True, 0),
            (Status.RUNNING, "running", "RUNNING", False, True, 0),
            (Status.PAUSED, "paused", "PAUSED", False, True, 0),
            (Status.STOPPING, "stopping", "STOPPING", False, True, 0),
            (Status.FINISHED, "finished", "FINISHED", True, False, 0),
            (Status.EARLY_STOPPED, "early_stopped", "EARLY STOPPED", True, False, 0),
            (Status.STOPPED, "stopped", "STOPPED", True, False, 0),
            (Status.INTERRUPTED, "interrupted", "INTERRUPTED", False, False, 130),
            (Status.FAILED, "failed", "FAILED", False, False, 1)]


@pytest.mark.parametrize("status, word, label, done, active, code", STATUSES)
def test_each_status_carries_its_word_label_and_exit_code(status, word, label, done, active, code):
    assert status == word and str(status) == word and Status(word) is status  # as events and report.json say it
    assert status.label == label and Status.from_label(label) is status
    assert (status.counts_as_done, status.active, status.exit_code) == (done, active, code)


def test_how_a_run_ended_in_words():
    assert [Status(w).words for w in ("finished", "early_stopped", "stopped", "interrupted", "failed")] == [
        "finished", "stopped early", "stopped by the user", "interrupted", "failed"]


def test_an_end_word_this_version_does_not_know_reads_as_interrupted():
    assert Status.of_end("early_stopped") is Status.EARLY_STOPPED
    assert Status.of_end("exploded") is Status.INTERRUPTED
    assert Status.of_end("running") is Status.INTERRUPTED  # not an end


#             reason             final status         report  exit
REASONS = [(StopReason.USER, Status.STOPPED, True, 0),  # the stop key: the report, and the run counts as done
           (StopReason.SIGNAL, Status.INTERRUPTED, True, 130),  # Ctrl-C without a console
           (StopReason.QUIT, Status.INTERRUPTED, False, 130),  # quitting the console mid-run
           (StopReason.TERM, Status.INTERRUPTED, False, 143),
           (StopReason.HANGUP, Status.INTERRUPTED, False, 129)]


@pytest.mark.parametrize("reason, status, report, code", REASONS)
def test_each_stop_reason_carries_its_outcome(reason, status, report, code):
    assert (reason.status, reason.report, reason.exit_code) == (status, report, code)
    assert StopReason.parse(reason.value) is reason


def test_an_unknown_stop_reason_counts_as_a_termination():
    assert StopReason.parse("made-up") is StopReason.TERM


def test_a_signal_exit_code_is_128_plus_its_number():
    assert [signal_exit_code(s) for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)] == [129, 130, 143]
