"""Facts the workflow needs before anything is built: torchvision's datasets (CelebA's attributes
among them) and which torchvision ImageNet models have 3x3 or 7x7 stems (the first layer of each
trained architecture is in `common.architectures`). Torch-free: the workflow reads these while
planning."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TorchvisionDataset:
    side: int  # images are side x side
    channels: int
    train_images: int
    test_images: int
    classes: int


TORCHVISION_DATASETS = {
    "CIFAR10": TorchvisionDataset(32, 3, 50000, 10000, 10),
    "CIFAR100": TorchvisionDataset(32, 3, 50000, 10000, 100),
    "SVHN": TorchvisionDataset(32, 3, 73257, 26032, 10),
    "MNIST": TorchvisionDataset(28, 1, 60000, 10000, 10),
    "FashionMNIST": TorchvisionDataset(28, 1, 60000, 10000, 10),
    "KMNIST": TorchvisionDataset(28, 1, 60000, 10000, 10),
    # aligned faces (178 x 218) cropped square and resized to CELEBA_SIDE (datasets.<name>.resize
    # sets another size); one binary attribute is the label; torchvision's train and test splits
    "CelebA": TorchvisionDataset(32, 3, 162770, 19962, 2),
}

# CelebA: its 40 binary attributes, in the order of list_attr_celeba.txt. Which one the paper
# used as its label is not stated in its text or official code; the default is Smiling, an
# attribute present in about half the images (so true and random labels are both balanced).
CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
]  # fmt: skip
CELEBA_ATTRIBUTE = "Smiling"
CELEBA_SIDE = 32  # the side of the images the networks are built for (CIFAR's)

# ImageNet models of torchvision by the size of their first convolution.
MODELS_K3 = [
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "deeplabv3_mobilenet_v3_large", "inception_v3", "lraspp_mobilenet_v3_large", "mobilenet_v2",
    "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "squeezenet1_1",
]  # fmt: skip
MODELS_K7 = [
    "deeplabv3_resnet101", "deeplabv3_resnet50", "densenet121", "densenet161", "densenet169",
    "densenet201", "fcn_resnet101", "fcn_resnet50", "googlenet", "resnet18", "resnet34",
    "resnet50", "resnet101", "resnet152", "resnext101_32x8d", "resnext50_32x4d", "squeezenet1_0",
    "wide_resnet50_2", "wide_resnet101_2",
]  # fmt: skip
STEM_SIZE = {**{m: 3 for m in MODELS_K3}, **{m: 7 for m in MODELS_K7}}
