"""Generate the small sample corpus bundled in ``onethinker_verl/data/sample/``.

Synthetic scenes (coloured shapes on plain backgrounds, short clips of a moving square) whose ground truths
are true by construction: a few rows of every OneThinker task, in every modality the task has, plus SFT and
eval files in the release's formats. Media paths in the files are relative to the sample folder. The output
is deterministic and a few hundred KB.
"""

import argparse
import json
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from onethinker_verl.data.cli import converter_parser

EXAMPLES = [
    "python data_prep/make_sample_corpus.py",
    "python data_prep/make_sample_corpus.py --output /tmp/onethinker_sample",
]

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "onethinker_verl" / "data" / "sample"

VIDEO_SIZE = 96
VIDEO_FPS = 8
VIDEO_SECONDS = 4
SQUARE = 24

COLOURS = {"red": (220, 40, 40), "blue": (40, 70, 220), "green": (40, 170, 60), "yellow": (230, 200, 30)}


# ---------------------------------------------------------------- images


def _canvas(size: int, shade: int = 235) -> Image.Image:
    return Image.new("RGB", (size, size), (shade, shade, shade))


def shapes_image(path: Path, size: int, boxes: dict[str, tuple[int, int, int, int]]) -> None:
    """One filled rectangle per colour at the given [x1, y1, x2, y2]."""
    image = _canvas(size)
    draw = ImageDraw.Draw(image)
    for colour, box in boxes.items():
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=COLOURS[colour])
    image.save(path)


def text_image(path: Path, text: str) -> None:
    image = Image.new("RGB", (160, 64), (255, 255, 255))
    ImageDraw.Draw(image).text((10, 24), text, fill=(0, 0, 0))
    image.save(path)


def bars_image(path: Path, heights: list[int]) -> None:
    """A bar chart: bar i has height heights[i] pixels."""
    image = _canvas(128, 255)
    draw = ImageDraw.Draw(image)
    for index, height in enumerate(heights):
        x = 12 + index * 28
        draw.rectangle([x, 120 - height, x + 18, 119], fill=COLOURS["blue"])
    image.save(path)


# ---------------------------------------------------------------- videos


def square_track(seconds: int, start_visible: float = 0.0, end_visible: float | None = None):
    """Position of a square gliding left to right; None while it is hidden."""
    end_visible = seconds if end_visible is None else end_visible

    def box_at(t: float):
        if not start_visible <= t <= end_visible:
            return None
        x = int(round(4 + (VIDEO_SIZE - SQUARE - 8) * t / seconds))
        y = 36
        return [x, y, x + SQUARE, y + SQUARE]

    return box_at


def write_video(path: Path, box_at, colour: str) -> None:
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=VIDEO_FPS, options={"crf": "32", "preset": "veryfast"})
    stream.width = stream.height = VIDEO_SIZE
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = Fraction(1, VIDEO_FPS)
    stream.thread_count = 1  # deterministic bitstream
    for index in range(VIDEO_FPS * VIDEO_SECONDS):
        frame = np.full((VIDEO_SIZE, VIDEO_SIZE, 3), 230, dtype=np.uint8)
        box = box_at(index / VIDEO_FPS)
        if box is not None:
            frame[box[1] : box[3], box[0] : box[2]] = COLOURS[colour]
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


# ---------------------------------------------------------------- rows


