#!/usr/bin/env python3
"""Parity data for the SmolVLM2 image processor and prompt layout (tests/vlm_processor).

Usage: python3 bench/make_smolvlm2_processor_data.py OUT_DIR

Needs numpy, Pillow, safetensors, transformers (and jinja2, which transformers uses for chat
templates); no network. Writes into OUT_DIR:
  images/            small deterministic test images (PNG and JPEG, each well under 60 KB)
  sets/<name>/       preprocessor_config.json and processor_config.json of each parameter set, as
                     transformers itself serialises them
  expected.safetensors
      decoded/<image>                 the image as Pillow decodes it, uint8 [H, W] or [H, W, C]
      <set>/<image>/pixel_values      float32 [tiles, 3, H, W] from SmolVLMImageProcessor
      <set>/<image>/pixel_attention_mask  uint8 [tiles, H, W] (sets with do_pad)
      resize/<image>/<filter>/<W>x<H>  uint8, Pillow's Image.resize of resize_inputs/<image>.png
  resize_inputs/     random images for the resize checks (every Pillow filter, down and up)
  expected.json      rows/cols per case, expanded prompts, chat prompts, library versions
"""

import json
import os
import sys

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file

import transformers
# transformers 5 makes the torchvision backend the default, which replaces LANCZOS by BICUBIC unless
# torchvision >= 0.27; the Pillow backend resizes as the published processors always have.
try:
    from transformers import SmolVLMImageProcessorPil as SmolVLMImageProcessor
except ImportError:
    from transformers import SmolVLMImageProcessor

try:
    from transformers.models.smolvlm import processing_smolvlm
except ImportError as error:  # older releases, or a missing optional video dependency
    print(f"processing_smolvlm unavailable ({error}); using Idefics3's identical prompt layout")
    from transformers.models.idefics3 import processing_idefics3 as processing_smolvlm

PROMPT_TEXTS = [
    "<image>Describe this image.",
    "Look: <image> and tell me what you see.",
]
CHAT_TEXTS = ["Can you describe this image?", "What is 2+2?"]

# Each set is what a model's preprocessor_config.json could hold; image_seq_len belongs to
# processor_config.json. Small sizes keep the committed tensors small.
PARAMETER_SETS = {
    "split_lanczos": dict(
        image=dict(
            do_convert_rgb=True, do_resize=True, size={"longest_edge": 40}, resample=1,
            do_image_splitting=True, max_image_size={"longest_edge": 16}, do_rescale=True,
            rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5], do_pad=True),
        image_seq_len=4),
    "nosplit_upscale": dict(
        image=dict(
            do_convert_rgb=True, do_resize=True, size={"longest_edge": 160}, resample=1,
            do_image_splitting=False, max_image_size={"longest_edge": 32}, do_rescale=True,
            rescale_factor=1 / 255, do_normalize=True,
            image_mean=[0.48145466, 0.4578275, 0.40821073],
            image_std=[0.26862954, 0.26130258, 0.27577711], do_pad=True),
        image_seq_len=9),
    "split_bicubic_rescale": dict(
        image=dict(
            do_convert_rgb=True, do_resize=True, size={"longest_edge": 56}, resample=3,
            do_image_splitting=True, max_image_size={"longest_edge": 16}, do_rescale=True,
            rescale_factor=1 / 127.5, do_normalize=True, image_mean=[0.1, 0.2, 0.3],
            image_std=[0.9, 0.8, 0.7], do_pad=False),
        image_seq_len=16),
}


