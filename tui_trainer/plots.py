"""The seed's plot_training_history and plot_confusion_matrix, drawn in the terminal.

Both return the drawing as a string and print it unless show=False. Colours are used only
when printing to a terminal.
"""

from __future__ import annotations

import sys
from typing import Sequence


def _colour(show: bool) -> bool:
    return show and sys.stdout.isatty()


def plot_training_history(train_losses: Sequence[float], train_accs: Sequence[float],
                          val_losses: Sequence[float], val_accs: Sequence[float], *,
                          width: int = 100, height: int = 20, show: bool = True) -> str:
    """Loss and accuracy curves per epoch, side by side (plotext)."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.subplots(1, 2)
    epochs = list(range(1, len(train_losses) + 1))
    plt.subplot(1, 1)
    plt.title("loss")
    plt.plot(epochs, list(train_losses), label="train", marker="braille")
    plt.plot(epochs, list(val_losses), label="validation", marker="braille")
    plt.xlabel("epoch")
    plt.subplot(1, 2)
    plt.title("accuracy (%)")
    plt.plot(epochs, list(train_accs), label="train", marker="braille")
    plt.plot(epochs, list(val_accs), label="validation", marker="braille")
    plt.xlabel("epoch")
    if not _colour(show):
        plt.theme("clear")
    text = plt.build()
    if not _colour(show):
        text = plt.uncolorize(text)
    plt.clear_figure()
    if show:
        print(text)
    return text


def plot_confusion_matrix(cm, class_names: Sequence[str], *, show: bool = True) -> str:
    """The confusion matrix as a table (rows: true class, columns: predicted), with the
    diagonal and the largest confusions highlighted on a terminal."""
    rows = [[int(v) for v in row] for row in cm]
    names = [str(n) for n in class_names]
    short = all(len(n) <= 6 for n in names)
    heads = names if short else [str(i) for i in range(len(names))]
    labels = names if short else [f"{i} {n}" for i, n in enumerate(names)]
    label_w = max(len(s) for s in labels)
    cell_w = max([len(h) for h in heads] + [len(str(v)) for row in rows for v in row]) + 1
    colour = _colour(show)
    lines = ["confusion matrix (rows: true class, columns: predicted)",
             " " * label_w + "".join(f"{h:>{cell_w}}" for h in heads)]
    for i, (label, row) in enumerate(zip(labels, rows)):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            text = f"{v:>{cell_w}}"
            if colour and v:
                if i == j:
                    text = f"\x1b[1;32m{text}\x1b[0m"
                elif v / total >= 0.05:
                    text = f"\x1b[1;31m{text}\x1b[0m"
            cells.append(text)
        lines.append(f"{label:<{label_w}}" + "".join(cells))
    out = "\n".join(lines)
    if show:
        print(out)
    return out
