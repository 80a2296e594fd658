"""Classification metrics against scikit-learn, and the diagnosis report."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from tui_trainer.data.loader import TensorLoader
from tui_trainer.engine import classification_metrics, diagnose_training_issues, evaluate_classification
from tui_trainer.engine.loop import classification_metrics_from_confusion

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ("cat", "dog", "owl", "eel", "yak")


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, 60)  # class 4 ("yak") never occurs
    preds = np.where(rng.random(60) < 0.6, targets, rng.integers(0, 5, 60))
    preds[preds == 2] = 1  # class 2 is never predicted
    return targets, preds


def sklearn_scores(targets, preds, labels):
    out = {"accuracy": accuracy_score(targets, preds)}
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(targets, preds, labels=labels, average=average, zero_division=0)
        prefix = "" if average == "weighted" else "macro_"
        out.update({prefix + "precision": p, prefix + "recall": r, prefix + "f1": f})
    p, r, f, s = precision_recall_fscore_support(targets, preds, labels=labels, average=None, zero_division=0)
    out["per_class"] = {"precision": p, "recall": r, "f1": f, "support": s}
    out["confusion_matrix"] = confusion_matrix(targets, preds, labels=labels)
    return out


def assert_matches(result, expected, names):
    for key in ("accuracy", "precision", "recall", "f1", "macro_precision", "macro_recall", "macro_f1"):
        assert result[key] == pytest.approx(expected[key]), key
    for key in ("precision", "recall", "f1", "support"):
        assert result["per_class"][key] == pytest.approx(list(expected["per_class"][key])), key
    np.testing.assert_array_equal(result["confusion_matrix"], expected["confusion_matrix"])
    assert list(result["class_names"]) == list(names)


def test_metrics_agree_with_sklearn_including_absent_classes(predictions):
    targets, preds = predictions
    result = classification_metrics(targets, preds, 5, NAMES)
    expected = sklearn_scores(targets, preds, list(range(5)))
    assert_matches(result, expected, NAMES)
    assert result["confusion_matrix"].shape == (5, 5)
    assert result["per_class"]["support"][4] == 0 and result["per_class"]["precision"][2] == 0
    assert result["precision"] != pytest.approx(result["macro_precision"])  # the two averages differ here


def test_metrics_from_a_confusion_matrix_equal_metrics_from_the_predictions(predictions):
    targets, preds = predictions
    cm = confusion_matrix(targets, preds, labels=list(range(5)))
    assert_matches(classification_metrics_from_confusion(cm, NAMES),
                   sklearn_scores(targets, preds, list(range(5))), NAMES)


def test_default_class_names_are_the_indices(predictions):
    targets, preds = predictions
    assert classification_metrics(targets, preds, 5)["class_names"] == ["0", "1", "2", "3", "4"]


def test_evaluate_classification_scores_the_models_predictions(blobs):
    x, y = blobs(n=50, features=4, classes=3, seed=3)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    model.train()
    with torch.no_grad():
        preds = model.eval()(x).argmax(1).numpy()  # eval mode: dropout off
    model.train()
    result = evaluate_classification(model, TensorLoader(x, y, 16), "cpu", 3, ("a", "b", "c"))
    assert_matches(result, sklearn_scores(y.numpy(), preds, [0, 1, 2]), ("a", "b", "c"))
    assert not model.training


# ---------------------------------------------------------------------- diagnose

class SmallNet(torch.nn.Module):
    """Conv + BatchNorm (buffers that a training-mode forward would change), no dropout."""

    def __init__(self, weight_scale: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 8 * 8, 10)
        with torch.no_grad():
            self.head.weight.mul_(weight_scale)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def image_batches(n=32, bad_value=None):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.arange(n) % 10
    if bad_value is not None:
        x[0, 0, 0, 0] = bad_value
    return TensorLoader(x, y, 16), x[:16], y[:16]


def diagnose(model, loader, lr=0.01):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lines: list[str] = []
    report = diagnose_training_issues(model, loader, torch.nn.CrossEntropyLoss(), opt, "cpu", out=lines.append)
    return report, lines


def line_with(lines, prefix):
    found = [line for line in lines if line.startswith(prefix)]
    assert found, f"no line starting with {prefix!r} in:\n" + "\n".join(lines)
    return found[0]


@pytest.mark.filterwarnings("error")
def test_diagnose_reports_what_the_seed_prints_and_more():
    model = SmallNet()
    model.eval()
    loader, x, y = image_batches()
    ref = copy.deepcopy(model).train()
    loss = torch.nn.functional.cross_entropy(ref(x), y)
    loss.backward()
    loss = float(loss.detach())
    grads = {name: float(p.grad.norm()) for name, p in ref.named_parameters()}
    total = math.sqrt(sum(v ** 2 for v in grads.values()))

    report, lines = diagnose(model, loader, lr=0.0125)
    assert report["warnings"] == [] and lines[-1] == "no problems found"
    assert "(16, 1, 8, 8)" in line_with(lines, "data shape:")
    assert "(16,)" in line_with(lines, "label shape:")
    assert f"[{float(x.min()):.3f}, {float(x.max()):.3f}]" in line_with(lines, "data range:")
    assert "[0, 9]" in line_with(lines, "label range:")
    assert "(16, 10)" in line_with(lines, "output shape:")
    line_with(lines, "output range:")
    initial = line_with(lines, "initial loss:")
    assert f"{loss:.4f}" in initial and f"ln(10) = {math.log(10):.4f}" in initial
    for name, value in grads.items():
        assert any(name in line and f"{value:.6f}" in line for line in lines), name
    assert f"{total:.4f}" in line_with(lines, "total grad norm:")
    assert f"{sum(p.numel() for p in model.parameters()):,}" in line_with(lines, "parameters:")
    assert "0.012500" in line_with(lines, "learning rate:")
    assert report["initial_loss"] == pytest.approx(loss, rel=1e-5)
    assert report["expected_loss"] == pytest.approx(math.log(10))
    assert report["total_grad_norm"] == pytest.approx(total, rel=1e-4)


def test_diagnose_leaves_weights_buffers_and_gradients_as_they_were():
    model = SmallNet()
    before = copy.deepcopy(model.state_dict())
    loader, _, _ = image_batches()
    diagnose(model, loader)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats included
    assert all(p.grad is None for p in model.parameters())


def test_diagnose_warns_about_non_finite_inputs():
    loader, _, _ = image_batches(bad_value=float("nan"))
    report, lines = diagnose(SmallNet(), loader)
    text = "\n".join(report["warnings"])
    assert "NaN or infinite" in text and "initial loss is not finite" in text
    assert any(line.startswith("WARNING:") for line in lines)


def test_diagnose_warns_about_large_gradients_and_a_high_initial_loss():
    loader, _, _ = image_batches()
    report, _ = diagnose(SmallNet(weight_scale=200.0), loader)
    text = "\n".join(report["warnings"])
    assert "far above ln(num_classes)" in text
    assert "conv.weight gradient norm is large" in text


def test_diagnose_reports_labels_the_model_cannot_output_instead_of_crashing():
    model = torch.nn.Linear(4, 3)
    before = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(0)
    loader = TensorLoader(torch.randn(8, 4, generator=g), torch.tensor([0, 1, 2, 3] * 2), 8)
    report, lines = diagnose(model, loader)
    assert "labels [0, 3] fall outside the model's 3 outputs" in report["warnings"][0]
    assert any(line.startswith("total grad norm:") for line in lines)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_diagnose_command_on_digits(cli):
    result = cli("diagnose", "digits")
    assert result.code == 0, result.out + result.err
    for prefix in ("data shape:", "label range:", "output shape:", "initial loss:", "gradient norms per layer:",
                   "total grad norm:", "parameters:", "learning rate:"):
        assert any(line.startswith(prefix) for line in result.out.splitlines()), prefix
    assert "ln(10) = 2.3026" in result.out and "no problems found" in result.out
