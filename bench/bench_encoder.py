"""Encoder throughput: camera and LiDAR embeddings per second, the authors' two variants.

For ViT-S/16 and ResNet50 (random weights, 224 px inputs), the median time of one batch
through ``encode_camera`` / ``encode_lidar`` (backbone + projection head) under
``torch.inference_mode``, after warm-up, at batch 1 and 32: on the CPU in fp32 with torch's
default thread count, and on CUDA (fp32 and fp16 autocast) where available.

    .venv/bin/python bench/bench_encoder.py [--repeats 10] [--repeats-large 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from liploc_ros.device import inference
from liploc_ros.model import create_model, model_preset


def median_s(fn, device: torch.device, warmup: int, repeats: int) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["liploc-vit-s16", "liploc-resnet50"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs at batch < 32")
    parser.add_argument("--repeats-large", type=int, default=3, help="timed runs at batch >= 32")
    parser.add_argument("--no-cuda", action="store_true", help="skip CUDA even if available")
    args = parser.parse_args()

    runs = [(torch.device("cpu"), "fp32")]
    if torch.cuda.is_available() and not args.no_cuda:
        runs += [(torch.device("cuda"), "fp32"), (torch.device("cuda"), "fp16")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", end="")
    if torch.cuda.is_available():
        print(f", CUDA: {torch.cuda.get_device_name(0)}", end="")
    print("\n")
    print(f"{'variant':16s} {'encoder':7s} {'device':6s} {'prec':5s} {'batch':>5s} "
          f"{'ms/batch':>10s} {'items/s':>9s}")  # fmt: skip
    for variant in args.variants:
        torch.manual_seed(0)
        model = create_model(model_preset(variant)).eval()
        size = model.preprocess.camera.image_size
        for device, precision in runs:
            model.to(device)
            for batch in args.batch_sizes:
                x = torch.randn(batch, 3, size, size, device=device)
                large = batch >= 32
                for name, encode in (
                    ("camera", model.encode_camera),
                    ("lidar", model.encode_lidar),
                ):

                    def step(encode=encode, x=x, device=device, precision=precision) -> None:
                        with inference(device, precision):
                            encode(x)

                    seconds = median_s(
                        step, device, warmup=1 if large else 3,
                        repeats=args.repeats_large if large else args.repeats,
                    )  # fmt: skip
                    print(
                        f"{variant:16s} {name:7s} {device.type:6s} {precision:5s} {batch:5d} "
                        f"{seconds * 1e3:10.1f} {batch / seconds:9.1f}",
                        flush=True,
                    )
        model.to("cpu")


if __name__ == "__main__":
    main()
