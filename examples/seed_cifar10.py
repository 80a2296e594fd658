"""The seed tutorial's CIFAR-10 example ("实际应用示例 1. CIFAR-10图像分类"), ported to tui-trainer by
changing only its imports: Trainer, create_scheduler, EarlyStopping, evaluate_classification and the
two plot functions now come from tui_trainer instead of the tutorial's earlier sections. Everything
below the imports is the tutorial's, line for line.

    python examples/seed_cifar10.py

downloads CIFAR-10 into ./data (as the tutorial does), then trains with the live console in a
terminal, or prints one log line per epoch when piped; the plots are drawn in the terminal.
The same run from the command line: `tui-trainer run cifar10` (the seed's recipe is its default).
"""
# --- the port: the imports (the tutorial's first code block, and its CIFAR-10 block's own) ---
import torch
import torch.nn as nn
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms

from tui_trainer import (EarlyStopping, Trainer, create_scheduler, evaluate_classification,
                         plot_confusion_matrix, plot_training_history)

# --- from here on, the tutorial's CIFAR-10 script, unchanged ---
# 数据准备
transform_train = transforms.Compose([
    transforms.RandomCrop(32, padding=4),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
])

transform_test = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
])

trainset = torchvision.datasets.CIFAR10(root='./data', train=True, 
                                       download=True, transform=transform_train)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=128, 
                                         shuffle=True, num_workers=2)

testset = torchvision.datasets.CIFAR10(root='./data', train=False, 
                                      download=True, transform=transform_test)
testloader = torch.utils.data.DataLoader(testset, batch_size=100, 
                                        shuffle=False, num_workers=2)

# 模型定义
class SimpleCNN(nn.Module):
    def __init__(self, num_classes=10):
        super(SimpleCNN, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            
            nn.Conv2d(64, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            
            nn.Conv2d(128, 256, 3, padding=1),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        )
        
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(256, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, num_classes)
        )
    
    def forward(self, x):
        x = self.features(x)
        x = self.classifier(x)
        return x

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
    num_epochs=100, 
    scheduler=scheduler,
    early_stopping=EarlyStopping(patience=15)
)

# 可视化结果
plot_training_history(train_losses, train_accs, val_losses, val_accs)

# 最终评估
class_names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 
               'dog', 'frog', 'horse', 'ship', 'truck']
metrics = evaluate_classification(model, testloader, device, 10)
plot_confusion_matrix(metrics['confusion_matrix'], class_names)

