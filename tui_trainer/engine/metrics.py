"""Classification metrics: the seed's evaluate_classification, done with scikit-learn,
with per-class scores, macro averages and class names.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import events as ev


def classification_metrics(targets: np.ndarray, preds: np.ndarray, num_classes: int,
                           class_names: Sequence[str] | None = None) -> dict:
    """Accuracy, weighted and macro precision/recall/F1, per-class scores and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(num_classes))
    names = list(class_names) if class_names else [str(i) for i in labels]
    kw = dict(labels=labels, zero_division=0)
    p, r, f, _ = precision_recall_fscore_support(targets, preds, average="weighted", **kw)
    mp, mr, mf, _ = precision_recall_fscore_support(targets, preds, average="macro", **kw)
    cp, cr, cf, support = precision_recall_fscore_support(targets, preds, average=None, **kw)
    return {
        "accuracy": float(accuracy_score(targets, preds)),
        "precision": float(p), "recall": float(r), "f1": float(f),
        "macro_precision": float(mp), "macro_recall": float(mr), "macro_f1": float(mf),
        "per_class": {
            "precision": [float(x) for x in cp], "recall": [float(x) for x in cr],
            "f1": [float(x) for x in cf], "support": [int(x) for x in support],
        },
        "confusion_matrix": confusion_matrix(targets, preds, labels=labels),
        "class_names": names,
    }


@torch.inference_mode()
def predict(model: torch.nn.Module, dataloader, device, criterion=None, autocast=None,
            limit_batches: int | None = None, channels_last: bool = False):
    """Run the model over a loader; returns (targets, preds, loss_sum, count) with arrays on the CPU."""
    model.eval()
    preds, targets, losses = [], [], []
    count = 0
    for i, (data, target) in enumerate(dataloader):
        if limit_batches is not None and i >= limit_batches:
            break
        data = data.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if channels_last and data.dim() == 4:
            data = data.contiguous(memory_format=torch.channels_last)
        ctx = autocast() if autocast is not None else torch.autocast(device_type=torch.device(device).type, enabled=False)
        with ctx:
            output = model(data)
            if criterion is not None:
                losses.append(criterion(output.float(), target).detach() * target.size(0))
        preds.append(output.argmax(dim=1))
        targets.append(target)
        count += target.size(0)
    if not preds:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0.0, 0
    loss_sum = float(torch.stack(losses).sum().item()) if losses else float("nan")
    return (torch.cat(targets).cpu().numpy(), torch.cat(preds).cpu().numpy(), loss_sum, count)


def evaluate_classification(model, dataloader, device, num_classes: int,
                            class_names: Sequence[str] | None = None, verbose: bool = False) -> dict:
    """The seed's function: accuracy, precision, recall, F1 (weighted) and the confusion matrix,
    plus macro averages, per-class scores and class names."""
    targets, preds, _, _ = predict(model, dataloader, device)
    result = classification_metrics(targets, preds, num_classes, class_names)
    if verbose:
        print(f"accuracy:  {result['accuracy']:.4f}")
        print(f"precision: {result['precision']:.4f}")
        print(f"recall:    {result['recall']:.4f}")
        print(f"f1:        {result['f1']:.4f}")
    return result


def report_event(result: dict, split: str, loss: float, best_epoch: int) -> ev.EvaluationReport:
    pc = result["per_class"]
    return ev.EvaluationReport(
        split=split, loss=loss, accuracy=result["accuracy"],
        precision=result["precision"], recall=result["recall"], f1=result["f1"],
        macro_precision=result["macro_precision"], macro_recall=result["macro_recall"],
        macro_f1=result["macro_f1"], class_names=tuple(result["class_names"]),
        per_class_precision=tuple(pc["precision"]), per_class_recall=tuple(pc["recall"]),
        per_class_f1=tuple(pc["f1"]), support=tuple(pc["support"]),
        confusion_matrix=tuple(tuple(int(x) for x in row) for row in result["confusion_matrix"]),
        best_epoch=best_epoch,
    )


def classification_metrics_from_confusion(cm, class_names: Sequence[str] | None = None) -> dict:
    """The metrics of classification_metrics, from a confusion matrix ([true, predicted] counts):
    what scikit-learn computes from the predictions the matrix stands for, with zero_division=0
    (a class never predicted, or never present, scores 0), without expanding it into them."""
    cm = np.asarray(cm, dtype=np.int64)
    n = cm.shape[0]
    true_pos = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)  # samples of each class
    predicted = cm.sum(axis=0)  # predictions of each class
    precision = _ratio(true_pos, predicted)
    recall = _ratio(true_pos, support)
    f1 = _ratio(2 * true_pos, support + predicted)  # 2PR / (P + R), as scikit-learn computes it
    total = support.sum()

    def weighted(values: np.ndarray) -> float:
        return float(np.average(values, weights=support)) if total else 0.0

    names = list(class_names) if class_names else [str(i) for i in range(n)]
    return {
        "accuracy": float(true_pos.sum() / total) if total else 0.0,
        "precision": weighted(precision), "recall": weighted(recall), "f1": weighted(f1),
        "macro_precision": float(precision.mean()) if n else 0.0, "macro_recall": float(recall.mean()) if n else 0.0,
        "macro_f1": float(f1.mean()) if n else 0.0,
        "per_class": {
            "precision": [float(x) for x in precision], "recall": [float(x) for x in recall],
            "f1": [float(x) for x in f1], "support": [int(x) for x in support],
        },
        "confusion_matrix": cm,
        "class_names": names,
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(len(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
