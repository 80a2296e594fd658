"""An experiment file: your own model (a small ResNet) and data (CIFAR-10 through torchvision),
trained by tui-trainer with the live console, checkpoints and exact resume.

    tui-trainer run examples/experiment.py                       # with the defaults below
    tui-trainer run examples/experiment.py --epochs 5 --lr 0.1   # flags win over them
    tui-trainer run examples/experiment.py --config run.toml     # ... and so does a --config file
    tui-trainer resume runs/experiment-experiment-<time>         # runs the copy in the run directory

tui-trainer calls build_data(cfg) and build_model(cfg), and build_optimizer and build_loss when
they are defined (else --optimizer and cross-entropy). `cfg` is the run's resolved settings, a
tui_trainer.config.RunConfig: cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.seed,
cfg.data_dir (cfg.resolved_data_dir: the folder datasets live in), cfg.download, ...

build_data returns datasets (tui-trainer batches them: --batch-size, --eval-batch-size, --workers)
or DataLoaders. Transforms that draw from torch's random generator, like these, resume exactly.
"""

import torch
import torchvision
import torchvision.transforms as T
from torch import nn

defaults = {"epochs": 15, "batch-size": 128, "lr": 0.05, "weight-decay": 5e-4, "patience": 0}

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False), nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False), nn.BatchNorm2d(channels_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class SmallResNet(nn.Module):
    """Three stages of two residual blocks (width, 2x, 4x channels), global pooling, one linear layer."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(
            ResidualBlock(width, width), ResidualBlock(width, width),
            ResidualBlock(width, 2 * width, stride=2), ResidualBlock(2 * width, 2 * width),
            ResidualBlock(2 * width, 4 * width, stride=2), ResidualBlock(4 * width, 4 * width),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def build_model(cfg):
    return SmallResNet(num_classes=10)


def build_data(cfg):
    root = cfg.resolved_data_dir  # where `tui-trainer run cifar10` keeps CIFAR-10 too
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    val_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train = torchvision.datasets.CIFAR10(root, train=True, download=cfg.download, transform=train_tf)
    val = torchvision.datasets.CIFAR10(root, train=False, download=cfg.download, transform=val_tf)
    return train, val  # the class names: CIFAR10's own `classes` (or return them third)


def build_optimizer(cfg, params):
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


def build_loss(cfg):
    return nn.CrossEntropyLoss(label_smoothing=0.1)