def make_images(folder):
    """Deterministic images: smooth patterns plus noise, so resampling has edges and gradients."""
    rng = np.random.default_rng(20240611)
    os.makedirs(folder, exist_ok=True)
    files = {}

    def pattern(height, width, channels):
        y, x = np.mgrid[0:height, 0:width].astype(np.float64)
        planes = []
        for c in range(channels):
            wave = 127.5 + 90 * np.sin(x / (3.0 + 2 * c) + y / 7.0) * np.cos(y / (5.0 + c))
            planes.append(wave + rng.normal(0, 18, size=(height, width)))
        image = np.stack(planes, axis=-1)
        image[height // 3: height // 3 + 4, :, :] = 250  # a sharp bright bar
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)

    rgb = pattern(61, 97, 3)
    Image.fromarray(rgb, "RGB").save(os.path.join(folder, "rgb_97x61.png"))
    files["rgb_97x61"] = "rgb_97x61.png"

    gray = pattern(130, 40, 1)[:, :, 0]
    Image.fromarray(gray, "L").save(os.path.join(folder, "gray_40x130.png"))
    files["gray_40x130"] = "gray_40x130.png"

    photo = pattern(120, 160, 3)
    photo = (0.7 * photo + 0.3 * np.roll(photo, 5, axis=1)).astype(np.uint8)
    Image.fromarray(photo, "RGB").save(os.path.join(folder, "photo_160x120.jpg"), quality=80)
    files["photo_160x120"] = "photo_160x120.jpg"

    rgba = pattern(36, 50, 4)
    rgba[:, :8, 3] = 0      # fully transparent band
    rgba[:, 8:16, 3] = 255  # fully opaque band
    Image.fromarray(rgba, "RGBA").save(os.path.join(folder, "rgba_50x36.png"))
    files["rgba_50x36"] = "rgba_50x36.png"

    # A palette PNG with transparency (tRNS).
    indices = (pattern(44, 70, 1)[:, :, 0] // 16).astype(np.uint8)  # 16 colours
    palette_image = Image.fromarray(indices, "P")
    palette_image.putpalette(rng.integers(0, 256, size=16 * 3, dtype=np.uint8).tolist())
    alpha = bytes(int(a) for a in rng.integers(0, 256, size=16))
    palette_image.save(os.path.join(folder, "palette_70x44.png"), transparency=alpha)
    files["palette_70x44"] = "palette_70x44.png"

    for name in files.values():
        size = os.path.getsize(os.path.join(folder, name))
        assert size < 60_000, f"{name} is {size} bytes"
    return files


RESIZE_TARGETS = [(15, 19), (52, 41), (45, 13), (15, 13)]  # from 45x38: 3:1 and 2:1 cuts, up, one axis
RESIZE_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def make_resize_cases(folder, tensors):
    """Pillow's resize with every filter, so resampling is checked apart from the processor."""
    rng = np.random.default_rng(77)
    os.makedirs(folder, exist_ok=True)
    inputs = {"rgb": Image.fromarray(rng.integers(0, 256, size=(38, 45, 3), dtype=np.uint8), "RGB"),
              "rgba": Image.fromarray(rng.integers(0, 256, size=(38, 45, 4), dtype=np.uint8), "RGBA")}
    cases = []
    for name, image in inputs.items():
        image.save(os.path.join(folder, f"{name}.png"))
        for code, filter_name in RESIZE_FILTERS.items():
            if name == "rgba" and filter_name not in ("lanczos", "nearest"):
                continue
            for width, height in RESIZE_TARGETS:
                key = f"resize/{name}/{filter_name}/{width}x{height}"
                tensors[key] = np.ascontiguousarray(np.array(image.resize((width, height), resample=code)))
                cases.append({"image": f"{name}.png", "filter": code, "width": width, "height": height,
                              "tensor": key})
    return cases


def render_chat(template, user_text, with_image):
    import jinja2

    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": user_text}]
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(template).render(
        messages=[{"role": "user", "content": content}], add_generation_prompt=True)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    print(f"transformers {transformers.__version__}, Pillow {PIL.__version__}, numpy {np.__version__}")
    image_files = make_images(os.path.join(out, "images"))

    tensors = {}
    cases = []
    resize_cases = make_resize_cases(os.path.join(out, "resize_inputs"), tensors)
    for image_name, file_name in image_files.items():
        with Image.open(os.path.join(out, "images", file_name)) as opened:
            # Palette images as Pillow expands them (with the tRNS alpha), as the decoder does.
            decoded = opened.convert("RGBA") if opened.mode == "P" else opened
            tensors[f"decoded/{image_name}"] = np.ascontiguousarray(np.array(decoded))

    for set_name, spec in PARAMETER_SETS.items():
        processor = SmolVLMImageProcessor(**spec["image"])
        set_dir = os.path.join(out, "sets", set_name)
        os.makedirs(set_dir, exist_ok=True)
        processor.to_json_file(os.path.join(set_dir, "preprocessor_config.json"))
        with open(os.path.join(set_dir, "processor_config.json"), "w") as f:
            json.dump({"image_seq_len": spec["image_seq_len"], "processor_class": "SmolVLMProcessor"}, f,
                      indent=2)

        for image_name, file_name in image_files.items():
            with Image.open(os.path.join(out, "images", file_name)) as opened:
                opened.load()
                result = processor(images=[[opened]], return_tensors="np", return_row_col_info=True)
            pixel_values = np.asarray(result["pixel_values"])
            if pixel_values.ndim == 5:  # [batch, images, 3, H, W] when padded into one array
                pixel_values = pixel_values[0]
            else:
                pixel_values = np.stack(pixel_values[0])
            key = f"{set_name}/{image_name}"
            tensors[f"{key}/pixel_values"] = np.ascontiguousarray(pixel_values.astype(np.float32))
            if "pixel_attention_mask" in result:
                mask = np.asarray(result["pixel_attention_mask"])[0]
                tensors[f"{key}/pixel_attention_mask"] = np.ascontiguousarray(mask.astype(np.uint8))
            rows = int(result["rows"][0][0])
            cols = int(result["cols"][0][0])
            prompts = []
            for text in PROMPT_TEXTS:
                # Positional: the last parameter's name differs between SmolVLM and Idefics3.
                image_prompt = processing_smolvlm.get_image_prompt_string(
                    rows, cols, spec["image_seq_len"], "<fake_token_around_image>", "<image>", "<global-img>")
                parts = text.split("<image>")
                prompts.append({"text": text, "expanded": parts[0] + image_prompt + parts[1]})
            cases.append({"set": set_name, "image": image_name, "rows": rows, "cols": cols,
                          "tiles": int(pixel_values.shape[0]), "prompts": prompts})
            print(f"{key}: pixel_values {list(pixel_values.shape)} rows {rows} cols {cols}")

    chat = []
    template = getattr(processing_smolvlm, "DEFAULT_CHAT_TEMPLATE", None)
    if template is not None:
        for text in CHAT_TEXTS:
            for with_image in (True, False):
                chat.append({"user_text": text, "with_image": with_image,
                             "prompt": render_chat(template, text, with_image)})
    else:
        print("this transformers has no DEFAULT_CHAT_TEMPLATE; chat prompts not written")

    save_file(tensors, os.path.join(out, "expected.safetensors"))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"images": image_files, "cases": cases, "chat": chat, "resize": resize_cases,
                   "chat_template": template,
                   "versions": {"transformers": transformers.__version__, "pillow": PIL.__version__,
                                "numpy": np.__version__}}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(out) for name in names)
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