def _points_inside(box, count=3):
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    return [[cx, cy], [cx - (x2 - x1) // 4, cy], [cx + (x2 - x1) // 4, cy]][:count]


def _points_outside(size):
    return [[2, 2], [size - 3, 2], [2, size - 3]]


def build(output: Path) -> dict[str, int]:
    rng = random.Random(7)
    (output / "images").mkdir(parents=True, exist_ok=True)
    (output / "videos").mkdir(parents=True, exist_ok=True)

    # images ---------------------------------------------------------------
    scenes = {}
    for name, size in (("scene_a", 128), ("scene_b", 160), ("scene_c", 224)):
        colours = rng.sample(sorted(COLOURS), 2)
        boxes = {}
        for slot, colour in enumerate(colours):
            x1 = 8 + slot * size // 2
            y1 = rng.randrange(8, size // 2)
            boxes[colour] = (x1, y1, x1 + size // 3, y1 + size // 3)
        shapes_image(output / "images" / f"{name}.png", size, boxes)
        scenes[name] = (size, boxes)
    text_image(output / "images" / "sign.png", "OPEN DAILY")
    text_image(output / "images" / "plate.jpg", "ROUTE 66")
    bars_image(output / "images" / "bars.png", [30, 70, 50, 90])

    # videos ---------------------------------------------------------------
    glide = square_track(VIDEO_SECONDS)
    write_video(output / "videos" / "glide_red.mp4", glide, "red")
    appear = square_track(VIDEO_SECONDS, start_visible=1.0, end_visible=3.0)
    write_video(output / "videos" / "appear_blue.mp4", appear, "blue")

    rows = []

    def add(problem_type, data_type, problem, answer, media, options=None):
        row = {
            "problem_id": f"sample-{len(rows) + 1:03d}",
            "problem": problem,
            "answer": answer,
            "problem_type": problem_type,
            "data_type": data_type,
            ("images" if data_type == "image" else "videos"): media,
            "data_source": "onethinker-sample",
        }
        if options:
            row["options"] = options
        rows.append(row)

    size_a, boxes_a = scenes["scene_a"]
    colour_a = sorted(boxes_a)[0]
    other_colour = next(c for c in COLOURS if c not in boxes_a)
    size_b, boxes_b = scenes["scene_b"]
    colour_b = sorted(boxes_b)[0]
    size_c, boxes_c = scenes["scene_c"]
    colour_c = sorted(boxes_c)[1]

    # multiple choice
    choices = sorted([colour_a, other_colour])
    letter = "AB"[choices.index(colour_a)]
    add("multiple choice", "image", "Which of these colours appears in the picture?",
        f"<answer>{letter}</answer>", ["images/scene_a.png"], [f"A. {choices[0]}", f"B. {choices[1]}"])
    add("multiple choice", "video", "In which direction does the square move?",
        "<answer>B</answer>", ["videos/glide_red.mp4"], ["A. right to left", "B. left to right", "C. it does not move"])
    # numerical
    add("numerical", "image", "How many coloured rectangles are in the picture?", "<answer>2</answer>",
        ["images/scene_b.png"])
    add("numerical", "video", "How many squares can be seen in the video?", "<answer>1</answer>",
        ["videos/glide_red.mp4"])
    # regression
    add("regression", "image", "What is the height in pixels of the tallest bar?", "<answer>90</answer>",
        ["images/bars.png"])
    add("regression", "video", "For how many seconds is the blue square visible?", "<answer>2.0</answer>",
        ["videos/appear_blue.mp4"])
    # OCR
    add("OCR", "image", "What does the sign say?", "<answer>OPEN DAILY</answer>", ["images/sign.png"])
    add("OCR", "image", "Read the text in the image.", "<answer>ROUTE 66</answer>", ["images/plate.jpg"])
    # open-ended
    add("open-ended", "image", "Describe the picture briefly.",
        f"<answer>A {sorted(boxes_c)[0]} square and a {sorted(boxes_c)[1]} square on a grey background.</answer>",
        ["images/scene_c.png"])
    add("open-ended", "video", "What happens in the video?",
        "<answer>A red square slides from the left side to the right side.</answer>", ["videos/glide_red.mp4"])
    # math
    heights = [30, 70, 50, 90]
    add("math", "image", "What is the sum of the heights of all bars, divided by 4?",
        f"<answer>{sum(heights) / 4:g}</answer>", ["images/bars.png"])
    add("math", "video", "The square moves at a constant speed for the whole clip. If the clip lasted twice "
        "as long at the same speed, how many seconds would that be?", f"<answer>{2 * VIDEO_SECONDS}</answer>",
        ["videos/glide_red.mp4"])
    # temporal grounding
    add("temporal grounding", "video", "When is the blue square visible?",
        "<answer>" + json.dumps({"time": [1.0, 3.0]}) + "</answer>", ["videos/appear_blue.mp4"])
    add("temporal grounding", "video", "During which time span is the red square on screen?",
        "<answer>" + json.dumps({"time": [0.0, float(VIDEO_SECONDS)]}) + "</answer>", ["videos/glide_red.mp4"])
    # spatial grounding
    add("spatial grounding", "image", f"Locate the {colour_a} rectangle.",
        "<answer>" + json.dumps({"boxes": list(boxes_a[colour_a])}) + "</answer>", ["images/scene_a.png"])
    add("spatial grounding", "image", f"Locate the {colour_c} rectangle.",
        "<answer>" + json.dumps({"boxes": list(boxes_c[colour_c])}) + "</answer>", ["images/scene_c.png"])
    # spatial-temporal grounding
    seconds_visible = {str(s): appear(float(s)) for s in range(1, 4)}
    add("spatial-temporal grounding", "video", "When and where is the blue square visible?",
        "<answer>" + json.dumps({"time": [1.0, 3.0], "boxes": seconds_visible}) + "</answer>",
        ["videos/appear_blue.mp4"])
    seconds_glide = {str(s): glide(float(s)) for s in range(1, VIDEO_SECONDS + 1)}
    add("spatial-temporal grounding", "video", "When and where is the red square visible?",
        "<answer>" + json.dumps({"time": [0.0, float(VIDEO_SECONDS)], "boxes": seconds_glide}) + "</answer>",
        ["videos/glide_red.mp4"])
    # tracking
    first_box = glide(0.0)
    add("tracking", "video", f"Track the square that starts at {first_box}.",
        "<answer>" + json.dumps({"boxes": {str(s): glide(float(s - 1)) for s in range(1, VIDEO_SECONDS + 1)}})
        + "</answer>", ["videos/glide_red.mp4"])
    add("tracking", "video", f"Track the blue square first seen at {appear(1.0)}.",
        "<answer>" + json.dumps({"boxes": {str(s): appear(float(s)) for s in range(1, 4)}}) + "</answer>",
        ["videos/appear_blue.mp4"])
    # segmentation
    box_b = list(boxes_b[colour_b])
    add("segmentation", "image", f"Segment the {colour_b} rectangle.", "<answer>" + json.dumps(
        {"boxes": box_b, "positive_points": _points_inside(box_b), "negative_points": _points_outside(size_b)})
        + "</answer>", ["images/scene_b.png"])
    box_t = glide(2.0)
    add("segmentation", "video", "Segment the red square.", "<answer>" + json.dumps(
        {"time": 2.0, "boxes": box_t, "positive_points": _points_inside(box_t),
         "negative_points": _points_outside(VIDEO_SIZE)}) + "</answer>", ["videos/glide_red.mp4"])

    with open(output / "rl_train.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")

    # SFT files, in the release's sharegpt layout -------------------------------------------------------
    def sft(placeholder, question, thinking, answer, media_key, media):
        return {
            "messages": [
                {"role": "user", "content": f"{placeholder}{question}"},
                {"role": "assistant", "content": f"<think>{thinking}</think><answer>{answer}</answer>"},
            ],
            media_key: media,
        }

    sft_image = [
        sft("<image>", "How many coloured rectangles are there?", "I count the filled shapes: there are two.",
            "2", "images", ["images/scene_b.png"]),
        sft("<image>", "What does the sign say?", "The black letters on white read OPEN DAILY.", "OPEN DAILY",
            "images", ["images/sign.png"]),
    ]
    sft_video = [
        sft("<video>", "In which direction does the square move?",
            "The square starts at the left edge and ends at the right edge.", "left to right", "videos",
            ["videos/glide_red.mp4"]),
        sft("<video>", "When is the blue square visible?", "It appears after one second and leaves at three.",
            json.dumps({"time": [1.0, 3.0]}), "videos", ["videos/appear_blue.mp4"]),
    ]
    (output / "sft_image.json").write_text(json.dumps(sft_image, indent=1), encoding="utf-8")
    (output / "sft_video.json").write_text(json.dumps(sft_video, indent=1), encoding="utf-8")

    # an eval file in the evaluation release's layout (single `path`, `video-image` rows) -----------------
    eval_rows = [
        {"problem_id": 1, "problem": "Which colour is the square?", "options": ["A. red", "B. blue"],
         "solution": "<answer>A</answer>", "problem_type": "multiple choice", "data_type": "video",
         "path": "videos/glide_red.mp4"},
        {"problem_id": 2, "problem": f"Locate the {colour_a} rectangle.",
         "solution": "<answer>" + json.dumps({"boxes": list(boxes_a[colour_a])}) + "</answer>",
         "problem_type": "spatial grounding", "data_type": "image", "path": "images/scene_a.png"},
        {"problem_id": 3, "problem": "Does the square in the video have the colour of the sign's text?",
         "options": ["A. yes", "B. no"], "solution": "<answer>B</answer>", "problem_type": "multiple choice",
         "data_type": "video-image", "path": "videos/glide_red.mp4", "additional_path": "images/sign.png"},
    ]
    (output / "eval_sample.json").write_text(json.dumps(eval_rows, indent=1), encoding="utf-8")
    return {"rl rows": len(rows), "sft rows": len(sft_image) + len(sft_video), "eval rows": len(eval_rows)}


def main() -> None:
    parser = converter_parser(__doc__, EXAMPLES)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="folder to write (default: %(default)s)")
    args = parser.parse_args()
    counts = build(args.output)
    total = sum(p.stat().st_size for p in args.output.rglob("*") if p.is_file())
    print(", ".join(f"{name}: {count}" for name, count in counts.items()), f"| {total / 1024:.0f} KB in {args.output}")


if __name__ == "__main__":
    main()
