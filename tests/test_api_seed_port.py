"""The seed tutorial's CIFAR-10 script, ported by changing its imports.

The body of `seed_script` is the seed's, line for line, except where data come from: random
16x16 tensors through a torch DataLoader instead of torchvision's download, and 2 epochs
instead of 100. Its plotting calls are left out (they draw windows).
"""

from __future__ import annotations

import os
import re

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def seed_script(trainloader, testloader, num_epochs=2):
    # --- the port: these imports replace the seed's own definitions ---
    import torch.nn as nn
    import torch.optim as optim

    from tui_trainer import EarlyStopping, SimpleCNN, Trainer, create_scheduler, evaluate_classification

    # --- from here on, the seed's script ---
    # 训练设置
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = SimpleCNN(num_classes=10).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.01)
    scheduler = create_scheduler(optimizer, 'cosine', T_max=100)

    # 创建训练器
    trainer = Trainer(model, trainloader, testloader, criterion, optimizer, device)

    # 开始训练
    train_losses, train_accs, val_losses, val_accs = trainer.train(
        num_epochs=num_epochs,
        scheduler=scheduler,
        early_stopping=EarlyStopping(patience=15)
    )

    # 最终评估
    class_names = ['airplane', 'automobile', 'bird', 'cat', 'deer',
                   'dog', 'frog', 'horse', 'ship', 'truck']
    metrics = evaluate_classification(model, testloader, device, 10)
    return trainer, model, (train_losses, train_accs, val_losses, val_accs), metrics, class_names


@pytest.fixture
def cifar_like_loaders():
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    # small images keep SimpleCNN quick on a CPU; its adaptive pooling takes any size
    x_train = torch.randn(40, 3, 16, 16, generator=g)
    y_train = torch.randint(0, 10, (40,), generator=g)
    x_test = torch.randn(20, 3, 16, 16, generator=g)
    y_test = torch.randint(0, 10, (20,), generator=g)
    # the seed's loaders, minus the worker processes
    trainloader = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True)
    testloader = DataLoader(TensorDataset(x_test, y_test), batch_size=100, shuffle=False)
    return trainloader, testloader


def test_the_seed_script_runs_and_prints_the_plain_log(tmp_path, monkeypatch, capsys, cifar_like_loaders):
    monkeypatch.chdir(tmp_path)  # Trainer's default save_dir is ./checkpoints, as in the seed
    torch.manual_seed(0)
    trainer, model, histories, metrics, class_names = seed_script(*cifar_like_loaders)

    train_losses, train_accs, val_losses, val_accs = histories
    assert all(len(h) == 2 for h in histories)
    assert all(isinstance(v, float) for h in histories for v in h)
    assert all(0 <= a <= 100 for a in train_accs + val_accs) and all(v > 0 for v in train_losses + val_losses)

    saved = tmp_path / "checkpoints"
    assert (saved / "best_model.pth").is_file() and (saved / "last.pth").is_file()
    best = torch.load(saved / "best_model.pth", map_location="cpu", weights_only=True)
    assert best["best_epoch"] == trainer.best_epoch
    for name, value in model.state_dict().items():  # the best model is loaded at the end
        assert torch.equal(value, best["model_state_dict"][name]), name

    assert metrics["confusion_matrix"].shape == (10, 10) and metrics["confusion_matrix"].sum() == 20
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(class_names) == 10

    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "train / 20 validation" in out and "40 train" in out
    assert re.search(r"^\s+1/2\s+\d+\.\d{4}\s+\d+\.\d\d%", out, re.M)
    assert re.search(r"^\s+2/2\s+\d+\.\d{4}\s+\d+\.\d\d%", out, re.M)
    assert "confusion matrix" in out and "run finished after 2 epochs" in out


def test_ui_none_stays_silent_and_custom_sinks_replace_the_log(tmp_path, capsys, cifar_like_loaders):
    from tui_trainer import MLP, Trainer
    from tui_trainer.events import EpochEnd, ListSink

    trainloader, testloader = cifar_like_loaders
    model = MLP(3 * 16 * 16, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    Trainer(model, trainloader, testloader, torch.nn.CrossEntropyLoss(), opt, "cpu", tmp_path / "a").train(
        1, ui="none")
    assert capsys.readouterr().out == ""

    sink = ListSink()
    Trainer(model, trainloader, testloader, torch.nn.CrossEntropyLoss(), opt, "cpu", tmp_path / "b",
            sinks=[sink]).train(1)
    assert capsys.readouterr().out == "" and len(sink.of(EpochEnd)) == 1


def test_the_seed_helpers_keep_their_signatures(capsys, cifar_like_loaders):
    from tui_trainer import MLP, PerformanceMonitor, diagnose_training_issues, train_epoch, validate_epoch

    trainloader, testloader = cifar_like_loaders
    model = MLP(3 * 16 * 16, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=0.001)
    monitor = PerformanceMonitor()
    monitor.start_epoch()
    loss, acc = train_epoch(model, trainloader, torch.nn.CrossEntropyLoss(), opt, "cpu", 0)
    assert monitor.end_epoch() > 0
    val_loss, val_acc = validate_epoch(model, testloader, torch.nn.CrossEntropyLoss(), "cpu")
    assert loss > 0 and val_loss > 0 and 0 <= acc <= 100 and 0 <= val_acc <= 100

    capsys.readouterr()
    diagnose_training_issues(model, trainloader, torch.nn.CrossEntropyLoss(), opt, "cpu")
    out = capsys.readouterr().out
    assert "initial loss" in out and "total grad norm" in out

    info = monitor.get_system_info()
    assert {"cpu_percent", "memory_percent", "memory_used_gb", "gpu_info"} <= info.keys()
    assert 0 <= info["cpu_percent"] <= 100 * (os.cpu_count() or 1)
    if not torch.cuda.is_available():
        assert info["gpu_info"] == []
    monitor.print_performance_summary()
    out = capsys.readouterr().out
    assert "average epoch time" in out and "CPU" in out and "RAM" in out
